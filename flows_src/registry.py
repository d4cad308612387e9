"""The one table of notebooks: what each is, in the order a full run takes them.

Tools (papermill runs, export, report, hand-in zip, sweep), tests and the Makefile read this
table; none of them lists notebooks of its own. Adding a notebook is its ``notebooks/*.py``
and a row here; adding a model family is its notebook's row here (``family``) and the
family's row in :data:`flows_src.experiments.FAMILIES` (its model class). The module imports
nothing heavier than the standard library, so the Makefile reads it with the system Python
before the venv exists::

    python3 -m flows_src.registry [--handin] [--report] [--preset]

prints the names of the notebooks asked for, in order, one line.

Example:
    >>> [nb.name for nb in NOTEBOOKS if nb.preset]
    ['normalizing_flow', 'flow_matching', 'conditional_flow_matching']
    >>> notebook_of("fm")
    'flow_matching'
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

__all__ = ["Notebook", "NOTEBOOKS", "names", "get", "notebook_of", "family_of"]


@dataclass(frozen=True)
class Notebook:
    """One notebook of ``notebooks/``.

    Arguments:
        name: its file name less ``.py``, and its run folder's name.
        family: the model family it trains (a key of ``flows_src.experiments.FAMILIES``),
            or ``None``.
        handin: it answers the exercise at the exercise's settings (``make all`` runs it,
            the seeds' summary of a report of these shows the exercise's settings only).
        report: a section of the hand-in report (the data's overview answers no question).
        preset: it takes ``-p preset NAME`` (runs into ``runs/<name>/<preset>/seed-<s>/``);
            the beyond notebook loads these runs of every preset.
    """

    name: str
    family: str | None = None
    handin: bool = False
    report: bool = False
    preset: bool = False


#: Every notebook, in the order a full run takes them: a notebook reads the results of
#: those before it (flow matching's Q5 the normalizing flow's; beyond every model's).
NOTEBOOKS: tuple[Notebook, ...] = (
    Notebook("data", handin=True),
    Notebook("normalizing_flow", family="nf", handin=True, report=True, preset=True),
    Notebook("flow_matching", family="fm", handin=True, report=True, preset=True),
    Notebook("conditional_flow_matching", family="cfm", handin=True, report=True, preset=True),
    Notebook("beyond"),
)


def names(*, handin: bool | None = None, report: bool | None = None,
          preset: bool | None = None) -> list[str]:
    """The names of the notebooks whose fields equal those given, in run order.

    >>> names(handin=True, report=False)
    ['data']
    """
    asked = {"handin": handin, "report": report, "preset": preset}
    return [nb.name for nb in NOTEBOOKS
            if all(getattr(nb, k) == v for k, v in asked.items() if v is not None)]


def get(name: str) -> Notebook:
    """The row of notebook ``name``; an unknown name raises ``KeyError`` naming the known."""
    for nb in NOTEBOOKS:
        if nb.name == name:
            return nb
    raise KeyError(f"no notebook {name!r} in flows_src.registry (known: "
                   f"{', '.join(nb.name for nb in NOTEBOOKS)})")


def notebook_of(family: str) -> str:
    """The name of the notebook that trains model family ``family``."""
    for nb in NOTEBOOKS:
        if nb.family == family:
            return nb.name
    raise KeyError(f"no notebook trains family {family!r}")


def family_of(name: str) -> str | None:
    """The model family notebook ``name`` trains (``None``: none, or not a notebook here)."""
    return next((nb.family for nb in NOTEBOOKS if nb.name == name), None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="print notebook names, in run order")
    for flag in ("handin", "report", "preset"):
        parser.add_argument(f"--{flag}", action="store_const", const=True)
    args = parser.parse_args(argv)
    print(" ".join(names(handin=args.handin, report=args.report, preset=args.preset)))


if __name__ == "__main__":
    main()
