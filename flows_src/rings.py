"""The Olympic rings: geometry, samplers, standardization and the data entropy.

Everything about the rings is defined here once. Points come in two coordinate systems:
*raw* (ring coordinates: the blue ring is centred at the origin, radius 1) and *standard*
(each axis shifted and scaled by the sample mean and std, what the models see). A
:class:`Standardizer` maps between them, so metrics can ask "is this generated point inside
a band?" in raw coordinates.
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CENTERS", "RADIUS", "THICKNESS", "COLOURS", "BOX", "PROBE_POINTS", "PROBE_INSIDE",
    "Standardizer", "as_generator", "check_n_points", "band_distance", "in_ring",
    "ring_of", "sample_union", "sample_per_ring", "union_area", "data_entropy",
    "spread_latents",
]

#: Ring centers in raw coordinates, in the order of the class labels 0..4.
CENTERS = np.array([[0.0, 0.0], [2.0, 0.0], [4.0, 0.0], [1.0, -1.0], [3.0, -1.0]])
RADIUS = 1.0
#: Band thickness: a point is in ring k when | ||p - c_k|| - RADIUS | <= THICKNESS / 2.
THICKNESS = 0.25
#: The rings' colours, in label order: the course's ``int_to_label`` names.
COLOURS = ("blue", "black", "red", "yellow", "green")
#: The rejection-sampling box of the course's script, (x_min, x_max, y_min, y_max). It clips
#: the outer edges of the outer rings; that clipping is part of the exercise's data.
BOX = (-1.0, 5.0, -2.0, 1.0)

#: Five probe points in raw coordinates for the probability questions (NF Q5, FM Q5): the
#: first three lie on the middle circle of a band, away from the sampling box's clipped
#: edges and from every other ring (the blue ring's lower left, the black ring's upper
#: right, the green ring's lower right); the last two lie in no band (the centre of the black
#: ring's hole, and a point beside the logo, outside the box).
PROBE_POINTS = np.array([
    [-math.sqrt(0.5), -math.sqrt(0.5)],
    [2.5, math.sqrt(0.75)],
    [3.0 + math.sqrt(0.5), -1.0 - math.sqrt(0.5)],
    [2.0, 0.0],
    [-1.5, 1.5],
])
PROBE_INSIDE = np.array([True, True, True, False, False])


def spread_latents(n: int) -> np.ndarray:
    """``(n, 2)`` latent points spread evenly over N(0, I), for trajectory plots: radii at
    the quantiles (k + 1/2) / n of the distance from the origin (P(|z| <= r) =
    1 - exp(-r^2 / 2)), each turned by the golden angle from the last, so a handful of
    points covers the whole Gaussian rather than wherever a random draw happens to fall."""
    k = np.arange(n)
    radius = np.sqrt(-2 * np.log1p(-(k + 0.5) / n))
    angle = 2 * np.pi * k * (0.5 * (np.sqrt(5) - 1))
    return np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])


@dataclass(frozen=True)
class Standardizer:
    """Per-axis affine map between raw ring coordinates and standardized ones.

    Arguments:
        mean: ``(2,)`` per-axis mean of the raw sample.
        std: ``(2,)`` per-axis standard deviation of the raw sample.
    """

    mean: tuple[float, float]
    std: tuple[float, float]

    @classmethod
    def fit(cls, raw: np.ndarray) -> Standardizer:
        """The standardizer of a raw ``(n, 2)`` sample (population std, as ``np.std``)."""
        return cls(tuple(float(v) for v in raw.mean(0)), tuple(float(v) for v in raw.std(0)))

    def transform(self, raw: np.ndarray) -> np.ndarray:
        """Raw ``(..., 2)`` points to standardized ones."""
        return (np.asarray(raw) - np.array(self.mean)) / np.array(self.std)

    def inverse(self, standard: np.ndarray) -> np.ndarray:
        """Standardized ``(..., 2)`` points back to raw ring coordinates."""
        return np.asarray(standard) * np.array(self.std) + np.array(self.mean)

    @property
    def log_scale(self) -> float:
        """``log(std_x * std_y)``: the log-Jacobian from standardized to raw coordinates."""
        return float(np.log(self.std).sum())


def as_generator(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A numpy Generator from a seed, an existing Generator, or ``None`` (fresh entropy)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def check_n_points(n_points: object, name: str = "n_points") -> int:
    """Return ``n_points`` as an int, or stop with a one-line error naming the range (a count
    of points anywhere in the package: data, samples)."""
    if isinstance(n_points, bool) or not isinstance(n_points, numbers.Integral) or n_points < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {n_points!r}")
    return int(n_points)


def band_distance(raw: np.ndarray) -> np.ndarray:
    """``(n, 5)``: how far each raw point is from the middle circle of each ring's band."""
    raw = np.asarray(raw, dtype=np.float64)
    return np.abs(np.linalg.norm(raw[:, None, :] - CENTERS[None], axis=-1) - RADIUS)


