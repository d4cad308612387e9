r"""Rational-quadratic spline coupling layers (neural spline flows), beside the affine ones.

A monotone rational-quadratic (RQ) spline $g$ maps $[-B, B]$ onto itself through $K$ bins
whose widths, heights and inner knot derivatives come from a network of $z_l$; outside
$[-B, B]$ it is the identity. At $\pm B$ its derivative is 1, so $g$ and $g'$ are continuous
everywhere. In bin $k$, with knots $(x_k, y_k)$, width $w_k$, height $h_k$, slope
$s_k = h_k / w_k$, knot derivatives $\delta_k, \delta_{k+1}$ and $\xi = (x - x_k) / w_k$
(Durkan et al., Eq. 4 and 5):

.. math::
    g(x) = y_k + \frac{h_k [s_k \xi^2 + \delta_k \xi (1 - \xi)]}
                      {s_k + (\delta_{k+1} + \delta_k - 2 s_k) \xi (1 - \xi)}, \qquad
    g'(x) = \frac{s_k^2 [\delta_{k+1} \xi^2 + 2 s_k \xi (1 - \xi) + \delta_k (1 - \xi)^2]}
                 {[s_k + (\delta_{k+1} + \delta_k - 2 s_k) \xi (1 - \xi)]^2},

and $g^{-1}$ solves a quadratic in $\xi$ (their Eq. 6-8). A coupling layer applies $g$ in
the density's direction, $z_r = g(y_r)$, so that the log-likelihood and its log-determinant
$\log g'(y_r)$ are evaluated in closed form; sampling inverts it, $y_r = g^{-1}(z_r)$.

References:
    Durkan, Bekasov, Murray and Papamakarios, "Neural Spline Flows", NeurIPS 2019.
    Gregory and Delbourgo, "Piecewise rational quadratic interpolation to monotonic data",
    IMA Journal of Numerical Analysis, 1982.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flows_src.couplings import mlp

__all__ = ["knots", "rational_quadratic", "SplineCoupling", "SplineStack"]

#: Smallest share of ``2 B`` a bin's width or height can take, and smallest knot derivative:
#: they keep every bin's slope, and so the log-determinant, finite.
MIN_BIN = 1e-3
MIN_DERIVATIVE = 1e-3
# softplus(0 + _SHIFT) + MIN_DERIVATIVE = 1: a network that outputs 0 gives the identity.
_SHIFT = math.log(math.expm1(1 - MIN_DERIVATIVE))


def _edges(u: Tensor, bound: float) -> Tensor:
    """Knot positions ``(n, K + 1)`` from unnormalised bin sizes ``u`` ``(n, K)``: softmax
    shares (at least :data:`MIN_BIN` each) of ``[-bound, bound]``, ends exactly at the bound."""
    bins = u.shape[-1]
    share = MIN_BIN + (1 - MIN_BIN * bins) * torch.softmax(u, dim=-1)
    inner = bound * (2 * torch.cumsum(share, dim=-1)[..., :-1] - 1)
    end = inner.new_full((*inner.shape[:-1], 1), bound)
    return torch.cat([-end, inner, end], dim=-1)


def knots(u: Tensor, bound: float) -> tuple[Tensor, Tensor, Tensor]:
    r"""A spline from a network's output ``u`` ``(n, 3K - 1)``: the knots' $x_k$ and $y_k$
    ``(n, K + 1)`` on $[-B, B]$ (from the first $K$ and the next $K$ entries) and the knot
    derivatives $\delta_k$ ``(n, K + 1)`` (the last $K - 1$ entries, through a shifted
    softplus; 1 at both ends, where the identity tails begin). ``u = 0`` gives $K$ equal bins
    and derivatives 1: the identity."""
    bins = (u.shape[-1] + 1) // 3
    u_w, u_h, u_d = u.split([bins, bins, bins - 1], dim=-1)
    inner = MIN_DERIVATIVE + F.softplus(u_d + _SHIFT)
    return _edges(u_w, bound), _edges(u_h, bound), F.pad(inner, (1, 1), value=1.0)


def rational_quadratic(inputs: Tensor, x_knots: Tensor, y_knots: Tensor, derivatives: Tensor,
                       inverse: bool = False) -> tuple[Tensor, Tensor]:
    r"""$g$ (or, with ``inverse``, $g^{-1}$) of the module docstring at each of ``inputs``
    ``(n,)``, one spline per point (``(n, K + 1)`` knots and derivatives), the identity
    outside the knots' range; returns the values ``(n,)`` and $\log |dg/dx|$ (or
    $\log |dg^{-1}/dy|$) ``(n,)``.

    Each point's bin is found by comparing it with all knots at once (a vectorised
    ``searchsorted``), its bin's numbers gathered.
    """
    search = y_knots if inverse else x_knots
    inside = (inputs >= search[:, 0]) & (inputs <= search[:, -1])
    v = torch.minimum(torch.maximum(inputs, search[:, 0]), search[:, -1])[:, None]
    k = (v >= search[:, 1:-1]).sum(dim=-1, keepdim=True)  # (n, 1) in [0, K - 1]
    x_k, x_k1 = x_knots.gather(-1, k), x_knots.gather(-1, k + 1)
    y_k, y_k1 = y_knots.gather(-1, k), y_knots.gather(-1, k + 1)
    d_k, d_k1 = derivatives.gather(-1, k), derivatives.gather(-1, k + 1)
    w, h = x_k1 - x_k, y_k1 - y_k
    s = h / w
    curve = d_k1 + d_k - 2 * s
    if inverse:
        dy = v - y_k
        a = h * (s - d_k) + dy * curve
        b = h * d_k - dy * curve
        c = -s * dy
        root = torch.sqrt((b.square() - 4 * a * c).clamp(min=0))
        xi = (2 * c / (-b - root)).clamp(0, 1)
        out = x_k + xi * w
    else:
        xi = (v - x_k) / w
        out = y_k + h * (s * xi.square() + d_k * xi * (1 - xi)) / (s + curve * xi * (1 - xi))
    log_grad = (2 * s.log()
                + (d_k1 * xi.square() + 2 * s * xi * (1 - xi) + d_k * (1 - xi).square()).log()
                - 2 * (s + curve * xi * (1 - xi)).log())
    out = torch.where(inside, out[:, 0], inputs)
    log_grad = torch.where(inside, log_grad[:, 0], 0.0)
    return out, -log_grad if inverse else log_grad


@torch.compiler.disable
def _conditioner(net: nn.Module, z_l: Tensor) -> Tensor:
    # Under torch.compile (the notebooks' default) the network stays eager: measured on the
    # lab's CPU (torch 2.13), inductor's kernels for a LeakyReLU MLP of width 128 ran ~3x
    # slower than eager ones, while the spline's many small element-wise steps compile into
    # a few loops ~10x faster than eager; a step of the spline preset takes ~12 ms this way,
    # ~15 ms all compiled or all eager.
    return net(z_l[:, None])


class SplineCoupling(nn.Module):
    r"""One spline coupling layer $h(z) = (z_l, g^{-1}(z_r; \theta(z_l)))$: the affine map
    of Eq. 3 replaced by the inverse of a monotone RQ spline $g$ whose $K$ widths, $K$
    heights and $K - 1$ inner derivatives $\theta(z_l)$ come from one MLP ``net``
    (:func:`~flows_src.couplings.mlp`, ``1 -> hidden -> ... -> 3K - 1``).

    Arguments:
        bins: $K$, the spline's bins.
        bound: $B$: the spline acts on $[-B, B]$, the identity outside.
        hidden, n_linear, negative_slope: of the network.

    Example:
        >>> h = SplineCoupling(bins=4)
        >>> z = 3 * torch.randn(6, 2)
        >>> torch.allclose(h.inverse(h(z)), z, atol=1e-5)
        True
    """

    def __init__(self, bins: int = 8, bound: float = 5.0, hidden: int = 128,
                 n_linear: int = 3, negative_slope: float = 0.01):
        super().__init__()
        self.bins, self.bound = bins, bound
        self.net = mlp(1, hidden, 3 * bins - 1, n_linear, negative_slope)

    def spline(self, z_l: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        r"""$\theta(z_l)$ as :func:`knots`: ``z_l`` ``(n,)`` to three ``(n, K + 1)``."""
        return knots(_conditioner(self.net, z_l), self.bound)

    def forward_r(self, z_l: Tensor, z_r: Tensor) -> Tensor:
        r"""$y_r = g^{-1}(z_r; \theta(z_l))$; ``(n,)`` each."""
        return rational_quadratic(z_r, *self.spline(z_l), inverse=True)[0]

    def inverse_r(self, y_l: Tensor, y_r: Tensor) -> tuple[Tensor, Tensor]:
        r"""$z_r = g(y_r; \theta(y_l))$ and the layer's $\log |\det \partial h^{-1}(y) /
        \partial y^T| = \log g'(y_r)$; ``(n,)`` each."""
        return rational_quadratic(y_r, *self.spline(y_l))

    def forward(self, z: Tensor) -> Tensor:
        """$h(z)$, ``(n, 2)`` to ``(n, 2)``."""
        return torch.stack([z[:, 0], self.forward_r(z[:, 0], z[:, 1])], dim=1)

    def inverse_and_log_det(self, y: Tensor) -> tuple[Tensor, Tensor]:
        r"""$h^{-1}(y)$ ``(n, 2)`` and $\log |\det \partial h^{-1}(y) / \partial y^T|$
        ``(n,)``."""
        z_r, log_det = self.inverse_r(y[:, 0], y[:, 1])
        return torch.stack([y[:, 0], z_r], dim=1), log_det

    def inverse(self, y: Tensor) -> Tensor:
        """$h^{-1}(y)$, ``(n, 2)`` to ``(n, 2)``."""
        return self.inverse_and_log_det(y)[0]

    def log_det_inverse(self, y: Tensor) -> Tensor:
        r"""$\log |\det \partial h^{-1}(y) / \partial y^T|$, ``(n, 2)`` to ``(n,)``."""
        return self.inverse_and_log_det(y)[1]


