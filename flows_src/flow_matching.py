r"""Flow matching (Sec. 4) as a density model: a velocity network, its objective, its sampler.

A network :math:`v_t(x_t)` (:mod:`flows_src.velocity`) is trained to match the velocity of
the conditional linear path :math:`x_t = t\,x_1 + (1 - t)\,x_0` (Eq. 14,
:mod:`flows_src.paths`), the constant :math:`x_1 - x_0` (Eq. 15), with the loss of Eq. 16
(:mod:`flows_src.fm_loss`, Alg. 1). Sampling, inverting and the likelihood integrate the
learned field (Eq. 17, Eq. 18, Alg. 2) with the settings of an
:class:`~flows_src.sampler.ODESampler`. :class:`FlowMatching` puts the three together behind
the face both families share (:class:`~flows_src.density.DensityModel`). Here :math:`x_0` is
the noise and :math:`x_1` the data; the exercise calls the ODE's state :math:`y_t`.

References:
    Lipman et al., "Flow Matching for Generative Modeling", 2022 (arXiv:2210.02747).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from flows_src.config import FMConfig
from flows_src.density import Trajectory, standard_normal
from flows_src.fm_loss import FlowMatchingLoss, coupling
from flows_src.ode import LOG_PROB_CHUNK, ODESolution, Velocity
from flows_src.sampler import ODESampler
from flows_src.velocity import VelocityNet

__all__ = ["FlowMatching"]


class FlowMatching(nn.Module):
    r"""Flow matching, unconditional or class-conditional, built from an
    :class:`~flows_src.config.FMConfig`.

    Arguments:
        config: the network (``model``), the ``objective`` and the ``sampler``; the
            exercise's when ``None``.

    Attributes:
        net: the :class:`~flows_src.velocity.VelocityNet`, the only trained part.
        objective: the :class:`~flows_src.fm_loss.FlowMatchingLoss`.
        sampler: the :class:`~flows_src.sampler.ODESampler` every solve uses.

    Example:
        >>> model = FlowMatching(FMConfig(n_classes=5)).with_sampler(dt=0.1)
        >>> model.sample(10, c=2).shape
        torch.Size([10, 2])
    """

    exact_likelihood = False
    config_class = FMConfig

    def __init__(self, config: FMConfig | None = None):
        super().__init__()
        self.config = config = config or FMConfig()
        dropout = config.objective.class_dropout  # FMConfig checks it is conditional
        self.net = VelocityNet(**dataclasses.asdict(config.model), null_class=dropout > 0)
        # OT-CFM pairs within the minibatch: blocks of the training batch's size
        self.objective = FlowMatchingLoss(coupling(config.objective.coupling, config.batch_size),
                                          config.objective.time_power, class_dropout=dropout)
        self.sampler = config.sampler

    def loss(self, x_1: Tensor, c: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """The objective (Eq. 16) on a batch ``x_1`` ``(n, 2)`` with classes ``c`` ``(n,)``:
        ``(loss, {})``."""
        return self.objective(self.net, x_1, c)

    def with_sampler(self, sampler: ODESampler | None = None, **changes) -> FlowMatching:
        """This model (the same network, no copy of its weights) with ``sampler``, or with
        its own sampler's fields changed: ``model.with_sampler(dt=0.01)``."""
        other = copy.copy(self)  # a shallow copy shares the network's modules
        other.sampler = dataclasses.replace(sampler or self.sampler, **changes)
        return other

    def as_velocity(self, c: Tensor | int | None = None, n: int | None = None, *,
                    embedding: Tensor | None = None) -> Velocity:
        """The field ``v(x_t, t)`` for class ``c`` (or a class ``embedding``), guided with the
        sampler's ``guidance``, as the solvers of :mod:`flows_src.ode` take it
        (:meth:`VelocityNet.as_velocity`)."""
        return self.net.as_velocity(c, n, embedding=embedding, guidance=self.sampler.guidance)

    def solve(self, x: Tensor, *, c: Tensor | int | None = None, reverse: bool = False,
              times: Sequence[float] | Tensor | None = None,
              return_intermediates: bool = False) -> ODESolution:
        """Integrate ``x`` ``(n, 2)`` with the sampler: noise to data (Eq. 17), or with
        ``reverse`` data to noise (Eq. 18); the whole :class:`~flows_src.ode.ODESolution`
        (its ``nfe`` too)."""
        return self.sampler.solve(self.as_velocity(c, x.shape[0]), x, reverse=reverse,
                                  times=times, return_intermediates=return_intermediates)

    def sample(self, n: int, generator: torch.Generator | None = None, *,
               c: Tensor | int | None = None) -> Tensor:
        r"""``n`` points, ``(n, 2)``: :math:`x_0 \sim \mathcal{N}(0, I)` from ``generator``,
        integrated to :math:`t = 1` (Alg. 2 with the sampler's method and step)."""
        return self.solve(standard_normal(n, generator, next(self.parameters())), c=c).y

    def log_prob(self, x: Tensor, c: Tensor | int | None = None) -> Tensor:
        r""":math:`\log p_1(x \mid c)` in nats, ``(n,)``, with a standard normal :math:`p_0`,
        by the instantaneous change of variables with the sampler's ``nll_dt`` and
        ``nll_method`` (:func:`flows_src.ode.log_prob`, Chen et al. 2018). A class per point
        goes with its points, chunk by chunk (:data:`flows_src.ode.LOG_PROB_CHUNK`)."""
        # a c that does not fit x is refused here, before it is split with x
        velocity = self.as_velocity(c, x.shape[0])
        classes = None if c is None else torch.as_tensor(c)
        if classes is None or classes.dim() == 0 or len(x) <= LOG_PROB_CHUNK:
            return self.sampler.log_prob(velocity, x)
        # the field of a class per point is built for its rows: one field per chunk
        return torch.cat([self.sampler.log_prob(self.as_velocity(c_part, len(part)), part)
                          for part, c_part in zip(x.split(LOG_PROB_CHUNK),
                                                  classes.split(LOG_PROB_CHUNK), strict=True)])

    def trajectory(self, x: Tensor, *, c: Tensor | int | None = None, reverse: bool = False,
                   times: Sequence[float] | Tensor | None = None) -> Trajectory:
        """The states of ``x`` ``(n, 2)`` on its way, at every step or at ``times`` (snapped
        to the step grid): from noise at :math:`t = 0`, or with ``reverse`` from data at
        :math:`t = 1`."""
        solution = self.solve(x, c=c, reverse=reverse, times=times, return_intermediates=True)
        return Trajectory(times=solution.times, states=solution.states)
