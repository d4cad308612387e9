r"""Flow matching (Sec. 4): the velocity field, the linear probability path and its objective.

A network :math:`v_t(y)` is trained to match the velocity of the conditional linear flow
:math:`y_t = t\,y_1 + (1 - t)\,y_0` (Eq. 14), which is the constant :math:`y_1 - y_0` (Eq. 15);
the loss is Eq. 16 (Alg. 1). Sampling, inverting and the likelihood integrate the learned
field with :mod:`flows_src.ode` (Eq. 17, Eq. 18, Alg. 2). Here :math:`x_0 = y_0` is the noise
and :math:`x_1 = y_1` the data, as in the references.

With ``FMConfig.coupling = "ot"`` the loss pairs each batch's noise with its data by
minibatch optimal transport (:func:`ot_coupled_noise`) instead of independently: the same
objective on pairs whose straight lines cross less, so the learned paths are straighter.

References:
    Lipman et al., "Flow Matching for Generative Modeling", 2022 (arXiv:2210.02747).
    Tong et al., "Improving and Generalizing Flow-Based Generative Models with Minibatch
    Optimal Transport", TMLR 2024 (arXiv:2302.00482).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from flows_src.config import FMConfig
from flows_src.ode import ODESolution, Velocity, log_prob, solve
from flows_src.ot import ot_pairing

__all__ = ["DIM", "PathSample", "sample_path", "ot_coupled_noise", "VelocityField"]

DIM = 2
"""The points are 2D."""


@dataclass
class PathSample:
    r"""A draw from the linear path of Eq. 14, one ``t`` per point.

    Arguments:
        x_0: noise :math:`x_0 \sim \mathcal{N}(0, I)`, ``(n, 2)``.
        x_1: data, ``(n, 2)``.
        t: times :math:`t \sim \mathcal{U}[0, 1]`, ``(n,)``.
        x_t: :math:`t\,x_1 + (1 - t)\,x_0` (Eq. 14), ``(n, 2)``.
        dx_t: its time derivative :math:`x_1 - x_0` (Eq. 15), the regression target, ``(n, 2)``.
    """

    x_0: Tensor
    x_1: Tensor
    t: Tensor
    x_t: Tensor
    dx_t: Tensor


def sample_path(
    x_1: Tensor,
    *,
    x_0: Tensor | None = None,
    t: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> PathSample:
    r"""Draw :math:`x_0 \sim \mathcal{N}(0, I)` and :math:`t \sim \mathcal{U}[0, 1]` and place
    each point on its conditional path (Eq. 14, Alg. 1).

    Arguments:
        x_1: data points, ``(n, d)``.
        x_0: noise to use instead of a draw, ``(n, d)``.
        t: times to use instead of a draw, ``(n,)``.
        generator: for the draws (default: torch's global generator); ``x_0`` is drawn first.

    Returns:
        A :class:`PathSample`.

    Example:
        >>> path = sample_path(torch.zeros(4, 2), t=torch.ones(4))
        >>> bool((path.x_t == path.x_1).all())
        True
    """
    if x_0 is None:
        x_0 = torch.randn(x_1.shape, generator=generator, dtype=x_1.dtype, device=x_1.device)
    if t is None:
        t = torch.rand(x_1.shape[0], generator=generator, dtype=x_1.dtype, device=x_1.device)
    x_t = t[:, None] * x_1 + (1 - t[:, None]) * x_0
    return PathSample(x_0=x_0, x_1=x_1, t=t, x_t=x_t, dx_t=x_1 - x_0)


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


class VelocityField(nn.Module):
    r"""The learned velocity :math:`v_t(y)` (Eq. 11-16), unconditional or class-conditional.

    An MLP of ``config.n_linear`` Linear layers of width ``config.hidden`` with LeakyReLU
    between them (Sec. 4.3). Its input is :math:`[y, t]` (with ``config.time_features = k``
    also :math:`\sin(\pi j t), \cos(\pi j t)`, :math:`j = 1..k`); time is a feature of the network,
    the same weights serve every :math:`t`. With ``config.n_classes`` set, the class goes
    through ``nn.Embedding(n_classes, embed_dim)`` and the first Linear layer mixes
    :math:`[y, t, e(c)]` (Sec. 4.3, conditional flow matching).

    Arguments:
        config: the architecture (``hidden``, ``n_linear``, ``negative_slope``,
            ``n_classes``, ``embed_dim``) and the default sampling step ``dt``.

    Example:
        >>> model = VelocityField(FMConfig(n_classes=5))
        >>> model(torch.zeros(3, 2), 0.5, torch.tensor([0, 1, 4])).shape
        torch.Size([3, 2])
        >>> model.sample(10, c=2, dt=0.1).y.shape
        torch.Size([10, 2])
    """

    def __init__(self, config: FMConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or FMConfig()
        conditional = config.n_classes is not None
        self.embedding = nn.Embedding(config.n_classes, config.embed_dim) if conditional else None
        widths = [DIM + 1 + 2 * config.time_features + (config.embed_dim if conditional else 0)]
        widths += [config.hidden] * (config.n_linear - 1) + [DIM]
        layers: list[nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            if i > 0:
                layers.append(nn.LeakyReLU(config.negative_slope))
            layers.append(nn.Linear(fan_in, fan_out))
        self.net = nn.Sequential(*layers)
        self.register_buffer("frequencies",
                             math.pi * torch.arange(1, config.time_features + 1).float(),
                             persistent=False)

    def forward(self, y: Tensor, t: Tensor | float, c: Tensor | int | None = None) -> Tensor:
        r"""The velocity :math:`v_t(y \mid c)`.

        Arguments:
            y: points, ``(n, 2)``.
            t: times, ``(n,)``, or one time for all points (a float or a 0-d tensor).
            c: class labels in ``[0, n_classes - 1]``, ``(n,)`` or one int for all points;
                required by the conditional model, ``None`` for the unconditional one.

        Returns:
            The velocity, ``(n, 2)``.
        """
        n = y.shape[0]
        t = torch.as_tensor(t, dtype=y.dtype, device=y.device)
        if t.ndim == 0:
            t = t.expand(n)
        return self._velocity(y, t, self._embed(c, n, y.device))

    def _velocity(self, y: Tensor, t: Tensor, embedded: Tensor | None) -> Tensor:
        features = [y, t[:, None]]
        if self.config.time_features:
            angles = t[:, None] * self.frequencies.to(t.dtype)
            features += [angles.sin(), angles.cos()]
        if embedded is not None:
            features.append(embedded.expand(y.shape[0], -1))
        return self.net(torch.cat(features, dim=1))

    def _embed(self, c: Tensor | int | None, n: int | None, device: torch.device) -> Tensor | None:
        """The class embedding, ``(n, embed_dim)`` or ``(1, embed_dim)`` for one int, after
        checking ``c`` against the config (and against ``n`` points when given)."""
        n_classes = self.config.n_classes
        if n_classes is None:
            if c is not None:
                raise ValueError("c must be None: this model is unconditional (n_classes=None)")
            return None
        allowed = f"class labels in [0, {n_classes - 1}]"
        if c is None:
            raise ValueError(f"c is required: this model is class-conditional, pass {allowed}")
        c = torch.as_tensor(c, device=device)
        if c.is_floating_point() or c.is_complex() or c.dtype == torch.bool:
            raise ValueError(f"c must be integer {allowed}, got dtype {c.dtype}")
        if c.ndim == 0:
            c = c.reshape(1)
        elif c.ndim != 1 or (n is not None and len(c) != n):
            expected = f"({n},)" if n is not None else "(n,)"
            raise ValueError(f"c must have shape {expected} or be one int, got {tuple(c.shape)}")
        # A data-dependent check would break a compiled graph; nn.Embedding still rejects a
        # bad index there, only with a less helpful message.
        if not torch.compiler.is_compiling():
            bad = (c < 0) | (c >= n_classes)
            if bad.any():
                raise ValueError(f"c must be {allowed}, got {c[bad][0].item()}")
        return self.embedding(c)

    def as_velocity(self, c: Tensor | int | None = None, n: int | None = None, *,
                    embedding: Tensor | None = None) -> Velocity:
        r"""The field as a :data:`flows_src.ode.Velocity` ``v(y, t)`` for class ``c``.

        The class is checked and embedded once here rather than at every solver step.

        Arguments:
            c: as in :meth:`forward`; an int serves any number of points.
            n: when given, ``c`` must be one int or have shape ``(n,)``.
            embedding: instead of ``c``, a class embedding vector of the conditional model,
                ``(1, embed_dim)``: one that no label has, e.g. a new class learned with the
                network frozen (:func:`flows_src.steering.learn_embedding`). Gradients flow
                into it.
        """
        if embedding is not None:
            size = self.config.embed_dim
            if self.config.n_classes is None or c is not None:
                raise ValueError("embedding is for the conditional model, in place of c")
            if embedding.shape != (1, size):
                raise ValueError(f"embedding must have shape (1, {size}), "
                                 f"got {tuple(embedding.shape)}")
            return lambda y, t: self._velocity(y, t, embedding)
        embedded = self._embed(c, n, next(self.parameters()).device)
        return lambda y, t: self._velocity(y, t, embedded)

    def loss(self, x_1: Tensor, c: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        r"""The flow-matching objective of Eq. 16 on one batch (Alg. 1).

        .. math:: \mathcal{L} = \frac{1}{n} \sum_{i=1}^n \|v_{t_i}(x_{t_i}) - (x_1^i - x_0^i)\|^2

        squared error summed over the 2 coordinates, averaged over the points, with fresh
        :math:`x_0, t` from torch's global generator (see :func:`sample_path`; with
        ``config.time_power`` :math:`p \ne 1`, :math:`t = 1 - (1 - u)^p`). With
        ``config.coupling == "ot"`` the same draw of :math:`x_0` is first re-paired with the
        batch by minibatch optimal transport, in blocks of ``config.batch_size`` points and
        within each class (:func:`ot_coupled_noise`); the assignment runs eagerly, so under
        ``torch.compile`` that path breaks the graph there (the default path compiles whole).

        Arguments:
            x_1: a batch of data, ``(n, 2)``.
            c: its class labels, ``(n,)``, for the conditional model.

        Returns:
            ``(loss, {})``: the scalar loss and no further components.
        """
        embedded = self._embed(c, x_1.shape[0], x_1.device)  # checks c before it is used
        x_0 = t = None
        if self.config.coupling == "ot" or self.config.time_power != 1:
            # sample_path's own draws, in its order, so the exercise's path is unchanged
            x_0 = torch.randn_like(x_1)
            t = torch.rand(x_1.shape[0], dtype=x_1.dtype, device=x_1.device)
            if self.config.time_power != 1:
                t = 1 - (1 - t) ** self.config.time_power
        if self.config.coupling == "ot":
            x_0 = ot_coupled_noise(x_0, x_1, c, block=self.config.batch_size)
        path = sample_path(x_1, x_0=x_0, t=t)
        error = self._velocity(path.x_t, path.t, embedded) - path.dx_t
        return error.square().sum(dim=1).mean(), {}

    def sample(
        self,
        n: int,
        *,
        dt: float | None = None,
        c: Tensor | int | None = None,
        generator: torch.Generator | None = None,
        method: str = "euler",
        return_intermediates: bool = False,
        times: Sequence[float] | Tensor | None = None,
    ) -> ODESolution:
        r"""Draw :math:`x_0 \sim \mathcal{N}(0, I)` and integrate from :math:`t = 0` to :math:`1`
        (Eq. 17, Alg. 2 with Euler).

        Arguments:
            n: the number of points.
            dt: the step, in ``(0, 1]`` (default ``config.dt``).
            c: classes, ``(n,)`` or one int, for the conditional model.
            generator: for :math:`x_0` (default: torch's global generator).
            method, return_intermediates, times: as in :func:`flows_src.ode.solve`.

        Returns:
            An :class:`~flows_src.ode.ODESolution`; ``y`` holds the samples, ``(n, 2)``.
        """
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n!r}")
        n = int(n)
        weight = next(self.parameters())
        x_0 = torch.randn(n, DIM, generator=generator, dtype=weight.dtype, device=weight.device)
        return self.sample_from(x_0, dt=dt, c=c, method=method,
                                return_intermediates=return_intermediates, times=times)

    def sample_from(
        self,
        x_0: Tensor,
        *,
        dt: float | None = None,
        c: Tensor | int | None = None,
        method: str = "euler",
        return_intermediates: bool = False,
        times: Sequence[float] | Tensor | None = None,
    ) -> ODESolution:
        r"""Integrate given noise ``x_0`` ``(n, 2)`` from :math:`t = 0` to :math:`1` (Eq. 17);
        the arguments are :meth:`sample`'s."""
        return solve(
            self.as_velocity(c, x_0.shape[0]),
            x_0,
            dt=self.config.dt if dt is None else dt,
            method=method,
            return_intermediates=return_intermediates,
            times=times,
        )

    def reverse(
        self,
        x_1: Tensor,
        *,
        dt: float | None = None,
        c: Tensor | int | None = None,
        method: str = "euler",
        return_intermediates: bool = False,
        times: Sequence[float] | Tensor | None = None,
    ) -> ODESolution:
        r"""Integrate from :math:`t = 1` back to :math:`0`, mapping data to noise (Eq. 18).

        Arguments:
            x_1: points, ``(n, 2)``.
            dt: the step, in ``(0, 1]`` (default ``config.dt``).
            c: classes, ``(n,)`` or one int, for the conditional model.
            method, return_intermediates, times: as in :func:`flows_src.ode.solve`; the
                returned times run from 1 down to 0.

        Returns:
            An :class:`~flows_src.ode.ODESolution`; ``y`` holds :math:`x_0`, ``(n, 2)``.
        """
        return solve(
            self.as_velocity(c, x_1.shape[0]),
            x_1,
            dt=self.config.dt if dt is None else dt,
            t_start=1.0,
            t_end=0.0,
            method=method,
            return_intermediates=return_intermediates,
            times=times,
        )

    def log_prob(
        self,
        x_1: Tensor,
        c: Tensor | int | None = None,
        *,
        dt: float = 0.01,
        method: str = "rk4",
    ) -> Tensor:
        r"""Model log density :math:`\log p_1(x_1 \mid c)` in nats, ``(n,)``, with a standard
        normal :math:`p_0`, by the instantaneous change of variables
        (:func:`flows_src.ode.log_prob`, Chen et al. 2018).
        """
        return log_prob(self.as_velocity(c, x_1.shape[0]), x_1, dt=dt, method=method)
