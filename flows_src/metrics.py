"""How good a 2D flow model is, measured (SPEC.md, "Quality").

- **NLL**: mean negative log-likelihood in nats per point on held-out data. Its floor is the
  data entropy H (:func:`flows_src.rings.data_entropy`); ``NLL - H`` is a KL divergence.
- **In-band fraction**: the share of generated points inside some ring's band, judged in
  raw ring coordinates. Real data: 1.
- **Ring balance**: each ring's share of the generated points beside its share of real data.
- **Conditional accuracy**: the share of class-k samples inside ring k's band.
- **Steadiness** of training: how often and how far the held-out loss rose between epochs,
  and the worst batch against the typical one (:func:`steadiness`).
- **Straightness** of sampled paths: length over chord, largest step and turning
  (:func:`path_shape`), and the mean squared deviation of the velocity from the chord's
  (:func:`straightness`).
- **Distance between point clouds**: the sliced Wasserstein distance
  (:func:`sliced_wasserstein`), e.g. of a flow's intermediate states to the data.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from flows_src.history import History
from flows_src.rings import (
    COLOURS,
    THICKNESS,
    Standardizer,
    band_distance,
    data_entropy,
    in_ring,
    ring_of,
)

__all__ = ["nll", "in_band_fraction", "ring_shares", "ring_balance", "conditional_accuracy",
           "quality", "format_quality", "log_prob_grid", "format_table", "path_length_ratio",
           "path_shape", "sliced_wasserstein", "straightness", "steadiness", "class_check",
           "misses", "shortfall", "progression", "consistency_verdict"]


def _numpy(points: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(points, Tensor):
        return points.detach().cpu().double().numpy()
    return np.asarray(points, dtype=np.float64)


def nll(log_prob: Callable[[Tensor], Tensor], x: Tensor, chunk: int = 4096) -> float:
    """Mean of ``-log_prob(x)`` over ``(n, 2)`` points, in chunks of ``chunk``."""
    total = 0.0
    for start in range(0, len(x), chunk):
        total -= float(log_prob(x[start:start + chunk]).double().sum())
    return total / len(x)


def in_band_fraction(points: Tensor | np.ndarray, standardizer: Standardizer) -> float:
    """Share of standardized ``(n, 2)`` points that fall inside some ring's band."""
    return float(in_ring(standardizer.inverse(_numpy(points))).any(1).mean())


def ring_shares(points: Tensor | np.ndarray, standardizer: Standardizer) -> np.ndarray:
    """``(6,)``: the share of points in each ring's band (0..4; an overlap counts for the
    nearer ring), and last the share in no band."""
    owner = ring_of(standardizer.inverse(_numpy(points)))
    counts = np.bincount(np.where(owner < 0, 5, owner), minlength=6)
    return counts / counts.sum()


def ring_balance(samples: Tensor | np.ndarray, data: Tensor | np.ndarray,
                 standardizer: Standardizer) -> dict[str, dict[str, float]]:
    """Each ring's share of generated points against its share of real data.

    Returns ``{ring: {"model": share, "data": share}}`` with the rings by colour and
    ``"none"`` for points in no band.
    """
    model, real = ring_shares(samples, standardizer), ring_shares(data, standardizer)
    names = [*COLOURS, "none"]
    return {name: {"model": float(m), "data": float(d)}
            for name, m, d in zip(names, model, real, strict=True)}


def conditional_accuracy(points: Tensor | np.ndarray, labels: Tensor | np.ndarray,
                         standardizer: Standardizer) -> tuple[np.ndarray, float]:
    """Per class (``(5,)``) and overall: the share of class-k points in ring k's band."""
    labels = _numpy(labels).astype(int)
    hit = in_ring(standardizer.inverse(_numpy(points)))[np.arange(len(labels)), labels]
    per_class = np.array([hit[labels == k].mean() if (labels == k).any() else np.nan
                          for k in range(len(COLOURS))])
    return per_class, float(hit.mean())



def _edge_distance(raw: np.ndarray) -> np.ndarray:
    """``(n, 5)``: how far each raw point is outside each ring's band (0 inside it)."""
    return np.maximum(band_distance(raw) - THICKNESS / 2, 0.0)


def class_check(ends_raw: np.ndarray, labels: np.ndarray) -> list[dict]:
    """Where conditional samples ended, per point: ``own`` (distance outside its own ring's
    band, 0 inside), ``nearest_other`` (the nearest other ring) and ``other`` (the distance
    outside that ring's band), and a ``verdict`` in words. ``ends_raw`` is ``(n, 2)`` in ring
    coordinates, ``labels`` ``(n,)``."""
    edge = _edge_distance(ends_raw)
    rows = []
    for k, row in zip(np.asarray(labels, dtype=int), edge):
        others = [j for j in range(len(COLOURS)) if j != k]
        nearest = min(others, key=lambda j: row[j])
        also = [COLOURS[j] for j in others if row[j] == 0]
        verdict = ("in its own band" if row[k] == 0 else "outside its own band") + (
            f", also in {' and '.join(also)}'s (the bands cross)" if also else "")
        rows.append({"own": float(row[k]), "nearest_other": int(nearest),
                     "other": float(row[nearest]), "verdict": verdict})
    return rows