class SplineStack(nn.Module):
    """``n`` :class:`SplineCoupling` layers (``layers``), with the face the
    :class:`~flows_src.normalizing_flow.NormalizingFlow` calls: :meth:`per_layer`,
    :meth:`forward_r` and :meth:`inverse_r` on the coordinates held apart.

    Arguments:
        n_couplings: the number of layers; the rest as in :class:`SplineCoupling`.
    """

    def __init__(self, n_couplings: int, bins: int = 8, bound: float = 5.0,
                 hidden: int = 128, n_linear: int = 3, negative_slope: float = 0.01):
        super().__init__()
        self.layers = nn.ModuleList(SplineCoupling(bins, bound, hidden, n_linear,
                                                   negative_slope)
                                    for _ in range(n_couplings))

    def __len__(self) -> int:
        return len(self.layers)

    def per_layer(self) -> list[SplineCoupling]:
        """The layers, in order."""
        return list(self.layers)

    def forward_r(self, z_l: Tensor, z_r: Tensor, layer: SplineCoupling) -> Tensor:
        """``layer``'s :meth:`SplineCoupling.forward_r`."""
        return layer.forward_r(z_l, z_r)

    def inverse_r(self, y_l: Tensor, y_r: Tensor, layer: SplineCoupling
                  ) -> tuple[Tensor, Tensor]:
        """``layer``'s :meth:`SplineCoupling.inverse_r`."""
        return layer.inverse_r(y_l, y_r)
