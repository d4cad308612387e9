r"""Making a flow-matching sampler output a chosen point (the exercise's bonus).

A sampler is a deterministic map from noise to data, :math:`x_1 = \Phi(x_0)` (the solve of
Eq. 17). Three ways to make it output a target :math:`x^\star`:

- **A new class** (:func:`learn_embedding`): teach the conditional model a sixth class whose
  only data point is the target, by learning its embedding vector alone with the model's own
  loss (Eq. 16) while every weight of the network stays frozen. The model then carries
  ordinary draws of its prior to the target's neighbourhood, and the noise whose sample is
  exactly the target (found by shooting) is an ordinary draw too.
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

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from flows_src.flow_matching import FlowMatching
from flows_src.ode import Velocity, solve
from flows_src.paths import LinearPath

__all__ = ["ShootingResult", "shoot", "steered", "learn_embedding", "BonusResult",
           "bonus_attempts"]


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


def learn_embedding(model: FlowMatching, target: Tensor, *, steps: int = 3000,
                    batch: int = 256, lr: float = 1e-2,
                    generator: torch.Generator | None = None) -> tuple[Tensor, list[float]]:
    r"""A class embedding, ``(1, embed_dim)``, under which ``model`` samples ``target``.

    The flow-matching loss of Eq. 16 for a class whose data is the one point
    :math:`x^\star`, minimized over the embedding :math:`e` alone (Adam), the network's
    weights untouched:

    .. math:: \min_e \mathbb{E}_{x_0 \sim \mathcal{N}(0, I),\, t \sim U[0, 1]}
              \big\| v_t\big(t x^\star + (1 - t) x_0,\, e\big) - (x^\star - x_0) \big\|^2

    It starts from the mean of the model's class embeddings. The same idea as textual
    inversion for image models (Gal et al. 2022): a new concept taught through the
    conditioning input only.

    Arguments:
        model: a class-conditional :class:`~flows_src.flow_matching.FlowMatching`.
        target: the point, ``(1, 2)``.
        steps, batch, lr: Adam steps, points per step, learning rate.
        generator: for the noise and times (default: torch's global generator).

    Returns:
        The embedding (detached) and the loss of every step.
    """
    if model.net.embedding is None:
        raise ValueError("learn_embedding needs a class-conditional model (n_classes set)")
    embedding = model.net.embedding.weight.detach().mean(0, keepdim=True).clone()
    embedding.requires_grad_(True)
    optimizer = torch.optim.Adam([embedding], lr=lr)
    # the network's own field, as Eq. 16 trains it: no guidance (the sampler's setting)
    velocity = model.net.as_velocity(embedding=embedding)
    frozen = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    losses = []
    try:
        with torch.enable_grad():
            for _ in range(steps):
                x_0 = torch.randn(batch, target.shape[1], generator=generator)
                t = torch.rand(batch, generator=generator)
                path = LinearPath().sample(x_0, target, t)
                loss = (velocity(path.x_t, t) - path.dx_t).square().sum(1).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
    finally:
        for p, flag in zip(model.parameters(), frozen):
            p.requires_grad_(flag)
    return embedding.detach(), losses


def _tail(x_0: Tensor) -> float:
    """``P(|z| >= |x_0|)`` for a 2D standard normal: how ordinary a draw ``x_0`` ``(2,)`` is."""
    return math.exp(-float(x_0.norm()) ** 2 / 2)


@dataclass
class BonusResult:
    """Every attempt of :func:`bonus_attempts`, and what the figure needs.

    Arguments:
        table: rows ``[attempt, distance to the target, |x_0| or "-", P(|z| >= |x_0|) or "-"]``.
        losses: the new class's loss at every step of :func:`learn_embedding`.
        learn_steps: its number of steps.
        embedding: the new class's embedding, ``(1, embed_dim)``.
        new_class_median, new_class_within: the median distance of the new class's samples
            from ordinary draws to the target, and the share within 0.5 of it.
        old_class_nearest: the nearest to the target of the same draws with the old class.
        new_x0, new_x1, new_errors: shooting with the new class: the noise ``(2,)``, its
            sample ``(2,)``, the distance after the reverse guess and each Newton step.
        new_path: that sample's states ``(k, 1, 2)`` at times ``new_times`` ``(k,)``.
        draws_paths: the first 30 draws' states with the new class, ``(k, 30, 2)``.
        draws_ends: every draw's sample with the new class, ``(n, 2)``.
    """

    table: list[list]
    losses: list[float]
    learn_steps: int
    embedding: Tensor
    new_class_median: float
    new_class_within: float
    old_class_nearest: float
    new_x0: Tensor
    new_x1: Tensor
    new_errors: list[float]
    new_path: Tensor
    new_times: Tensor
    draws_paths: Tensor
    draws_ends: Tensor


def bonus_attempts(model: FlowMatching, target: Tensor, *, c: int, dt: float,
                   n_draws: int, generator: torch.Generator, steps: int = 3000
                   ) -> BonusResult:
    """The exercise's bonus, every attempt in order: the conditional ``model`` with class
    ``c`` (sample ``n_draws`` and keep the nearest; start at the target; reverse then
    forward; shooting; steering), then a new class learned by :func:`learn_embedding`
    (``steps`` Adam steps): its samples from the same ordinary draws, and shooting with it.
    ``target`` is ``(1, 2)``; every solve uses Euler steps of ``dt``."""
    x_0 = torch.randn(n_draws, 2, generator=generator)
    old = model.as_velocity(c)
    with torch.no_grad():
        old_ends = solve(old, x_0, dt=dt).y
        distance = (old_ends - target).norm(dim=1)
        nearest = int(distance.argmin())
        from_target = solve(old, target, dt=dt).y
        reversed_noise = solve(old, target, dt=dt, t_start=1.0, t_end=0.0).y
        round_trip = solve(old, reversed_noise, dt=dt).y
        steered_end = solve(steered(old, target), x_0[:1], dt=dt).y
    shot = shoot(old, target, dt=dt)
    embedding, losses = learn_embedding(model, target, steps=steps, generator=generator)
    new = model.as_velocity(embedding=embedding)
    with torch.no_grad():
        new_ends = solve(new, x_0, dt=dt).y
        new_draws = solve(new, x_0[:30], dt=dt, return_intermediates=True)
    new_distance = (new_ends - target).norm(dim=1)
    new_shot = shoot(new, target, dt=dt)
    with torch.no_grad():
        new_path = solve(new, new_shot.x_0, dt=dt, return_intermediates=True)

    def row(name: str, end: Tensor, noise: Tensor | None) -> list:
        noise_cells = ["-", "-"] if noise is None else [float(noise.norm()), _tail(noise)]
        return [name, float((end - target).norm()), *noise_cells]

    table = [
        row(f"class {c}: nearest of {n_draws:,} samples", old_ends[nearest], x_0[nearest]),
        row(f"class {c}: start the sampler at (4, 5)", from_target, None),
        row(f"class {c}: reverse (4, 5), sample from it", round_trip, reversed_noise[0]),
        row(f"class {c}: ... then Newton on the noise", shot.x_1, shot.x_0[0]),
        row(f"class {c}: steer the field from t = 0.8", steered_end, x_0[0]),
        [f"new class: median distance of {n_draws:,} samples", float(new_distance.median()),
         "-", "-"],
        row("new class: shooting", new_shot.x_1, new_shot.x_0[0]),
    ]
    return BonusResult(
        table=table, losses=losses, learn_steps=steps, embedding=embedding,
        new_class_median=float(new_distance.median()),
        new_class_within=float((new_distance <= 0.5).float().mean()),
        old_class_nearest=float(distance.min()), new_x0=new_shot.x_0[0],
        new_x1=new_shot.x_1[0], new_errors=new_shot.errors, new_path=new_path.states,
        new_times=new_path.times, draws_paths=new_draws.states, draws_ends=new_ends)
