"""flows_src: normalizing flows and flow matching on the Olympic rings, from scratch.

Floors, each importing only from below: ``rings``, ``config``, ``parameters``, ``runs``,
``ode`` (primitives); ``normalizing_flow``, ``flow_matching``, ``metrics``, ``plotting``
(models and measures); ``training`` (a loop that knows neither model family by name);
``cli`` (the exported scripts' options). Notebooks orchestrate; nothing here imports the tooling.
"""
