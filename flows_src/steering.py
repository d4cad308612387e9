r"""Making a flow-matching sampler output a chosen point (the exercise's bonus).

A sampler is a deterministic map from noise to data, :math:`x_1 = \Phi(x_0)` (the solve of
Eq. 17). Two ways to make it output a target :math:`x^\star`:

- **Shooting** (:func:`shoot`): find the noise whose sample is the target. A first guess is
  the reverse process (Eq. 18) started at :math:`x^\star`; because forward and reverse are
  different discretizations it misses by :math:`O(\Delta t)`, so Newton's method on
  :math:`\Phi(x_0) - x^\star = 0` polishes it, with the 2x2 Jacobian of the whole solve from
  autograd. The sampler itself is untouched: the model draws :math:`x^\star` from that noise.
- **Steering** (:func:`steered`): change the velocity near the end of time, blending the
  model's field into the conditional field of a flow that ends at the target,
  :math:`u_t(y \mid x^\star) = (x^\star - y) / (1 - t)` (the velocity of Eq. 14's path given
  its end point).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from flows_src.ode import Velocity, solve

__all__ = ["ShootingResult", "shoot", "steered"]


@dataclass
class ShootingResult:
    """The outcome of :func:`shoot`.

    Arguments:
        x_0: the noise found, ``(n, 2)``.
        x_1: the sampler's output from ``x_0``, ``(n, 2)``.
        errors: the largest distance to the target after the reverse guess (first entry)
            and after each Newton step.
    """

    x_0: Tensor
    x_1: Tensor
    errors: list[float]


def _forward(velocity: Velocity, x_0: Tensor, dt: float, method: str) -> Tensor:
    return solve(velocity, x_0, dt=dt, method=method, enable_grad=True).y


def shoot(velocity: Velocity, target: Tensor, *, dt: float, method: str = "euler",
          max_newton: int = 10, tol: float = 1e-6) -> ShootingResult:
    r"""Noise :math:`x_0` whose forward solve (step ``dt``, ``method``) lands on ``target``.

    Arguments:
        velocity: ``v(y, t)``, as for :func:`flows_src.ode.solve`.
        target: ``(n, 2)`` points to reach (one Newton system per point).
        dt, method: the sampler whose output must be the target.
        max_newton: Newton steps at most.
        tol: stop once every point is within ``tol`` of its target.
    """
    x_0 = solve(velocity, target, dt=dt, t_start=1.0, t_end=0.0, method=method).y
    with torch.no_grad():
        x_1 = _forward(velocity, x_0, dt, method)
    errors = [float((x_1 - target).norm(dim=1).max())]
    for _ in range(max_newton):
        if errors[-1] <= tol:
            break
        x_0 = x_0.detach().requires_grad_(True)
        with torch.enable_grad():
            x_1 = _forward(velocity, x_0, dt, method)
            # points are independent: row d of every point's Jacobian in one backward pass
            rows = [torch.autograd.grad(x_1[:, d].sum(), x_0, retain_graph=d == 0)[0]
                    for d in range(x_1.shape[1])]
        jacobian = torch.stack(rows, dim=1)  # (n, 2, 2): d x_1 / d x_0
        step = torch.linalg.solve(jacobian, (x_1 - target).detach().unsqueeze(-1))
        x_0 = (x_0 - step.squeeze(-1)).detach()
        with torch.no_grad():
            x_1 = _forward(velocity, x_0, dt, method)
        errors.append(float((x_1 - target).norm(dim=1).max()))
    return ShootingResult(x_0=x_0.detach(), x_1=x_1.detach(), errors=errors)


def steered(velocity: Velocity, target: Tensor, start: float = 0.8,
            end: float = 0.99) -> Velocity:
    r"""The model's velocity, steered to end at ``target`` ``(2,)`` or ``(n, 2)``.

    .. math:: \tilde v_t(y) = (1 - w_t)\, v_t(y) + w_t \frac{x^\star - y}{1 - t},

    with a weight :math:`w_t` rising smoothly from 0 at ``t = start`` to 1 at ``t = end``.
    From ``end`` on only the pull acts, a straight line to the target that Euler's method
    follows exactly: with steps ``dt <= 1 - end`` the sample ends on the target, whatever
    the model wanted.
    """
    def velocity_(y: Tensor, t: Tensor) -> Tensor:
        s = ((t - start) / (end - start)).clamp(0, 1)[:, None]
        w = s * s * (3 - 2 * s)  # smoothstep: no kink in the path where steering begins
        pull = (target - y) / (1 - t).clamp_min(1e-6)[:, None]
        return (1 - w) * velocity(y, t) + w * pull

    return velocity_
