r"""How a continuous flow is integrated: the solver settings, held in one object.

:class:`ODESampler` holds the step and method of the sampler (Eq. 17 forward, Eq. 18
backward) and of the change-of-variables likelihood, and applies them to any velocity
``v(y, t)`` with :mod:`flows_src.ode`, as the ``ODESolver`` of Meta's flow_matching wraps a
velocity model. A model keeps one and is re-armed with another
(:meth:`flows_src.flow_matching.FlowMatching.with_sampler`); no call site repeats the
numbers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

from flows_src.ode import METHODS, ODESolution, Velocity, log_prob, solve

__all__ = ["ODESampler"]


def _check(name: str, value: object, allowed: str) -> None:
    if name == "guidance":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 20:
            raise ValueError(f"guidance must be a number in [0, 20], got {value!r}")
    elif name.endswith("dt"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
            raise ValueError(f"{name} must be a number in (0, 1], got {value!r}")
    elif value not in METHODS:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


@dataclass(frozen=True)
class ODESampler:
    r"""The solver settings of a flow-matching model (defaults: the exercise's Alg. 2).

    Arguments:
        dt: the step of the sampler and of the reverse process, in ``(0, 1]``.
        method: ``"euler"`` (Alg. 2), ``"midpoint"`` or ``"rk4"``.
        nll_dt: the step of the likelihood's backward solve.
        nll_method: its method (RK4 keeps the likelihood accurate).
        guidance: the weight :math:`w` of classifier-free guidance for a class-conditional
            model trained with ``class_dropout`` (:meth:`~flows_src.velocity.VelocityNet.\
as_velocity`); 0, the exercise, integrates the network as it is. It changes the field that
            every solve integrates, so the likelihood too is that of the guided sampler's
            distribution.

    Example:
        >>> import torch
        >>> sampler = ODESampler(dt=0.25)
        >>> sampler.solve(lambda y, t: -y, torch.ones(1, 2)).nfe
        4
    """

    dt: float = 1e-3
    method: str = "euler"
    nll_dt: float = 0.01
    nll_method: str = "rk4"
    guidance: float = 0.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check(f.name, getattr(self, f.name), ", ".join(map(repr, METHODS)))

    def solve(self, velocity: Velocity, x: Tensor, *, reverse: bool = False,
              times: Sequence[float] | Tensor | None = None,
              return_intermediates: bool = False) -> ODESolution:
        """Integrate ``x`` ``(n, d)`` from :math:`t = 0` to :math:`1` (Eq. 17), or with
        ``reverse`` from :math:`1` back to :math:`0` (Eq. 18); ``times`` and
        ``return_intermediates`` as in :func:`flows_src.ode.solve`."""
        span = {"t_start": 1.0, "t_end": 0.0} if reverse else {}
        return solve(velocity, x, dt=self.dt, method=self.method, times=times,
                     return_intermediates=return_intermediates, **span)

    def log_prob(self, velocity: Velocity, x_1: Tensor) -> Tensor:
        r""":math:`\log p_1(x_1)` ``(n,)`` of ``x_1`` ``(n, d)`` with a standard normal
        :math:`p_0` (:func:`flows_src.ode.log_prob`, exact divergence)."""
        return log_prob(velocity, x_1, dt=self.nll_dt, method=self.nll_method)