def misses(points: Tensor | np.ndarray, labels: Tensor | np.ndarray,
           standardizer: Standardizer, edge: float = 0.1) -> dict:
    """Where the class-k samples that miss ring k's band sit: ``in_other_band`` (inside
    another ring's band; ``other_band_near_crossing`` of them also within ``edge`` of their
    own band, i.e. where the two rings cross), ``near_edge`` (in no band, within ``edge`` of
    their own band), ``elsewhere`` (the rest); ``total`` misses. Standardized ``(n, 2)``
    points, labels ``(n,)``; ``edge`` in ring units (the band is 0.25 wide)."""
    labels = _numpy(labels).astype(int)
    distance = _edge_distance(standardizer.inverse(_numpy(points)))
    own = distance[np.arange(len(labels)), labels]
    missed = own > 0
    in_other = missed & (distance == 0).any(1)
    near = own <= edge
    return {"total": int(missed.sum()), "in_other_band": int(in_other.sum()),
            "other_band_near_crossing": int((in_other & near).sum()),
            "near_edge": int((missed & ~in_other & near).sum()),
            "elsewhere": int((missed & ~in_other & ~near).sum()), "edge": edge}


def quality(samples: Tensor | np.ndarray, data: Tensor | np.ndarray,
            standardizer: Standardizer, nll_value: float | None = None) -> dict:
    """The model's scorecard: NLL against the data entropy H, in-band fraction of the
    ``samples``, and each ring's share of them beside its share of ``data``."""
    result = {"entropy": data_entropy(), "in_band": in_band_fraction(samples, standardizer),
              "rings": ring_balance(samples, data, standardizer), "n_samples": len(samples)}
    if nll_value is not None:
        result.update(nll=nll_value, gap=nll_value - result["entropy"])
    return result


def shortfall(result: dict) -> float:
    """One number for how far a model is from perfect (0), as the studies rank models:
    ``1 - accuracy`` for a class-conditional model's ``result`` (it has ``"accuracy"``),
    else ``1 - in-band + gap`` (a share of samples plus nats: both 0 at the data's limit).

    Example:
        >>> [round(shortfall(r), 6) for r in ({"in_band": 0.9, "gap": 0.2}, {"accuracy": 0.98})]
        [0.3, 0.02]
    """
    if result.get("accuracy") is not None:
        return 1.0 - result["accuracy"]
    return 1.0 - result["in_band"] + result["gap"]


def _cell(value: object) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{value:.1e}" if 0 < abs(value) < 1e-3 else f"{value:.4f}"
    return str(value)


def format_table(rows: list[list[object]], header: list[str]) -> str:
    """A plain-text table: numbers right-aligned (4 decimals, or scientific below 1e-3),
    text left-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    numeric = [all(isinstance(row[i], (int, float, np.number)) for row in rows)
               for i in range(len(header))]
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(len(header))]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, cells)])


def format_quality(q: dict, name: str = "model") -> str:
    """:func:`quality` as two small tables: the headline numbers, then the ring balance."""
    head = []
    if "nll" in q:
        head += [["held-out NLL (nats/point)", q["nll"]], ["data entropy H", q["entropy"]],
                 ["gap NLL - H", q["gap"]]]
    head.append([f"in-band fraction ({q['n_samples']:,} samples)", q["in_band"]])
    rings = [[ring, v["model"], v["data"], v["model"] - v["data"]]
             for ring, v in q["rings"].items()]
    return (format_table(head, [name, "value"]) + "\n\n"
            + format_table(rings, ["ring", "share of samples", "share of data", "difference"]))


def log_prob_grid(log_prob: Callable[[Tensor], Tensor], xlim: tuple[float, float],
                  ylim: tuple[float, float], resolution: float = 0.03, chunk: int = 8192
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``log_prob`` on a grid of cell size ``resolution`` over ``xlim x ylim``.

    Returns ``xs (nx,)``, ``ys (ny,)`` and ``log_p (ny, nx)``, ready for
    :func:`flows_src.plotting.density`.
    """
    xs = np.arange(xlim[0], xlim[1] + resolution / 2, resolution)
    ys = np.arange(ylim[0], ylim[1] + resolution / 2, resolution)
    grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    points = torch.as_tensor(grid, dtype=torch.float32)
    values = torch.cat([log_prob(points[i:i + chunk]).detach()
                        for i in range(0, len(points), chunk)])
    return xs, ys, values.double().numpy().reshape(len(ys), len(xs))


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


def steadiness(history: History) -> dict[str, float]:
    """How steadily a run trained, from its saved :class:`~flows_src.history.History`: the
    held-out loss of every epoch (the first is before training) and the loss of every batch.

    Returns ``rises`` (epochs whose held-out loss is higher than the epoch before's; a
    steady descent has none), ``largest_rise`` (the largest such rise, 0 without one),
    ``worst_batch`` (the largest batch loss), ``worst_over_median`` (the largest batch
    loss minus the median one: a batch far above the median is a point the model gave almost
    no probability, and its gradient can be as far above the typical step's), ``steps``,
    and the history's ``clipped_steps`` and ``skipped_steps``.

    Example:
        >>> run = History(batch_loss=[4.0, 2.0, 2.0, 9.0],
        ...               epochs=[{"loss": 3.0}, {"loss": 2.0}, {"loss": 2.5}, {"loss": 1.5}])
        >>> steadiness(run)["rises"]
        1
    """
    epoch_losses = np.asarray([e["loss"] for e in history.epochs], dtype=float)
    batch_losses = np.asarray(history.batch_loss, dtype=float)
    if len(epoch_losses) < 2 or len(batch_losses) == 0:
        raise ValueError("steadiness needs the losses of at least two epochs and one batch")
    change = np.diff(epoch_losses)
    worst, median = batch_losses.max(), np.median(batch_losses)
    return {"rises": int((change > 0).sum()),
            "largest_rise": float(change.max(initial=0.0)),
            "worst_batch": float(worst), "worst_over_median": float(worst - median),
            "steps": len(batch_losses), "clipped_steps": history.clipped_steps,
            "skipped_steps": history.skipped_steps}
