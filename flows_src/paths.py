r"""Probability paths and couplings of noise to data: what flow matching regresses onto.

A *coupling* pairs each data point :math:`x_1` with a noise point :math:`x_0`; the *path*
joins each pair, :math:`x_t = t\,x_1 + (1 - t)\,x_0` (Eq. 14), with the velocity
:math:`dx_t = x_1 - x_0` (Eq. 15) that the network learns to match (Eq. 16,
:mod:`flows_src.fm_loss`). Couplings: :class:`IndependentCoupling` (the exercise's Alg. 1:
the noise as drawn) and :class:`OTCoupling` (minibatch optimal transport: the same noise
re-paired so the straight lines cross less, :mod:`flows_src.ot`). Training times follow
:func:`time_law`. Here :math:`x_0` is the noise and :math:`x_1` the data; the exercise's
:math:`y_0, y_1`.

References:
    Lipman et al., "Flow Matching for Generative Modeling", 2022 (arXiv:2210.02747).
    Tong et al., "Improving and Generalizing Flow-Based Generative Models with Minibatch
    Optimal Transport", TMLR 2024 (arXiv:2302.00482).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from flows_src.ot import ot_pairing

__all__ = ["PathSample", "LinearPath", "time_law", "IndependentCoupling",
           "OTCoupling", "ot_coupled_noise"]


@dataclass
class PathSample:
    r"""Points on the path, one ``t`` per point.

    Arguments:
        x_0: noise :math:`x_0 \sim \mathcal{N}(0, I)`, ``(n, 2)``.
        x_1: data, ``(n, 2)``.
        t: times in :math:`[0, 1]`, ``(n,)``.
        x_t: :math:`t\,x_1 + (1 - t)\,x_0` (Eq. 14), ``(n, 2)``.
        dx_t: its time derivative :math:`x_1 - x_0` (Eq. 15), the regression target, ``(n, 2)``.
    """

    x_0: Tensor
    x_1: Tensor
    t: Tensor
    x_t: Tensor
    dx_t: Tensor


class LinearPath:
    r"""The conditional linear path of Eq. 14: straight from :math:`x_0` to :math:`x_1` at
    constant speed.

    Example:
        >>> t = torch.tensor([0.0, 0.5])
        >>> path = LinearPath().sample(torch.zeros(2, 2), torch.ones(2, 2), t)
        >>> path.x_t, path.dx_t
        (tensor([[0.0000, 0.0000],
                [0.5000, 0.5000]]), tensor([[1., 1.],
                [1., 1.]]))
    """

    def sample(self, x_0: Tensor, x_1: Tensor, t: Tensor) -> PathSample:
        """The path's points at times ``t`` ``(n,)`` for the pairs ``x_0, x_1`` ``(n, d)``."""
        x_t = t[:, None] * x_1 + (1 - t[:, None]) * x_0
        return PathSample(x_0=x_0, x_1=x_1, t=t, x_t=x_t, dx_t=x_1 - x_0)


def time_law(u: Tensor, power: float = 1.0) -> Tensor:
    r"""Training times :math:`t = 1 - (1 - u)^p` from :math:`u \sim \mathcal{U}[0, 1]`.

    :math:`p = 1` is the exercise's uniform :math:`t` (``u`` itself, untouched); :math:`p > 1`
    puts more of a batch near :math:`t = 1`, where the field must resolve the thin bands.
    Any density of :math:`t` positive on :math:`[0, 1]` leaves the regression's minimizer
    unchanged; it only weights its errors differently.

    Example:
        >>> time_law(torch.tensor([0.0, 0.5, 1.0]), 2.0)
        tensor([0.0000, 0.7500, 1.0000])
    """
    return u if power == 1 else 1 - (1 - u) ** power


@dataclass(frozen=True)
class IndependentCoupling:
    """Noise and data paired as drawn (Alg. 1): the noise comes back unchanged."""

    def __call__(self, x_0: Tensor, x_1: Tensor, c: Tensor | None = None) -> Tensor:
        return x_0


@dataclass(frozen=True)
class OTCoupling:
    """Minibatch optimal transport (OT-CFM): the noise re-paired with the data by
    :func:`ot_coupled_noise`, in blocks of at most ``block`` points of each class (``None``:
    the whole batch is one block)."""

    block: int | None = None

    def __call__(self, x_0: Tensor, x_1: Tensor, c: Tensor | None = None) -> Tensor:
        return ot_coupled_noise(x_0, x_1, c, block=self.block)


@torch.compiler.disable  # a Python loop over numpy: compiled code calls it eagerly
def ot_coupled_noise(
    x_0: Tensor, x_1: Tensor, c: Tensor | None = None, *, block: int | None = None
) -> Tensor:
    r"""``x_0`` permuted so that row ``i`` is the noise paired with ``x_1[i]`` by minibatch
    optimal transport (:func:`flows_src.ot.ot_pairing`, OT-CFM of Tong et al. 2023).

    With classes ``c`` the pairing stays within each class: permuting noise across classes
    would hand each class the noise nearest its own points, so given its class the noise
    would no longer be :math:`\mathcal{N}(0, I)`, the source the conditional sampler draws
    from. Within a class the noise is only reordered, so it stays a normal draw.

    Arguments:
        x_0: noise, ``(n, d)``.
        x_1: data, ``(n, d)``.
        c: class labels, ``(n,)``, or ``None`` (or one int: one class).
        block: pair within consecutive blocks of at most this many points (of each class):
            the minibatch of OT-CFM, and what keeps the exact assignment's :math:`O(n^3)`
            affordable on a large evaluation batch. ``None``: the whole batch is one block.

    Returns:
        The permuted noise, ``(n, d)``; it carries no gradient.
    """
    n = x_1.shape[0]
    positions = torch.arange(n, device=x_1.device)
    if c is None or torch.as_tensor(c).ndim == 0:
        groups = [positions]
    else:
        groups = [positions[c == k] for k in torch.unique(c)]
    perm = positions.clone()
    for group in groups:
        for chunk in group.split(block or n):
            perm[chunk] = chunk[ot_pairing(x_0[chunk], x_1[chunk])]
    return x_0.detach()[perm]
