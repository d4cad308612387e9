r"""The flow-matching network: the velocity :math:`v_t(x_t \mid c)` and nothing else.

An MLP of ``n_linear`` Linear layers of width ``hidden`` with LeakyReLU between them
(Sec. 4.3). Its input is :math:`[x_t, t]` (with ``time_features = k`` also
:math:`\sin(\pi j t), \cos(\pi j t)`, :math:`j = 1..k`; with ``space_features = m`` also
:math:`\sin(2^j \pi x / 2), \cos(2^j \pi x / 2)` of each coordinate :math:`x` of :math:`x_t`,
:math:`j = 0..m-1`); time is a feature of the network, the same weights serve every
:math:`t`. With ``n_classes`` set, the class goes through
``nn.Embedding(n_classes, embed_dim)`` and the first Linear layer mixes
:math:`[x_t, t, e(c)]` (Sec. 4.3, conditional flow matching). With ``null_class`` it also
learns a "no class" embedding :math:`e(\varnothing)`, trained on the labels the objective
drops, so that it can be sampled with classifier-free guidance (Ho & Salimans 2022):
:math:`v_t(x_t \mid c) + w\,(v_t(x_t \mid c) - v_t(x_t \mid \varnothing))`. What it is trained on
is :mod:`flows_src.fm_loss`; how it is integrated, :mod:`flows_src.sampler`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from flows_src.density import DIM
from flows_src.ode import Velocity

__all__ = ["VelocityNet"]


def _per_point(t: Tensor | float, x_t: Tensor) -> Tensor:
    """Times ``(n,)`` for the ``n`` points ``x_t``: ``t`` itself, or one time repeated."""
    t = torch.as_tensor(t, dtype=x_t.dtype, device=x_t.device)
    return t.expand(x_t.shape[0]) if t.ndim == 0 else t


class VelocityNet(nn.Module):
    r"""The learned velocity :math:`v_t(x_t \mid c)` (Eq. 11-16).

    Arguments:
        hidden: width of every hidden Linear layer (the exercise: at least 64).
        n_linear: Linear layers (the exercise: 4-5).
        negative_slope: of the LeakyReLU between them.
        time_features: frequencies :math:`k` of the sines and cosines of :math:`t` (0: none).
        space_features: octaves :math:`m` of the sines and cosines of each coordinate of
            :math:`x_t` (0: none; see :class:`~flows_src.config.VelocityConfig`).
        n_classes: ``None`` for the unconditional network, else the number of classes.
        embed_dim: size of the class embedding.
        null_class: the conditional network also has a "no class" embedding (zeros at the
            start, created after the Linear layers so that the other initial weights are
            those without it), for training with dropped labels and sampling with guidance.

    Example:
        >>> net = VelocityNet(n_classes=5)
        >>> net(torch.zeros(3, 2), 0.5, torch.tensor([0, 1, 4])).shape
        torch.Size([3, 2])
    """

    def __init__(self, hidden: int = 64, n_linear: int = 5, negative_slope: float = 0.01,
                 time_features: int = 0, n_classes: int | None = None, embed_dim: int = 8,
                 space_features: int = 0, null_class: bool = False):
        super().__init__()
        if null_class and n_classes is None:
            raise ValueError("null_class needs a class-conditional network (n_classes set)")
        self.n_classes, self.embed_dim = n_classes, embed_dim
        conditional = n_classes is not None
        # created before the Linear layers: the order of the initial weights' random draws
        self.embedding = nn.Embedding(n_classes, embed_dim) if conditional else None
        widths = [DIM + 1 + 2 * time_features + 2 * DIM * space_features
                  + (embed_dim if conditional else 0)]
        widths += [hidden] * (n_linear - 1) + [DIM]
        layers: list[nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            if i > 0:
                layers.append(nn.LeakyReLU(negative_slope))
            layers.append(nn.Linear(fan_in, fan_out))
        self.net = nn.Sequential(*layers)
        self.null_embedding = nn.Parameter(torch.zeros(1, embed_dim)) if null_class else None
        self.register_buffer("frequencies", math.pi * torch.arange(1, time_features + 1).float(),
                             persistent=False)
        self.register_buffer("octaves", math.pi / 2 * 2.0 ** torch.arange(space_features),
                             persistent=False)

    def forward(self, x_t: Tensor, t: Tensor | float, c: Tensor | int | None = None,
                dropped: Tensor | None = None) -> Tensor:
        r"""The velocity :math:`v_t(x_t \mid c)`, ``(n, 2)``.

        Arguments:
            x_t: points, ``(n, 2)``.
            t: times, ``(n,)``, or one time for all points (a float or a 0-d tensor).
            c: class labels in ``[0, n_classes - 1]``, ``(n,)`` or one int for all points;
                required by the conditional network, ``None`` for the unconditional one.
            dropped: bool ``(n,)``: the points whose label is dropped, so that they get the
                "no class" embedding (a network with ``null_class`` only).
        """
        n = x_t.shape[0]
        t = _per_point(t, x_t)
        embedded = self.embed(c, n, x_t.device)
        if dropped is not None:
            if self.null_embedding is None:
                raise ValueError("dropped needs a network with a null class (null_class=True)")
            embedded = torch.where(dropped[:, None], self.null_embedding,
                                   embedded.expand(n, -1))
        return self._velocity(x_t, t, embedded)

    def _velocity(self, x_t: Tensor, t: Tensor, embedded: Tensor | None) -> Tensor:
        features = [x_t, t[:, None]]
        if len(self.frequencies):
            angles = t[:, None] * self.frequencies.to(t.dtype)
            features += [angles.sin(), angles.cos()]
        if len(self.octaves):
            angles = (x_t[:, :, None] * self.octaves.to(x_t.dtype)).flatten(1)
            features += [angles.sin(), angles.cos()]
        if embedded is not None:
            features.append(embedded.expand(x_t.shape[0], -1))
        return self.net(torch.cat(features, dim=1))

    def embed(self, c: Tensor | int | None, n: int | None, device: torch.device
              ) -> Tensor | None:
        """The class embedding, ``(n, embed_dim)`` or ``(1, embed_dim)`` for one int, after
        checking ``c`` (against ``n`` points when given); ``None`` for the unconditional
        network."""
        if self.n_classes is None:
            if c is not None:
                raise ValueError("c must be None: this model is unconditional (n_classes=None)")
            return None
        allowed = f"class labels in [0, {self.n_classes - 1}]"
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
            bad = (c < 0) | (c >= self.n_classes)
            if bad.any():
                raise ValueError(f"c must be {allowed}, got {c[bad][0].item()}")
        return self.embedding(c)

    def as_velocity(self, c: Tensor | int | None = None, n: int | None = None, *,
                    embedding: Tensor | None = None, guidance: float = 0.0) -> Velocity:
        r"""The network as a :data:`flows_src.ode.Velocity` ``v(x_t, t)`` for class ``c``,
        checked and embedded once here rather than at every solver step.

        Arguments:
            c: as in :meth:`forward`; an int serves any number of points.
            n: when given, ``c`` must be one int or have shape ``(n,)``.
            embedding: instead of ``c``, a class embedding of the conditional network,
                ``(1, embed_dim)``: one that no label has, e.g. a new class learned with the
                network frozen (:func:`flows_src.steering.learn_embedding`). Gradients flow
                into it.
            guidance: the weight :math:`w \ge 0` of classifier-free guidance,
                :math:`v(x_t \mid c) + w\,(v(x_t \mid c) - v(x_t \mid \varnothing))`; 0 is the
                network itself, anything else needs the null class (``null_class=True``).
        """
        if embedding is not None:
            if self.n_classes is None or c is not None:
                raise ValueError("embedding is for the conditional model, in place of c")
            if embedding.shape != (1, self.embed_dim):
                raise ValueError(f"embedding must have shape (1, {self.embed_dim}), "
                                 f"got {tuple(embedding.shape)}")
            embedded = embedding
        else:
            embedded = self.embed(c, n, next(self.parameters()).device)
        if not guidance:
            return lambda x_t, t: self._velocity(x_t, t, embedded)
        if self.n_classes is None:
            raise ValueError("guidance is for the class-conditional model")
        if self.null_embedding is None:
            raise ValueError("guidance needs a network trained with dropped labels "
                             "(class_dropout > 0, which gives it a null class)")
        return self._guided(embedded, guidance)

    def _guided(self, embedded: Tensor, guidance: float) -> Velocity:
        def velocity(x_t: Tensor, t: Tensor) -> Tensor:
            n = x_t.shape[0]
            # one pass of the network over both halves: the class's and the null class's
            both = torch.cat([embedded.expand(n, -1), self.null_embedding.expand(n, -1)])
            t = _per_point(t, x_t)
            v_c, v_null = self._velocity(torch.cat([x_t, x_t]), torch.cat([t, t]),
                                         both).chunk(2)
            return v_c + guidance * (v_c - v_null)
        return velocity
