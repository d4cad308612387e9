"""The course's data script: points on the Olympic rings (exercise Sec. 2.1).

The two functions keep the course's names and signatures, and add a ``seed`` (an int or a
``numpy.random.Generator``) and ``return_standardizer``. Both are vectorized: 250,000 points
take a fraction of a second. The ring geometry lives in :mod:`flows_src.rings`.

Run ``python create_data.py`` to see both data sets.
"""

from __future__ import annotations

import numpy as np

from flows_src import plotting
from flows_src.rings import (
    COLOURS,
    RADIUS,
    Standardizer,
    as_generator,
    sample_per_ring,
    sample_union,
)

__all__ = ["create_unconditional_olympic_rings", "create_olympic_rings"]


def _check(n_points: object, ring_thickness: object) -> int:
    """``n_points`` as an int; a one-line ``ValueError`` naming a bad argument's range."""
    if (isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer))
            or n_points < 2):
        raise ValueError(f"n_points must be an integer >= 2 (the data is standardized by its "
                         f"own mean and std), got {n_points!r}")
    if (isinstance(ring_thickness, bool) or not isinstance(ring_thickness, (int, float))
            or not 0 < ring_thickness <= 2 * RADIUS):
        raise ValueError(f"ring_thickness must be a number in (0, {2 * RADIUS:g}] (a band "
                         f"around the unit circle), got {ring_thickness!r}")
    return int(n_points)


def _show(points: np.ndarray, labels: np.ndarray | None, title: str) -> None:
    import matplotlib.pyplot as plt  # only a verbose call needs a figure

    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    sub = np.random.default_rng(0).permutation(len(points))[:20_000]
    if labels is None:
        plotting.points(ax, points[sub], title=title, s=1)
    else:
        plotting.classes(ax, points[sub], labels[sub], title=title, s=1)
    plotting.finish(fig)


def create_unconditional_olympic_rings(n_points: int, ring_thickness: float = 0.25,
                                       verbose: bool = True,
                                       seed: int | np.random.Generator | None = None,
                                       return_standardizer: bool = False):
    """``(n_points, 2)`` points uniform on the union of the five ring bands, standardized.

    Points are drawn by rejection from the box x in [-1, 5], y in [-2, 1] (which clips the
    outer rings' outer edges, as in the course's script), then each axis is shifted and
    scaled by the sample's mean and std.

    Arguments:
        n_points: how many points (an integer >= 2).
        ring_thickness: width of each ring's band, in (0, 2].
        verbose: show a scatter plot of (at most 20,000 of) the points.
        seed: an int or a ``numpy.random.Generator``; the same seed gives the same array.
        return_standardizer: also return the :class:`~flows_src.rings.Standardizer` used,
            which maps model outputs back to ring coordinates.

    Example:
        >>> x = create_unconditional_olympic_rings(1000, verbose=False, seed=0)
        >>> x.shape
        (1000, 2)
    """
    n_points = _check(n_points, ring_thickness)
    raw = sample_union(n_points, as_generator(seed), ring_thickness)
    standardizer = Standardizer.fit(raw)
    points = standardizer.transform(raw)
    if verbose:
        _show(points, None, f"{len(points):,} unconditional points")
    return (points, standardizer) if return_standardizer else points


def create_olympic_rings(n_points: int, ring_thickness: float = 0.25, verbose: bool = True,
                         seed: int | np.random.Generator | None = None,
                         return_standardizer: bool = False):
    """Class-labelled ring points: n/5 per ring, standardized.

    Each ring's points have radius ~ U[1 - t/2, 1 + t/2] and angle ~ U[0, 2 pi] around the
    ring's center (no box clipping).

    Returns:
        ``(points, labels, int_to_label)``: points ``(n_points, 2)``, labels ``(n_points,)``
        in 0..4, and the map from label to ring colour; with ``return_standardizer`` the
        :class:`~flows_src.rings.Standardizer` comes fourth.
    """
    n_points = _check(n_points, ring_thickness)
    raw, labels = sample_per_ring(n_points, as_generator(seed), ring_thickness)
    standardizer = Standardizer.fit(raw)
    points = standardizer.transform(raw)
    int_to_label = dict(enumerate(COLOURS))
    if verbose:
        _show(points, labels, f"{len(points):,} class-labelled points")
    if return_standardizer:
        return points, labels, int_to_label, standardizer
    return points, labels, int_to_label


if __name__ == "__main__":
    create_unconditional_olympic_rings(250_000, seed=0)
    create_olympic_rings(250_000, seed=0)
