r"""The affine coupling layer of Sec. 3.1 as the exercise writes it, and the permutation.

This is the readable specification: two plain MLPs per layer, one for $\log \hat{s}$ and one
for $b$, on points ``(n, 2)`` split into $z_l$ (the first coordinate) and $z_r$ (the
second). :class:`~flows_src.normalizing_flow.CouplingStack` computes the same layers with
their weights fused across layers (a test keeps the two equal, values and gradients);
:class:`~flows_src.spline.SplineCoupling` replaces the affine map by a spline.

References:
    Dinh, Sohl-Dickstein and Bengio, "Density estimation using Real NVP", ICLR 2017.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["AffineCoupling", "Permutation", "mlp", "linears", "he_init_"]


def mlp(n_in: int, hidden: int, n_out: int, n_linear: int,
        negative_slope: float = 0.01) -> nn.Sequential:
    """``n_linear`` ``nn.Linear`` layers ``n_in -> hidden -> ... -> hidden -> n_out`` with
    ``nn.LeakyReLU(negative_slope)`` between them (Sec. 3.3), in ``nn.Linear``'s default
    initialisation."""
    if isinstance(n_linear, bool) or not isinstance(n_linear, int) or n_linear < 2:
        raise ValueError(f"n_linear must be an integer >= 2, got {n_linear!r}")
    sizes = [n_in] + [hidden] * (n_linear - 1) + [n_out]
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            layers.append(nn.LeakyReLU(negative_slope))
        layers.append(nn.Linear(fan_in, fan_out))
    return nn.Sequential(*layers)


def linears(net: nn.Sequential) -> list[nn.Linear]:
    """The ``nn.Linear`` layers of ``net``, in order."""
    return [m for m in net if isinstance(m, nn.Linear)]


def he_init_(weights: Sequence[Tensor], biases: Sequence[Tensor],
             negative_slope: float) -> None:
    r"""Re-initialize an MLP's layers in place (``NFConfig.init = "he"``): every layer but
    the last gets He-uniform weights, U(+-sqrt(6 / ((1 + a^2) fan_in))) for a LeakyReLU of
    slope a (``fan_in`` is a weight's last dimension, so stacked weights work too), and the
    hidden layers zero biases (the first keeps its biases: with one input they spread the
    first layer's kinks over the data); the last layer is all zero, so the network outputs
    0: for a coupling layer the identity map."""
    with torch.no_grad():
        for i, (weight, bias) in enumerate(zip(weights[:-1], biases[:-1])):
            bound = math.sqrt(6 / ((1 + negative_slope ** 2) * weight.shape[-1]))
            weight.uniform_(-bound, bound)
            if i:
                bias.zero_()
        weights[-1].zero_()
        biases[-1].zero_()


class AffineCoupling(nn.Module):
    r"""One affine coupling layer $h$ (Eq. 3-6) on 2D points.

    $f(z_l) = (\log \hat{s}, b)$ comes from two independent MLPs (:func:`mlp`, ``1 -> hidden
    -> ... -> 1``), ``log_s_net`` and ``b_net``.

    Arguments:
        hidden: width of the hidden layers.
        n_linear: Linear layers per MLP (at least 2).
        negative_slope: of the LeakyReLU.
        log_s_bound: when set, the $\log \hat{s}$ network's output $r$ passes through the
            soft clamp $B \tanh(r / B)$, so one layer scales by at most $e^{\pm B}$;
            ``None`` leaves it unbounded (see :class:`~flows_src.config.NFConfig`).

    Example:
        >>> h = AffineCoupling()
        >>> z = torch.randn(4, 2)
        >>> torch.allclose(h.inverse(h(z)), z, atol=1e-6)
        True
    """

    def __init__(self, hidden: int = 8, n_linear: int = 5, negative_slope: float = 0.01,
                 log_s_bound: float | None = None):
        super().__init__()
        self.negative_slope, self.log_s_bound = negative_slope, log_s_bound
        self.log_s_net = mlp(1, hidden, 1, n_linear, negative_slope)
        self.b_net = mlp(1, hidden, 1, n_linear, negative_slope)

    def log_s(self, z_l: Tensor) -> Tensor:
        r"""$\log \hat{s}$ of Eq. 3 (soft-clamped when ``log_s_bound`` is set); ``(n, 1)``."""
        log_s = self.log_s_net(z_l)
        if self.log_s_bound is not None:
            log_s = self.log_s_bound * torch.tanh(log_s / self.log_s_bound)
        return log_s

    def log_s_and_b(self, z_l: Tensor) -> tuple[Tensor, Tensor]:
        r"""$f(z_l) = (\log \hat{s}, b)$ of Eq. 3; ``z_l`` ``(n, 1)`` to two ``(n, 1)``."""
        return self.log_s(z_l), self.b_net(z_l)

    def forward(self, z: Tensor) -> Tensor:
        r"""$y = h(z) = (z_l, e^{\log \hat{s}} \odot z_r + b)$ (Eq. 3); shapes ``(n, 2)``."""
        z_l, z_r = z[:, :1], z[:, 1:]
        log_s, b = self.log_s_and_b(z_l)
        return torch.cat([z_l, torch.exp(log_s) * z_r + b], dim=1)

    def inverse(self, y: Tensor) -> Tensor:
        r"""$z = h^{-1}(y) = (y_l, (y_r - b) / \hat{s})$ (Eq. 4); ``(n, 2)`` to ``(n, 2)``."""
        return self.inverse_and_log_det(y)[0]

    def log_det_inverse(self, y: Tensor) -> Tensor:
        r"""$\log |\det \partial h^{-1}(y) / \partial y^T| = -\sum_k \log \hat{s}_k$ (Eq. 6),
        taken from $\log \hat{s}$ and never through the determinant itself; ``(n, 2)`` to
        ``(n,)``."""
        return -self.log_s(y[:, :1]).sum(dim=1)

    def inverse_and_log_det(self, y: Tensor) -> tuple[Tensor, Tensor]:
        r"""Eq. 4 and Eq. 6 in one pass: ``(n, 2)`` to ``(n, 2)`` and ``(n,)``."""
        y_l, y_r = y[:, :1], y[:, 1:]
        log_s, b = self.log_s_and_b(y_l)
        z_r = (y_r - b) / torch.exp(log_s)
        return torch.cat([y_l, z_r], dim=1), -log_s.sum(dim=1)


class Permutation(nn.Module):
    r"""A fixed permutation of the coordinates (Sec. 3.1.5): reverses their order.

    For 2D points it swaps $z_l$ and $z_r$. Its Jacobian determinant is $\pm 1$, so it adds 0
    to the log-determinant of Eq. 8.
    """

    def __init__(self, dim: int = 2):
        super().__init__()
        perm = torch.arange(dim - 1, -1, -1)
        # Derived from the architecture, not learned: kept out of checkpoints.
        self.register_buffer("perm", perm, persistent=False)
        self.register_buffer("inverse_perm", torch.argsort(perm), persistent=False)
        self._order = tuple(perm.tolist())
        self._inverse_order = tuple(self.inverse_perm.tolist())

    def forward(self, z: Tensor) -> Tensor:
        """Permute the coordinates of ``z`` ``(n, dim)``."""
        return z.index_select(1, self.perm)

    def inverse(self, y: Tensor) -> Tensor:
        """Undo :meth:`forward` on ``y`` ``(n, dim)``."""
        return y.index_select(1, self.inverse_perm)

    def columns(self, z: Sequence[Tensor]) -> tuple[Tensor, ...]:
        """:meth:`forward` on the coordinates held apart, ``dim`` tensors ``(n,)``."""
        return tuple(z[i] for i in self._order)

    def inverse_columns(self, y: Sequence[Tensor]) -> tuple[Tensor, ...]:
        """:meth:`inverse` on the coordinates held apart, ``dim`` tensors ``(n,)``."""
        return tuple(y[i] for i in self._inverse_order)
