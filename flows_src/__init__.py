"""flows_src: normalizing flows and flow matching on the Olympic rings, from scratch.

Floors, each importing only from its own and those below (tests/test_layers.py keeps this
true; a new module takes its place on one; a long floor goes on over indented lines):

4. experiments: experiments, registry
3. training and measures: training, fingerprints, metrics, path_metrics, plotting,
   training_plots, figures, steering
2. models, their shared face, the flow: density, couplings, spline, normalizing_flow
2. models, flow matching: ot, paths, velocity, fm_loss, flow_matching
1. primitives, settings and records: rings, config, presets, parameters, runs, history, ode,
   sampler, cli

Notebooks, above them all, orchestrate; the tooling (``tools/``, ``bench/``) stands apart:
nothing here imports it.
"""
