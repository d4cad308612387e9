"""What the notebooks' parameters that no config class checks may be.

A model's settings (``epochs``, ``lr``, ``dt``, ...) are checked by its config
(:mod:`flows_src.config`) when the notebook builds it. The rest of a notebook's parameters
-- how many points to evaluate, grid resolutions, classes, the seed of a notebook that
trains nothing -- are checked here, by the notebook's first cell and by the tooling before it
starts a run (``tools/notebooks.py``), so that a bad value stops in one line before any
data, training or folder is made, instead of failing deep inside the evaluation.

Example:
    >>> check_parameters(n_eval=500, grid_resolution=0.1)
    >>> check_parameters(grid_resolution=0)
    Traceback (most recent call last):
    ...
    ValueError: grid_resolution must be a number in (0, 1], got 0
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from flows_src.rings import CENTERS

__all__ = ["Range", "RANGES", "check_parameters"]


@dataclass(frozen=True)
class Range:
    """The values one parameter may take: an integer ``>= low`` (and ``<= high`` when it is
    given), or with ``integer=False`` a real number in ``(low, high]``."""

    low: float
    high: float | None = None
    integer: bool = True

    def __str__(self) -> str:
        if not self.integer:
            return f"a number in ({self.low:g}, {self.high:g}]"
        if self.high is None:
            return f"an integer >= {self.low}"
        return f"an integer in {self.low}..{self.high}"

    def check(self, name: str, value: object) -> None:
        """Raise a one-line ``ValueError`` naming ``name`` unless ``value`` is in range."""
        if isinstance(value, bool):
            ok = False
        elif self.integer:
            ok = (isinstance(value, numbers.Integral) and value >= self.low
                  and (self.high is None or value <= self.high))
        else:
            ok = (isinstance(value, numbers.Real) and math.isfinite(value)
                  and self.low < value <= self.high)
        if not ok:
            raise ValueError(f"{name} must be {self}, got {value!r}")


#: Every checked parameter of the notebooks (``notebooks/*.py``), by name.
RANGES: dict[str, Range] = {
    "seed": Range(0),
    "n_points": Range(2),  # standardizing the data takes two points
    "n_val": Range(1),
    "batch_size": Range(1),
    "n_eval": Range(1),
    "n_nll": Range(1),
    "n_show": Range(1),
    "n_per_class": Range(1),
    "n_nearest": Range(1),
    "ladder_epochs": Range(1),
    "ot_epochs": Range(1),
    "bonus_class": Range(0, len(CENTERS) - 1),
    "grid_resolution": Range(0, 1, integer=False),
    "nll_dt": Range(0, 1, integer=False),
}


def check_parameters(**values: object) -> None:
    """Check each ``name=value`` against :data:`RANGES`; the first bad one raises a
    ``ValueError`` that names it and its range."""
    unknown = sorted(set(values) - set(RANGES))
    if unknown:
        raise TypeError(f"no range is known for {', '.join(unknown)}: add it to RANGES")
    for name, value in values.items():
        RANGES[name].check(name, value)
