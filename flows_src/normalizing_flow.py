r"""The normalizing flow of Sec. 3: coupling layers with a permutation between them.

The data is 2D, so a coupling layer splits a point ``z`` of shape ``(n, 2)`` into ``z_l``
(first coordinate) and ``z_r`` (second); the permutation between coupling layers swaps them,
so consecutive layers transform alternate coordinates. The coupling layers are either the
exercise's affine ones (Eq. 3-6), run by :class:`CouplingStack` (the readable layer is
:class:`~flows_src.couplings.AffineCoupling`), or rational-quadratic splines
(:class:`~flows_src.spline.SplineStack`), chosen by ``FlowConfig.transform``; the flow calls
either through ``per_layer``, ``forward_r`` and ``inverse_r``.

Intermediates (``return_intermediates=True``) are a tensor ``(n_couplings + 1, n, 2)``: the
input and the output of every coupling layer, all expressed in the axes of $x$ (the
permutations still to come are applied to each), so that in a plot every coupling layer moves
a point along one axis, alternating between the two. ``forward`` lists them from $z$
(t = 0) to $x$ (t = 1), ``inverse`` from $x$ (t = 1) to $z$ (t = 0); ``trajectory`` gives
them with the times $k / L$ of $L$ layers. The $z$ end is $z$ in the axes of $x$: $z$ itself
for an odd number of coupling layers (the exercise's 15), $z$ with its coordinates swapped for
an even number.

References:
    Dinh, Sohl-Dickstein and Bengio, "Density estimation using Real NVP", ICLR 2017.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flows_src.config import FlowConfig, NFConfig
from flows_src.couplings import AffineCoupling, Permutation, he_init_, linears
from flows_src.density import DIM, Trajectory, points, standard_normal
from flows_src.ode import standard_normal_log_prob
from flows_src.spline import SplineStack

__all__ = ["CouplingStack", "NormalizingFlow"]

#: One layer's weights and biases in a :class:`CouplingStack`, one tensor per MLP depth.
LayerParams = tuple[Sequence[Tensor], Sequence[Tensor]]


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


class CouplingStack(nn.Module):
    r"""``n`` affine coupling layers (:class:`~flows_src.couplings.AffineCoupling`, Eq. 3-6)
    with their weights stacked: ``weight[i]`` ``(n, 2, out, in)`` and ``bias[i]``
    ``(n, 2, out, 1)`` hold Linear layer ``i`` of both MLPs (index 0 the $\log \hat{s}$
    network, 1 the $b$ network) of every coupling layer.

    The same layers, fused: both MLPs run as one batched product per depth, the optimizer
    updates ``2 * n_linear`` tensors instead of ``4 * n_linear * n`` (300 for the exercise's
    flow), and autograd accumulates as many gradients; for these tiny networks that
    bookkeeping, not the arithmetic, is most of a training step. :meth:`from_layers` builds a
    stack from plain layers, :meth:`layer` gives one back.

    The flow calls it on the coordinates held apart, ``(n,)`` each (compiled, every loop then
    runs along contiguous memory), with one layer's views from :meth:`per_layer`.

    Arguments:
        weights, biases: the stacked tensors, as above.
        negative_slope: of the LeakyReLU between the Linear layers.
        log_s_bound: as in :class:`~flows_src.couplings.AffineCoupling`.
    """

    def __init__(self, weights: Sequence[Tensor], biases: Sequence[Tensor],
                 negative_slope: float = 0.01, log_s_bound: float | None = None):
        super().__init__()
        self.negative_slope = negative_slope
        self.log_s_bound = log_s_bound
        self.weight = nn.ParameterList(nn.Parameter(w) for w in weights)
        self.bias = nn.ParameterList(nn.Parameter(b) for b in biases)

    @classmethod
    def random(cls, n_couplings: int, hidden: int = 8, n_linear: int = 5,
               negative_slope: float = 0.01, log_s_bound: float | None = None
               ) -> CouplingStack:
        """``n_couplings`` layers in ``nn.Linear``'s default initialisation, U(+-1/sqrt(fan_in))
        for weights and biases, drawn one stacked tensor at a time (weight, then bias, per
        depth)."""
        if isinstance(n_linear, bool) or not isinstance(n_linear, int) or n_linear < 2:
            raise ValueError(f"n_linear must be an integer >= 2, got {n_linear!r}")
        sizes = [1] + [hidden] * (n_linear - 1) + [1]
        weights, biases = [], []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1 / math.sqrt(fan_in)  # the stacked layout hides fan_in from nn.init
            weights.append(torch.empty(n_couplings, 2, fan_out, fan_in).uniform_(-bound, bound))
            biases.append(torch.empty(n_couplings, 2, fan_out, 1).uniform_(-bound, bound))
        return cls(weights, biases, negative_slope, log_s_bound)

    @classmethod
    def from_layers(cls, layers: Sequence[AffineCoupling]) -> CouplingStack:
        """The stack of plain coupling layers (their weights copied), which must share one
        architecture, slope and bound."""
        settings = {(layer.negative_slope, layer.log_s_bound) for layer in layers}
        if len(settings) != 1:
            raise ValueError(f"layers must share negative_slope and log_s_bound, got {settings}")
        nets = [(linears(layer.log_s_net), linears(layer.b_net)) for layer in layers]
        depths = {n for pair in nets for n in map(len, pair)}
        if len(depths) != 1:
            raise ValueError(f"layers must share n_linear, got {sorted(depths)}")
        with torch.no_grad():  # stacked as (layer, network, out, in)
            weights = [torch.stack([torch.stack([s[i].weight, b[i].weight]) for s, b in nets])
                       for i in range(depths.pop())]
            biases = [torch.stack([torch.stack([s[i].bias, b[i].bias]) for s, b in nets])
                      .unsqueeze(-1) for i in range(len(weights))]
        return cls(weights, biases, *settings.pop())

    def layer(self, k: int) -> AffineCoupling:
        """Layer ``k`` as a plain :class:`~flows_src.couplings.AffineCoupling` (a copy; it
        draws no random numbers)."""
        hidden = self.weight[0].shape[-2]
        with torch.device("meta"):
            plain = AffineCoupling(hidden, len(self.weight), self.negative_slope,
                                   self.log_s_bound)
        plain = plain.to_empty(device=self.weight[0].device).to(self.weight[0].dtype)
        with torch.no_grad():
            for net, j in ((plain.log_s_net, 0), (plain.b_net, 1)):
                for linear, weight, bias in zip(linears(net), self.weight, self.bias):
                    linear.weight.copy_(weight[k, j])
                    linear.bias.copy_(bias[k, j, :, 0])
        return plain

    def __len__(self) -> int:
        return self.weight[0].shape[0]

    def per_layer(self) -> list[LayerParams]:
        """Every layer's ``(weights, biases)``, as views made by one ``unbind`` per stacked
        tensor: its gradient is one ``stack``, where indexing each layer apart would add a
        full-size gradient per layer and parameter."""
        weights = [weight.unbind(0) for weight in self.weight]
        biases = [bias.unbind(0) for bias in self.bias]
        return list(zip(zip(*weights), zip(*biases)))

    def log_s_and_b(self, z_l: Tensor, params: LayerParams) -> tuple[Tensor, Tensor]:
        r"""$f(z_l) = (\log \hat{s}, b)$ (Eq. 3) of the layer ``params``; ``(n,)`` each."""
        h = z_l.expand(2, 1, -1)  # (2, 1, n): one input shared by both networks
        for i, (weight, bias) in enumerate(zip(*params)):
            if i:
                h = F.leaky_relu(h, self.negative_slope)
            h = _affine(h, weight, bias)
        log_s, b = h[0, 0], h[1, 0]
        if self.log_s_bound is not None:
            log_s = self.log_s_bound * torch.tanh(log_s / self.log_s_bound)
        return log_s, b

    def forward_r(self, z_l: Tensor, z_r: Tensor, params: LayerParams) -> Tensor:
        r"""$y_r = e^{\log \hat{s}} \odot z_r + b$ (Eq. 3); ``(n,)`` each."""
        log_s, b = self.log_s_and_b(z_l, params)
        return log_s.exp() * z_r + b

    def inverse_r(self, y_l: Tensor, y_r: Tensor, params: LayerParams
                  ) -> tuple[Tensor, Tensor]:
        r"""$z_r = (y_r - b) / \hat{s}$ (Eq. 4) and the layer's log-determinant
        $-\log \hat{s}$ (Eq. 6); ``(n,)`` each."""
        log_s, b = self.log_s_and_b(y_l, params)
        return (y_r - b) * torch.exp(-log_s), -log_s

    def extra_repr(self) -> str:
        return f"{len(self)} affine coupling layers"


def _couplings(config: FlowConfig) -> CouplingStack | SplineStack:
    if config.transform == "spline":
        stack = SplineStack(config.n_couplings, config.bins, config.bound, config.hidden,
                            config.n_linear, config.negative_slope)
        if config.init == "he":
            for layer in stack.per_layer():
                nets = linears(layer.net)
                he_init_([m.weight for m in nets], [m.bias for m in nets],
                         config.negative_slope)
        return stack
    stack = CouplingStack.random(config.n_couplings, config.hidden, config.n_linear,
                                 config.negative_slope, config.log_s_bound)
    if config.init == "he":
        he_init_(stack.weight, stack.bias, config.negative_slope)
    return stack


def _in_output_axes(states: list[Tensor], perm: Tensor) -> Tensor:
    # states[k] (k >= 1) is the output of coupling layer k, in the axes left by the k - 1
    # permutations before it; the n_couplings - k after it bring it to the axes of x.
    # states[0], the input z, lies in the axes of states[1].
    axes = torch.arange(DIM, device=states[0].device)
    shown = [states[-1]]
    for k in range(len(states) - 2, -1, -1):
        if k:
            axes = axes[perm]
        shown.append(states[k].index_select(1, axes))
    return torch.stack(shown[::-1])


class NormalizingFlow(nn.Module):
    r"""$x = \phi(z)$ (Eq. 1): ``n_couplings`` coupling layers with a permutation between
    consecutive ones, and base distribution $p_z = \mathcal{N}(0, I)$ on 2D points; trained by
    maximum likelihood with the loss of Eq. 9 (:meth:`loss`). Intermediates and
    :meth:`trajectory`: see the module's docstring.

    Arguments:
        config: the architecture (:class:`~flows_src.config.NFConfig`'s model part); the
            exercise's when ``None``.

    Example:
        >>> flow = NormalizingFlow(NFConfig(n_couplings=3))
        >>> flow.log_prob(flow.sample(5, torch.Generator().manual_seed(0))).shape
        torch.Size([5])
    """

    exact_likelihood = True
    config_class = NFConfig

    def __init__(self, config: NFConfig | None = None):
        super().__init__()
        self.config = config if config is not None else NFConfig()
        self.couplings = _couplings(self.config.model)
        # One fixed permutation, reused between every pair of consecutive coupling layers.
        self.permutation = Permutation(DIM)

    def forward(self, z: Tensor, return_intermediates: bool = False
                ) -> Tensor | tuple[Tensor, Tensor]:
        r"""$x = \phi(z)$, ``(n, 2)``; with intermediates also ``(n_couplings + 1, n, 2)``."""
        z = points(z, "z", self)
        states = [z] if return_intermediates else None
        z = z.unbind(1)
        for k, params in enumerate(self.couplings.per_layer()):
            if k:
                z = self.permutation.columns(z)
            z = (z[0], self.couplings.forward_r(*z, params))
            if states is not None:
                states.append(torch.stack(z, dim=1))
        x = torch.stack(z, dim=1)
        return (x, _in_output_axes(states, self.permutation.perm)) if states is not None else x

    def _inverse(self, x: Tensor, states: list[Tensor] | None) -> tuple[Tensor, Tensor]:
        log_det = x.new_zeros(x.shape[0])
        y = x.unbind(1)
        for k, params in reversed(list(enumerate(self.couplings.per_layer()))):
            z_r, log_det_k = self.couplings.inverse_r(*y, params)
            y, log_det = (y[0], z_r), log_det + log_det_k
            if k:
                y = self.permutation.inverse_columns(y)
            if states is not None:
                states.append(torch.stack(y, dim=1))
        return torch.stack(y, dim=1), log_det

    def inverse(self, x: Tensor, return_intermediates: bool = False
                ) -> Tensor | tuple[Tensor, Tensor]:
        r"""$z = \phi^{-1}(x)$, ``(n, 2)``; with intermediates also ``(n_couplings + 1, n, 2)``
        ordered from $x$ (t = 1) to $z$ (t = 0)."""
        x = points(x, "x", self)
        states = [x] if return_intermediates else None
        z, _ = self._inverse(x, states)
        if states is None:
            return z
        return z, _in_output_axes(states[::-1], self.permutation.perm).flip(0)

    def inverse_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r"""$z = \phi^{-1}(x)$ ``(n, 2)`` and $\log |\det \partial \phi^{-1}(x) / \partial x^T|$
        ``(n,)`` in one pass (Eq. 7-8: each coupling layer's Eq. 6 summed; permutations add 0)."""
        return self._inverse(points(x, "x", self), None)

    def log_prob(self, x: Tensor, c: None = None) -> Tensor:
        r"""$\log p(x) = \log p_z(\phi^{-1}(x)) + \log |\det \partial \phi^{-1}(x) / \partial x^T|$
        (Eq. 2), ``(n, 2)`` floats to ``(n,)``, computed in the weights' dtype.

        Far outside the data a trained flow's inverse can overflow (inf, then nan): such points
        get $-\infty$, not nan, so a density map or a mean stays usable; a nan in ``x`` stays nan.
        """
        _unconditional(c)
        x = points(x, "x", self)
        z, log_det = self._inverse(x, None)
        log_p = standard_normal_log_prob(z) + log_det
        overflowed = log_p.isnan() & ~x.isnan().any(dim=1)
        return log_p.masked_fill(overflowed, -math.inf)

    def loss(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        r"""The batch mean of Eq. 9, $-\log p_z(\phi^{-1}(x)) - \log |\det \partial
        \phi^{-1}(x) / \partial x^T|$, for ``x`` ``(n, 2)``, and its two terms' batch means,
        detached: ``(loss, {"log_det": ..., "log_pz": ...})``, loss = -(log_pz + log_det).

        An overflow shows here as nan or inf, unlike in :meth:`log_prob`, so that training
        stops on it. Free of Python side effects, so ``torch.compile(flow.loss)`` traces it
        whole (the spline couplings' networks stay eager on purpose: :mod:`flows_src.spline`).
        """
        z, log_det = self._inverse(x, None)
        log_pz = standard_normal_log_prob(z)
        loss = -(log_pz + log_det).mean()
        return loss, {"log_det": log_det.mean().detach(), "log_pz": log_pz.mean().detach()}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, *,
               c: None = None) -> Tensor:
        r"""$x = \phi(z)$ for $z \sim \mathcal{N}(0, I)$ from ``generator``, shape ``(n, 2)``,
        without gradients (:func:`~flows_src.density.standard_normal`)."""
        _unconditional(c)
        return self(standard_normal(n, generator, next(self.parameters())))

    @torch.no_grad()
    def trajectory(self, x: Tensor, *, c: None = None, reverse: bool = False,
                   times: Sequence[float] | Tensor | None = None) -> Trajectory:
        r"""The input and every coupling layer's output (see the module), at times $k / L$ for
        $L$ layers: from $z$ ($t = 0$) to $x$, or with ``reverse`` from $x$ ($t = 1$) to
        $z$; only the layers nearest ``times`` when given."""
        _unconditional(c)
        states = (self.inverse if reverse else self.forward)(x, return_intermediates=True)[1]
        grid = torch.linspace(0, 1, len(states), dtype=states.dtype)
        path = Trajectory(times=grid.flip(0) if reverse else grid, states=states)
        return path if times is None else path.nearest(times)

    def with_sampler(self, sampler: object = None, **changes) -> NormalizingFlow:
        """This flow: it samples and scores in closed form, with no solver to set."""
        return self


def _unconditional(c: object) -> None:
    if c is not None:
        raise ValueError("c must be None: a normalizing flow here is unconditional")
