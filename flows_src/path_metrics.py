"""How a flow moves its points from noise to data, measured on its ``(k, n, 2)`` states at
``k`` times (a normalizing flow's layers, an ODE's steps).

- **Shape** of the paths: length over chord, largest step and turning (:func:`path_shape`,
  :func:`path_length_ratio`), and which of two flows moves more consistently
  (:func:`consistency_verdict`).
- **Straightness**: the mean squared deviation of the velocity from the chord's
  (:func:`straightness`, Liu et al. 2022).
- **Progression**: how far the states have come towards the data at each time
  (:func:`progression`): the in-band fraction and the sliced Wasserstein distance
  (:func:`sliced_wasserstein`) between two point clouds.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

from flows_src.metrics import in_band_fraction
from flows_src.rings import Standardizer

__all__ = ["path_length_ratio", "path_shape", "straightness", "consistency_verdict",
           "sliced_wasserstein", "progression", "against_ends"]


def _numpy(points: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(points, Tensor):
        return points.detach().cpu().double().numpy()
    return np.asarray(points, dtype=np.float64)


def path_length_ratio(states: Tensor | np.ndarray) -> float:
    """How far from straight the paths are: for ``(k, n, 2)`` states of n points at k
    times, the median over points of (length of the polyline) / (distance from first to
    last state). A straight path scores 1. The median, not the mean: a path whose ends
    nearly meet has a huge ratio that would swamp the others."""
    return path_shape(states)["length_over_chord"]


def path_shape(states: Tensor | np.ndarray) -> dict[str, float]:
    """How the paths of ``(k, n, 2)`` states (n points at k equally spaced times) move,
    each a median over the n paths, so that one odd path does not decide it:

    - ``length_over_chord``: path length / distance between its ends (1: straight);
    - ``largest_step_share``: the largest of the k - 1 steps as a share of the path's
      length (``1 / (k - 1)``: the same distance in every time step; 1: all in one step);
    - ``turning_deg``: the sum of the angles between consecutive steps, in degrees (0: one
      direction throughout; a staircase turns 90 degrees at every corner);
    - ``late_turning_share``: the share of that turning done in the last fifth of the time
      (about 0.2 when a path turns equally often throughout; 0 for a path that never turns).

    Compare models on the same number of equally spaced times (e.g. a flow's layers
    against an ODE's states at ``t = layer / layers``).

    Example:
        >>> corner = np.array([[[0.0, 0.0]], [[1.0, 0.0]], [[1.0, 1.0]]])
        >>> shape = path_shape(corner)  # one turn, half way
        >>> [round(shape[k], 3) for k in ("length_over_chord", "largest_step_share",
        ...                               "turning_deg", "late_turning_share")]
        [1.414, 0.5, 90.0, 0.0]
    """
    states = _numpy(states)
    steps = np.diff(states, axis=0)  # (k - 1, n, 2)
    lengths = np.linalg.norm(steps, axis=-1)
    total = lengths.sum(0)
    chord = np.linalg.norm(states[-1] - states[0], axis=-1)
    headings = np.arctan2(steps[..., 1], steps[..., 0])
    moving = lengths > 1e-9 * np.maximum(total, 1e-30)
    turns = np.abs((np.diff(headings, axis=0) + np.pi) % (2 * np.pi) - np.pi)
    turns = np.where(moving[1:] & moving[:-1], turns, 0.0)
    turning = turns.sum(0)
    # turn k happens at the state between steps k and k + 1, at time (k + 1) / (k_total - 1)
    late = (np.arange(1, len(steps)) / len(steps) >= 0.8)[:, None]
    late_share = np.divide((turns * late).sum(0), turning, out=np.zeros_like(turning),
                           where=turning > 0)
    return {"length_over_chord": float(np.median(total / chord)),
            "largest_step_share": float(np.median(lengths.max(0) / total)),
            "turning_deg": float(np.median(np.degrees(turning))),
            "late_turning_share": float(np.median(late_share))}


def sliced_wasserstein(a: Tensor | np.ndarray, b: Tensor | np.ndarray,
                       n_directions: int = 128, seed: int = 0) -> float:
    """The sliced 1-Wasserstein distance between two ``(n, 2)`` point clouds: the mean over
    ``n_directions`` evenly spaced directions of the 1-D Wasserstein distance between the
    projections (compared at 200 quantiles). 0 for equal distributions; in the units of
    the points.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(4000, 2))
        >>> round(sliced_wasserstein(x, x + [3.0, 0.0]), 2)  # mean |3 cos(angle)|
        1.91
    """
    a, b = _numpy(a), _numpy(b)
    angles = (np.arange(n_directions) + np.random.default_rng(seed).random()) * (
        np.pi / n_directions)
    directions = np.column_stack([np.cos(angles), np.sin(angles)])
    q = (np.arange(200) + 0.5) / 200
    qa = np.quantile(a @ directions.T, q, axis=0)
    qb = np.quantile(b @ directions.T, q, axis=0)
    return float(np.abs(qa - qb).mean())


def progression(states, times, data: Tensor | np.ndarray, standardizer: Standardizer
                ) -> list[list[float]]:
    """How far a flow has come at each of its ``(k, n, 2)`` ``states`` (``times`` ``(k,)``):
    rows ``[t, in-band fraction, sliced Wasserstein distance to data]``, ``data`` ``(m, 2)``
    standardized like the states."""
    return [[float(t), in_band_fraction(state, standardizer), sliced_wasserstein(state, data)]
            for t, state in zip(times, states)]


def against_ends(distance: float, ends: tuple[float, float]) -> str:
    """Words for a distance to the data on the way (e.g. :func:`progression`'s largest
    between the ends) against the distances ``ends`` at the start and at the end."""
    distance, first, last = (round(float(v), 2) for v in (distance, *ends))  # as printed
    where = ("higher than at either end" if distance > max(first, last) else
             "lower than at either end" if distance < min(first, last) else
             "between the ends' values")
    return f"{where}: {first:.2f} at the start, {last:.2f} at the end"


def consistency_verdict(first: dict, second: dict, names: tuple[str, str]) -> str:
    """A sentence on which of two :func:`path_shape` results moves more consistently over
    time (a smaller busiest step and a smaller length over chord), naming them ``names``."""
    evenly = first["largest_step_share"] < second["largest_step_share"]
    straighter = first["length_over_chord"] < second["length_over_chord"]
    if evenly == straighter:
        winner = names[0] if evenly else names[1]
        return (f"{winner[0].upper()}{winner[1:]}'s flow is the more consistent over time: its "
                f"paths spread their movement more evenly over the time steps and are "
                f"straighter.")
    return (f"Mixed: {names[0]}'s paths are {'more' if evenly else 'less'} evenly spread over "
            f"time and {'straighter' if straighter else 'less straight'} than {names[1]}'s.")


def straightness(states: Tensor | np.ndarray, times: Tensor | np.ndarray) -> float:
    r"""How far the velocity along the paths is from the chord's (Liu et al. 2022):

    .. math:: S = \frac{1}{T} \int_{t_0}^{t_0 + T}
              \mathbb{E}\,\Big\|\dot y_t - \frac{y_{t_0 + T} - y_{t_0}}{T}\Big\|^2 dt

    with :math:`\dot y_t` the mean velocity of each step between the kept states. Zero only
    for straight paths run at constant speed, which one Euler step integrates exactly;
    unlike :func:`path_length_ratio` it also counts changes of speed along the path.

    Arguments:
        states: ``(k, n, d)`` states of n points, e.g. an
            :class:`~flows_src.ode.ODESolution`'s, solved with ``return_intermediates``.
        times: their ``(k,)`` times, increasing or (a backward solve) decreasing.

    References:
        Liu et al., "Flow Straight and Fast: Learning to Generate and Transfer Data with
        Rectified Flow", ICLR 2023 (arXiv:2209.03003).
    """
    states, times = _numpy(states), _numpy(times)
    steps = np.diff(times)
    span = times[-1] - times[0]
    velocity = np.diff(states, axis=0) / steps[:, None, None]
    chord = (states[-1] - states[0]) / span
    deviation = np.square(velocity - chord).sum(-1).mean(-1)
    return float((steps * deviation).sum() / span)
