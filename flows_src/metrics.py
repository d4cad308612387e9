"""How good a 2D flow model is, measured (SPEC.md, "Quality").

- **NLL**: mean negative log-likelihood in nats per point on held-out data. Its floor is the
  data entropy H (:func:`flows_src.rings.data_entropy`); ``NLL - H`` is a KL divergence.
- **In-band fraction**: the share of generated points inside some ring's band, judged in
  raw ring coordinates. Real data: 1.
- **Ring balance**: each ring's share of the generated points beside its share of real data.
- **Conditional accuracy**: the share of class-k samples inside ring k's band.
- **Steadiness** of training: how often and how far the held-out loss rose between epochs,
  and the worst batch against the typical one (:func:`steadiness`).

How a flow moves its points from noise to data (the shape of the paths, and how far the
states have come) is measured in :mod:`flows_src.path_metrics`.
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
           "quality", "format_quality", "log_prob_grid", "format_table", "steadiness",
           "class_check", "misses", "shortfall", "share_error", "shares_apart"]


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


def share_error(share: float, n: int) -> float:
    """The standard error of a share (e.g. :func:`in_band_fraction`) of ``n`` points."""
    return float(np.sqrt(share * (1 - share) / n))


def shares_apart(first: float, n_first: int, second: float, n_second: int) -> float:
    """How far apart two shares of independent samples are, in standard errors of their
    difference (pooled under "the same share"); 0 when both are 0 or both are 1."""
    pooled = (first * n_first + second * n_second) / (n_first + n_second)
    error = np.sqrt(pooled * (1 - pooled) * (1 / n_first + 1 / n_second))
    return float(abs(first - second) / error) if error else 0.0


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