def in_ring(raw: np.ndarray, thickness: float = THICKNESS) -> np.ndarray:
    """``(n, 5)`` bool: whether each raw point lies in each ring's band."""
    raw = np.asarray(raw, dtype=np.float64)
    # squared radii against squared bounds: no square root on the sampler's hot path
    r2 = (raw[:, :1] - CENTERS[:, 0]) ** 2 + (raw[:, 1:] - CENTERS[:, 1]) ** 2
    return (r2 >= (RADIUS - thickness / 2) ** 2) & (r2 <= (RADIUS + thickness / 2) ** 2)


def ring_of(raw: np.ndarray, thickness: float = THICKNESS) -> np.ndarray:
    """``(n,)`` int: the ring whose band holds each raw point, ``-1`` for none.

    Where two bands overlap, the ring whose middle circle is nearer wins.
    """
    dist = band_distance(raw)
    nearest = dist.argmin(1)
    return np.where(dist.min(1) <= thickness / 2, nearest, -1)


def sample_union(n_points: int, rng: np.random.Generator,
                 thickness: float = THICKNESS) -> np.ndarray:
    """``(n, 2)`` raw points uniform on the union of the five bands, clipped to :data:`BOX`.

    Rejection sampling from the box, as the course's script does, but a whole batch of
    candidates at a time; bands so thin that 100 batches do not fill the sample stop with a
    ``ValueError`` rather than sampling for hours.
    """
    n_points = check_n_points(n_points)
    x_min, x_max, y_min, y_max = BOX
    accepted, total = [], 0
    for _ in range(100):
        if total >= n_points:
            break
        # about 36% of the box is in a band: draw enough candidates for one pass, usually
        m = int((n_points - total) * 3.2) + 64
        cand = np.column_stack([rng.uniform(x_min, x_max, m), rng.uniform(y_min, y_max, m)])
        cand = cand[in_ring(cand, thickness).any(1)]
        accepted.append(cand)
        total += len(cand)
    if total < n_points:
        raise ValueError(f"bands of thickness {thickness!r} cover too little of the box: "
                         f"{total} of {n_points} points after 100 batches of candidates")
    return np.concatenate(accepted)[:n_points]


def sample_per_ring(n_points: int, rng: np.random.Generator,
                    thickness: float = THICKNESS) -> tuple[np.ndarray, np.ndarray]:
    """Raw points ``(n, 2)`` and labels ``(n,)`` with n/5 points per ring (the course's
    conditional data): radius ~ U[1 - t/2, 1 + t/2], angle ~ U[0, 2 pi], no box clipping.

    When n is not a multiple of 5 the first rings get one point more, so exactly n points
    come back, sorted by label.
    """
    n_points = check_n_points(n_points)
    labels = np.repeat(np.arange(5), [n_points // 5 + (k < n_points % 5) for k in range(5)])
    radius = rng.uniform(RADIUS - thickness / 2, RADIUS + thickness / 2, n_points)
    angle = rng.uniform(0.0, 2 * np.pi, n_points)
    raw = CENTERS[labels] + radius[:, None] * np.column_stack([np.cos(angle), np.sin(angle)])
    return raw, labels


@functools.lru_cache(maxsize=4)
def _union_moments(thickness: float, cells: int) -> tuple[float, np.ndarray, np.ndarray]:
    """Area, mean and std of the uniform distribution on the box-clipped union of bands,
    by the midpoint rule on a ``cells x cells/2`` grid over the box (6 x 3 units)."""
    x_min, x_max, y_min, y_max = BOX
    nx, ny = cells, cells // 2
    hx, hy = (x_max - x_min) / nx, (y_max - y_min) / ny
    xs = x_min + hx * (np.arange(nx) + 0.5)
    ys = y_min + hy * (np.arange(ny) + 0.5)
    count, s1, s2 = 0, np.zeros(2), np.zeros(2)
    for y in ys:  # one row at a time keeps the memory small
        row = np.column_stack([xs, np.full(nx, y)])
        row = row[in_ring(row, thickness).any(1)]
        count += len(row)
        s1 += row.sum(0)
        s2 += (row ** 2).sum(0)
    mean = s1 / count
    return count * hx * hy, mean, np.sqrt(s2 / count - mean ** 2)


def union_area(thickness: float = THICKNESS) -> float:
    """Area of the union of the five bands inside :data:`BOX` (about 6.405 for t = 0.25)."""
    return _union_moments(thickness, 3000)[0]


def data_entropy(thickness: float = THICKNESS) -> float:
    r"""Differential entropy (nats) of the unconditional data in standardized coordinates.

    The data is uniform on a region of area A; standardizing by (sigma_x, sigma_y) divides
    the density's support by sigma_x sigma_y, so

    .. math:: H = \log A - \log(\sigma_x \sigma_y).

    No model's expected negative log-likelihood on this data can be below H (Gibbs'
    inequality), so ``NLL - H`` is the model's gap, a KL divergence. The sigmas here are the
    distribution's own (by quadrature), not a sample's.
    """
    area, _, std = _union_moments(thickness, 3000)
    return float(np.log(area) - np.log(std).sum())
