r"""The RealNVP-style normalizing flow of Sec. 3: affine coupling layers and permutations.

The data is 2D, so a coupling layer splits a point ``z`` of shape ``(n, 2)`` into ``z_l``
(first coordinate) and ``z_r`` (second); the permutation between coupling layers swaps them,
so consecutive layers transform alternate coordinates.

References:
    Dinh, Sohl-Dickstein and Bengio, "Density estimation using Real NVP", ICLR 2017.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flows_src.config import NFConfig

__all__ = ["AffineCoupling", "CouplingStack", "Permutation", "NormalizingFlow"]

_DIM = 2


def _log_standard_normal(z: Tensor) -> Tensor:
    r"""$\log \mathcal{N}(z; 0, I)$ of ``z`` ``(n, d)``, shape ``(n,)``.

    The closed form $-\frac{1}{2}(\|z\|^2 + d \log 2\pi)$ equals
    ``MultivariateNormal(zeros(d), eye(d)).log_prob(z)``; it needs no distribution object that
    would have to follow the model across devices and dtypes.
    """
    return -0.5 * (z.square().sum(-1) + z.shape[-1] * math.log(2 * math.pi))


def _affine(h: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    r"""One Linear layer of both coupling MLPs, ``weight @ h + bias``: ``h`` ``(2, in, n)`` to
    ``(2, out, n)``, with ``weight`` ``(2, out, in)`` and ``bias`` ``(2, out, 1)``.

    Features come first and points last, so that compiled loops run along the points.
    """
    if torch.compiler.is_compiling():
        # Inductor hands every matmul to a library call that it cannot fuse with anything; as a
        # broadcast product and a sum, a layer, its activation and their gradients compile into
        # a few loops, and a compiled training step takes half the time it takes with baddbmm.
        # Eager, baddbmm is the faster of the two.
        return (weight.unsqueeze(-1) * h.unsqueeze(1)).sum(2) + bias
    return torch.baddbmm(bias, weight, h)


def _uniform_linear(sizes: list[int], *leading: int) -> tuple[nn.ParameterList, nn.ParameterList]:
    # nn.Linear's default init (kaiming-uniform with a=sqrt(5), and its bias rule) is
    # U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for both; the stacked layout hides fan_in from
    # nn.init, so the bound is written out.
    weights, biases = nn.ParameterList(), nn.ParameterList()
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = 1 / math.sqrt(fan_in)
        weight = torch.empty(*leading, 2, fan_out, fan_in).uniform_(-bound, bound)
        weights.append(nn.Parameter(weight))
        biases.append(nn.Parameter(torch.empty(*leading, 2, fan_out, 1).uniform_(-bound, bound)))
    return weights, biases


def _he_init_(weights: Sequence[Tensor], biases: Sequence[Tensor],
               negative_slope: float) -> None:
    r"""Re-initialize stacked MLP layers in place (``NFConfig.init = "he"``): every layer but
    the last gets He-uniform weights, U(+-sqrt(6 / ((1 + a^2) fan_in))) for a LeakyReLU of
    slope a, and the hidden layers zero biases (the first keeps its biases: with one input
    they spread the first layer's kinks over the data); the last layer is all zero, so each
    network outputs 0: log s = 0 and b = 0, the identity map."""
    with torch.no_grad():
        for i, (weight, bias) in enumerate(zip(weights[:-1], biases[:-1])):
            bound = math.sqrt(6 / ((1 + negative_slope ** 2) * weight.shape[-1]))
            weight.uniform_(-bound, bound)
            if i:
                bias.zero_()
        weights[-1].zero_()
        biases[-1].zero_()


def _mlp_sizes(hidden: int, n_linear: int) -> list[int]:
    if isinstance(n_linear, bool) or not isinstance(n_linear, int) or n_linear < 2:
        raise ValueError(f"n_linear must be an integer >= 2, got {n_linear!r}")
    return [1] + [hidden] * (n_linear - 1) + [1]


class AffineCoupling(nn.Module):
    r"""One affine coupling layer $h$ (Eq. 3-6) on 2D points.

    $f(z_l) = (\log \hat{s}, b)$ comes from two independent MLPs, each ``n_linear`` Linear
    layers ``1 -> hidden -> ... -> hidden -> 1`` with LeakyReLU between them. Their weights are
    stored stacked, ``weight[i]`` of shape ``(2, out, in)`` (as ``nn.Linear.weight``) and
    ``bias[i]`` of shape ``(2, out, 1)`` (index 0: the $\log \hat{s}$ network, 1: the $b$
    network), so both networks run as one batched product per layer: the same two networks, a
    fraction of the kernel calls.

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
        self.negative_slope = negative_slope
        self.log_s_bound = log_s_bound
        self.weight, self.bias = _uniform_linear(_mlp_sizes(hidden, n_linear))

    def log_s_and_b(self, z_l: Tensor) -> tuple[Tensor, Tensor]:
        r"""$f(z_l) = (\log \hat{s}, b)$ of Eq. 3; ``z_l`` ``(n, 1)`` to two ``(n, 1)``."""
        log_s, b = self._log_s_and_b(z_l[:, 0], self.weight, self.bias)
        return log_s[:, None], b[:, None]

    def forward(self, z: Tensor) -> Tensor:
        r"""$y = h(z) = (z_l, e^{\log \hat{s}} \odot z_r + b)$ (Eq. 3); shapes ``(n, 2)``."""
        z_l, z_r = z.unbind(1)
        return torch.stack([z_l, self._y_r(z_l, z_r, self.weight, self.bias)], dim=1)

    def inverse_and_log_det(self, y: Tensor) -> tuple[Tensor, Tensor]:
        r"""$z = h^{-1}(y)$ (Eq. 4) and $\log |\det \partial h^{-1}(y) / \partial y^T|$ (Eq. 6).

        The log-determinant is $-\sum_k \log \hat{s}_k$, taken from $\log \hat{s}$ directly
        and never through the determinant itself. Shapes: ``(n, 2)`` to ``(n, 2)``, ``(n,)``.
        """
        y_l, y_r = y.unbind(1)
        z_r, log_det = self._z_r_and_log_det(y_l, y_r, self.weight, self.bias)
        return torch.stack([y_l, z_r], dim=1), log_det

    def inverse(self, y: Tensor) -> Tensor:
        r"""$z = h^{-1}(y) = (y_l, (y_r - b) / \hat{s})$ (Eq. 4); ``(n, 2)`` to ``(n, 2)``."""
        return self.inverse_and_log_det(y)[0]

    def log_det_inverse(self, y: Tensor) -> Tensor:
        r"""$\log |\det \partial h^{-1}(y) / \partial y^T| = -\sum_k \log \hat{s}_k$ (Eq. 6).

        Shapes: ``(n, 2)`` to ``(n,)``.
        """
        return -self._log_s_and_b(y[:, 0], self.weight, self.bias)[0]

    # The math, on the coordinates held apart, ``(n,)`` each (compiled, every loop then runs
    # along contiguous memory), and on given weights (a CouplingStack passes its own views).
    def _log_s_and_b(self, z_l: Tensor, weights: Sequence[Tensor], biases: Sequence[Tensor]
                     ) -> tuple[Tensor, Tensor]:
        h = z_l.expand(2, 1, -1)  # (2, 1, n): one input shared by both networks
        for i, (weight, bias) in enumerate(zip(weights, biases)):
            if i:
                h = F.leaky_relu(h, self.negative_slope)
            h = _affine(h, weight, bias)
        log_s, b = h[0, 0], h[1, 0]
        if self.log_s_bound is not None:
            log_s = self.log_s_bound * torch.tanh(log_s / self.log_s_bound)
        return log_s, b

    def _y_r(self, z_l: Tensor, z_r: Tensor, weights: Sequence[Tensor],
             biases: Sequence[Tensor]) -> Tensor:
        log_s, b = self._log_s_and_b(z_l, weights, biases)
        return log_s.exp() * z_r + b

    def _z_r_and_log_det(self, y_l: Tensor, y_r: Tensor, weights: Sequence[Tensor],
                         biases: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        log_s, b = self._log_s_and_b(y_l, weights, biases)
        return (y_r - b) * torch.exp(-log_s), -log_s

    @torch.no_grad()
    def load_reference_mlps(self, log_s_net: nn.Sequential, b_net: nn.Sequential) -> None:
        r"""Copy the weights of two plain MLPs (the $\log \hat{s}$ and the $b$ network).

        Each ``nn.Sequential`` must hold ``n_linear`` ``nn.Linear`` layers of this layer's
        sizes; the activations between them are not inspected.
        """
        nets = [[m for m in net if isinstance(m, nn.Linear)] for net in (log_s_net, b_net)]
        for net in nets:
            if len(net) != len(self.weight):
                raise ValueError(f"expected {len(self.weight)} Linear layers, got {len(net)}")
        for weight, bias, linears in zip(self.weight, self.bias, zip(*nets)):
            stacked = torch.stack([linear.weight for linear in linears])
            if stacked.shape != weight.shape:
                raise ValueError(f"Linear weights {tuple(stacked.shape)} != {tuple(weight.shape)}")
            weight.copy_(stacked)
            bias.copy_(torch.stack([linear.bias for linear in linears]).unsqueeze(-1))


class _StackedCoupling(AffineCoupling):
    """Layer ``k`` of a :class:`CouplingStack`: its ``weight`` and ``bias`` are views of the
    stack's parameters (reading, ``load_reference_mlps`` and in-place edits reach them; the
    gradients live on the stack's parameters)."""

    def __init__(self, stacked: tuple[nn.ParameterList, nn.ParameterList], k: int,
                 negative_slope: float, log_s_bound: float | None):
        nn.Module.__init__(self)
        self.negative_slope = negative_slope
        self.log_s_bound = log_s_bound
        # A tuple, not a Module attribute: the stack owns (and registers) the parameters.
        self._stacked = stacked
        self._k = k

    @property
    def weight(self) -> tuple[Tensor, ...]:
        return tuple(weight[self._k] for weight in self._stacked[0])

    @property
    def bias(self) -> tuple[Tensor, ...]:
        return tuple(bias[self._k] for bias in self._stacked[1])

    def extra_repr(self) -> str:
        return f"layer {self._k} of a CouplingStack"


class CouplingStack(nn.Module):
    r"""``n_couplings`` independent affine coupling layers (:class:`AffineCoupling`) whose
    parameters are stored stacked across the layers: ``weight[i]`` of shape
    ``(n_couplings, 2, out, in)``, ``bias[i]`` of shape ``(n_couplings, 2, out, 1)``.

    The same model as a list of coupling layers, but the optimizer updates ``2 * n_linear``
    tensors instead of ``2 * n_linear * n_couplings`` (150 for the exercise's flow), and
    autograd accumulates as many gradients: for these tiny networks that bookkeeping, not the
    arithmetic, is most of a training step. ``stack[k]`` is layer ``k`` as an
    :class:`AffineCoupling` whose ``weight`` and ``bias`` are views into the stack.

    Arguments:
        n_couplings: number of coupling layers.
        hidden, n_linear, negative_slope, log_s_bound: as in :class:`AffineCoupling`.
    """

    def __init__(self, n_couplings: int, hidden: int = 8, n_linear: int = 5,
                 negative_slope: float = 0.01, log_s_bound: float | None = None):
        super().__init__()
        self.weight, self.bias = _uniform_linear(_mlp_sizes(hidden, n_linear), n_couplings)
        self._layers = tuple(
            _StackedCoupling((self.weight, self.bias), k, negative_slope, log_s_bound)
            for k in range(n_couplings)
        )

    def __len__(self) -> int:
        return len(self._layers)

    def __getitem__(self, k: int) -> AffineCoupling:
        return self._layers[k]

    def __iter__(self) -> Iterator[AffineCoupling]:
        return iter(self._layers)

    def per_layer(self) -> list[tuple[tuple[Tensor, ...], tuple[Tensor, ...]]]:
        """Every layer's ``(weights, biases)``, as views made by one ``unbind`` per stacked
        tensor: its gradient is one ``stack``, where indexing each layer apart would add a
        full-size gradient per layer and parameter."""
        weights = [weight.unbind(0) for weight in self.weight]
        biases = [bias.unbind(0) for bias in self.bias]
        return list(zip(zip(*weights), zip(*biases)))

    def extra_repr(self) -> str:
        return f"{len(self)} coupling layers"


class Permutation(nn.Module):
    r"""A fixed permutation of the coordinates (Sec. 3.1.5): reverses their order.

    For 2D points it swaps $z_l$ and $z_r$. Its Jacobian determinant is $\pm 1$, so it adds 0
    to the log-determinant of Eq. 8.
    """

    def __init__(self, dim: int = _DIM):
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


class NormalizingFlow(nn.Module):
    r"""$x = \phi(z)$ (Eq. 1): ``n_couplings`` affine coupling layers with a permutation
    between consecutive ones, and base distribution $p_z = \mathcal{N}(0, I)$ on 2D points.

    Trained by maximum likelihood with the loss of Eq. 9 (:meth:`loss`).

    Intermediates (``return_intermediates=True``) are a tensor ``(n_couplings + 1, n, 2)``:
    the input and the output of every coupling layer, all expressed in the axes of $x$ (the
    permutations still to come are applied to each), so that in a plot every coupling layer
    moves a point along one axis, alternating between the two. :meth:`forward` lists them from
    $z$ (t = 0) to $x$ (t = 1), :meth:`inverse` from $x$ (t = 1) to $z$ (t = 0): for the same
    points one is the other reversed. The $x$ end is $x$; the $z$ end is $z$ in the axes of
    $x$, which is $z$ itself for an odd number of coupling layers (the exercise's 15) and $z$
    with its coordinates swapped for an even number (the same $\mathcal{N}(0, I)$ either way).

    The coupling layers are a :class:`CouplingStack`: ``couplings[k]`` is layer ``k``, their
    parameters (and gradients) are ``couplings.weight`` and ``couplings.bias``.

    Arguments:
        config: the architecture (``n_couplings``, ``hidden``, ``n_linear``,
            ``negative_slope``, ``log_s_bound``, ``init``); the exercise's defaults when
            ``None``.

    Example:
        >>> flow = NormalizingFlow(NFConfig(n_couplings=3))
        >>> x = flow.sample(5, torch.Generator().manual_seed(0))
        >>> flow.log_prob(x).shape
        torch.Size([5])
    """

    def __init__(self, config: NFConfig | None = None):
        super().__init__()
        self.config = config if config is not None else NFConfig()
        self.couplings = CouplingStack(
            self.config.n_couplings, self.config.hidden, self.config.n_linear,
            self.config.negative_slope, self.config.log_s_bound)
        if self.config.init == "he":
            _he_init_(self.couplings.weight, self.couplings.bias, self.config.negative_slope)
        # One fixed permutation, reused between every pair of consecutive coupling layers.
        self.permutation = Permutation(_DIM)

    def forward(
        self, z: Tensor, return_intermediates: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        r"""$x = \phi(z)$, ``(n, 2)``; with intermediates also ``(n_couplings + 1, n, 2)``."""
        states = [z] if return_intermediates else None
        z = z.unbind(1)
        for k, (coupling, params) in enumerate(zip(self.couplings, self.couplings.per_layer())):
            if k:
                z = self.permutation.columns(z)
            z = (z[0], coupling._y_r(*z, *params))
            if states is not None:
                states.append(torch.stack(z, dim=1))
        x = torch.stack(z, dim=1)
        return (x, self._in_output_axes(states)) if states is not None else x

    def _in_output_axes(self, states: list[Tensor]) -> Tensor:
        # states[k] (k >= 1) is the output of coupling layer k, in the axes left by the k - 1
        # permutations before it; the n_couplings - k after it bring it to the axes of x.
        # states[0], the input z, lies in the axes of states[1].
        axes = torch.arange(_DIM, device=states[0].device)
        shown = [states[-1]]
        for k in range(len(states) - 2, -1, -1):
            if k:
                axes = axes[self.permutation.perm]
            shown.append(states[k].index_select(1, axes))
        return torch.stack(shown[::-1])

    def _inverse(self, x: Tensor, states: list[Tensor] | None) -> tuple[Tensor, Tensor]:
        log_det = x.new_zeros(x.shape[0])
        per_layer = self.couplings.per_layer()
        y = x.unbind(1)
        for k in reversed(range(len(self.couplings))):
            z_r, log_det_k = self.couplings[k]._z_r_and_log_det(*y, *per_layer[k])
            y = (y[0], z_r)
            log_det = log_det + log_det_k
            if k:
                y = self.permutation.inverse_columns(y)
            if states is not None:
                states.append(torch.stack(y, dim=1))
        return torch.stack(y, dim=1), log_det

    def inverse(
        self, x: Tensor, return_intermediates: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        r"""$z = \phi^{-1}(x)$, ``(n, 2)``; with intermediates also ``(n_couplings + 1, n, 2)``
        ordered from $x$ (t = 1) to $z$ (t = 0)."""
        states = [x] if return_intermediates else None
        z, _ = self._inverse(x, states)
        return (z, self._in_output_axes(states[::-1]).flip(0)) if states is not None else z

    def inverse_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r"""$z = \phi^{-1}(x)$ ``(n, 2)`` and $\log |\det \partial \phi^{-1}(x) / \partial x^T|$
        ``(n,)`` in one pass (Eq. 7-8: the sum of each coupling layer's Eq. 6; permutations
        add 0)."""
        return self._inverse(x, None)

    def log_det_inverse(self, x: Tensor) -> Tensor:
        r"""$\log |\det \partial \phi^{-1}(x) / \partial x^T|$ (Eq. 8), ``(n, 2)`` to ``(n,)``."""
        return self._inverse(x, None)[1]

    def log_prob(self, x: Tensor) -> Tensor:
        r"""$\log p(x) = \log p_z(\phi^{-1}(x)) + \log |\det \partial \phi^{-1}(x) / \partial x^T|$
        (Eq. 2), ``(n, 2)`` to ``(n,)``.

        Far outside the data a trained flow's inverse can leave the dtype's range (inf, then
        nan); such points get $-\infty$ rather than nan, so a density map or a mean over
        points stays usable. A nan in ``x`` still gives nan.
        """
        z, log_det = self._inverse(x, None)
        log_p = _log_standard_normal(z) + log_det
        overflowed = log_p.isnan() & ~x.isnan().any(dim=1)
        return log_p.masked_fill(overflowed, -math.inf)

    def loss(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        r"""The batch mean of Eq. 9, $-\log p_z(\phi^{-1}(x)) - \log |\det \partial
        \phi^{-1}(x) / \partial x^T|$, for ``x`` ``(n, 2)``.

        Returns the scalar loss and its two components' batch means, detached, as
        ``{"log_det": ..., "log_pz": ...}`` (loss = -(log_pz + log_det)). An overflow shows
        here as nan or inf, unlike in :meth:`log_prob`, so that training stops on it. Free of
        Python side effects, so ``torch.compile(flow.loss)`` traces it whole.
        """
        z, log_det = self._inverse(x, None)
        log_pz = _log_standard_normal(z)
        loss = -(log_pz + log_det).mean()
        return loss, {"log_det": log_det.mean().detach(), "log_pz": log_pz.mean().detach()}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        r"""$x = \phi(z)$ for $z \sim \mathcal{N}(0, I)$, shape ``(n, 2)``, without gradients.

        $z$ is drawn on the generator's device (so a seeded CPU generator gives the same
        points on any device), then moved to the model's.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n!r}")
        param = next(self.parameters())
        device = generator.device if generator is not None else param.device
        z = torch.randn(n, _DIM, generator=generator, device=device, dtype=param.dtype)
        return self(z.to(param.device))
