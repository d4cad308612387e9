r"""The face both model families share: a density model samples, scores and shows its paths.

Both families are maps between a standard normal :math:`x_0` (the flow's :math:`z`) and the
data :math:`x_1`: the normalizing flow in closed form through its layers (Sec. 3), flow
matching by integrating a learned velocity (Sec. 4). From outside they answer the same three
questions, so evaluation, figures and notebooks need not know which one they hold:

- ``sample(n, generator, c=None)``: points, ``(n, 2)``;
- ``log_prob(x, c=None)``: :math:`\log p(x)` in nats, ``(n,)``;
- ``trajectory(x, c=None, reverse=False, times=None)``: a :class:`Trajectory` from noise to
  data (or back), its times and states.

``with_sampler`` re-arms flow matching with other solver settings
(:class:`~flows_src.sampler.ODESampler`); a normalizing flow has none and stays itself.
``exact_likelihood`` says whether ``log_prob`` is closed-form (cheap enough for every
held-out point) or an ODE solve. Like zuko's flows sharing one ``Distribution`` face.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from flows_src.rings import check_n_points

__all__ = ["DIM", "Trajectory", "DensityModel", "points", "standard_normal"]

DIM = 2
"""The points are 2D."""


@dataclass
class Trajectory:
    """Points on their way between noise and data.

    Arguments:
        times: ``(k,)``, from the start's time (0 for noise, 1 for data) to the end's.
        states: ``(k, n, 2)``; ``states[0]`` is the start, ``states[-1]`` the end.
    """

    times: Tensor
    states: Tensor

    def nearest(self, times: Sequence[float] | Tensor) -> Trajectory:
        """The states at the recorded times nearest ``times`` (in that order)."""
        keep = (torch.as_tensor(times, dtype=self.times.dtype)[:, None]
                - self.times).abs().argmin(1)
        return Trajectory(times=self.times[keep], states=self.states[keep])


@runtime_checkable
class DensityModel(Protocol):
    """What :mod:`flows_src.experiments`, the figures and the notebooks call on a model. Its
    class names the config class its constructor takes, ``config_class``."""

    exact_likelihood: ClassVar[bool]
    config_class: ClassVar[type]

    def sample(self, n: int, generator: torch.Generator | None = None, *,
               c: Tensor | int | None = None) -> Tensor: ...

    def log_prob(self, x: Tensor, c: Tensor | int | None = None) -> Tensor: ...

    def trajectory(self, x: Tensor, *, c: Tensor | int | None = None, reverse: bool = False,
                   times: Tensor | list[float] | None = None) -> Trajectory: ...

    def with_sampler(self, sampler: object = None, **changes) -> DensityModel: ...


def points(x: object, name: str, model: nn.Module) -> Tensor:
    """``x`` as a ``(n, 2)`` tensor in ``model``'s weights' dtype, or a one-line error. A
    float64 input is computed in the weights' dtype (float32 unless the model was cast)."""
    if not isinstance(x, Tensor):
        x = torch.as_tensor(x)
    if x.ndim != 2 or x.shape[1] != DIM:
        raise ValueError(f"{name} must have shape (n, {DIM}), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must hold floating-point numbers, got {x.dtype}")
    return x.to(next(model.parameters()).dtype)


def standard_normal(n: object, generator: torch.Generator | None, like: Tensor) -> Tensor:
    r"""``n`` draws of :math:`\mathcal{N}(0, I)` in 2D, ``(n, 2)``, in ``like``'s dtype and on
    its device; drawn on the generator's device (so a seeded CPU generator gives the same
    points on any device)."""
    device = generator.device if generator is not None else like.device
    z = torch.randn(check_n_points(n, "n"), DIM, generator=generator, device=device,
                    dtype=like.dtype)
    return z.to(like.device)
