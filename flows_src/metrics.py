"""How good a 2D flow model is, measured (SPEC.md, "Quality").

- **NLL**: mean negative log-likelihood in nats per point on held-out data. Its floor is the
  data entropy H (:func:`flows_src.rings.data_entropy`); ``NLL - H`` is a KL divergence.
- **In-band fraction**: the share of generated points inside some ring's band, judged in
  raw ring coordinates. Real data: 1.
- **Ring balance**: each ring's share of the generated points beside its share of real data.
- **Conditional accuracy**: the share of class-k samples inside ring k's band.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from torch import Tensor

from flows_src.rings import COLOURS, Standardizer, in_ring, ring_of

__all__ = ["nll", "in_band_fraction", "ring_shares", "ring_balance", "conditional_accuracy"]


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

