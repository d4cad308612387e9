r"""The flow-matching objective (Eq. 16, Alg. 1), as an object apart from the network.

.. math:: \mathcal{L} = \frac{1}{n} \sum_{i=1}^n \|v_{t_i}(x_{t_i}) - dx_{t_i}\|^2

on pairs :math:`(x_0, x_1)` joined by a coupling, at times :math:`t` from the time law, on
the path of :mod:`flows_src.paths`: squared error summed over the 2 coordinates, averaged
over the points.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from flows_src.paths import IndependentCoupling, LinearPath, OTCoupling, time_law

__all__ = ["FlowMatchingLoss", "coupling"]

Coupling = Callable[[Tensor, Tensor, "Tensor | None"], Tensor]


def coupling(name: str, block: int | None = None) -> Coupling:
    """The coupling called ``name`` (:data:`flows_src.config.COUPLINGS`): ``"independent"``
    or ``"ot"`` (pairing in blocks of ``block`` points)."""
    return OTCoupling(block) if name == "ot" else IndependentCoupling()


class FlowMatchingLoss:
    r"""Eq. 16 for one batch: draw :math:`x_0 \sim \mathcal{N}(0, I)`, then
    :math:`u \sim \mathcal{U}[0, 1]` (both from torch's global generator, in that order),
    pair the noise with the data (``coupling``), take :math:`t` from ``time_power``
    (:func:`~flows_src.paths.time_law`), and regress the network's velocity at :math:`x_t`
    onto :math:`dx_t`.

    With the OT coupling the assignment runs eagerly, so under ``torch.compile`` the graph
    breaks there (the exercise's independent coupling compiles whole).

    With ``class_dropout`` :math:`q > 0` (a conditional network with a null class), each
    point's label is then dropped with probability :math:`q` (a third draw), so that the same
    network also learns the unconditional field :math:`v_t(x_t \mid \varnothing)` that
    classifier-free guidance needs.

    Arguments:
        coupling: ``(x_0, x_1, c) -> x_0`` re-paired; the independent one by default.
        time_power: :math:`p` of the time law; 1 is the exercise's uniform :math:`t`.
        path: the probability path; the linear one of Eq. 14 by default.
        class_dropout: :math:`q`, the share of labels dropped; 0 (the exercise) drops none.

    Example:
        >>> from flows_src.velocity import VelocityNet
        >>> loss, parts = FlowMatchingLoss()(VelocityNet(hidden=8), torch.randn(4, 2))
        >>> loss.shape, parts
        (torch.Size([]), {})
    """

    def __init__(self, coupling: Coupling | None = None, time_power: float = 1.0,
                 path: LinearPath | None = None, class_dropout: float = 0.0):
        self.coupling = coupling or IndependentCoupling()
        self.time_power = time_power
        self.path = path or LinearPath()
        self.class_dropout = class_dropout

    def __call__(self, velocity: Callable[..., Tensor], x_1: Tensor, c: Tensor | None = None
                 ) -> tuple[Tensor, dict[str, Tensor]]:
        """``(loss, {})`` for data ``x_1`` ``(n, 2)`` (classes ``c`` ``(n,)``) and the
        network ``velocity(x_t, t, c)``."""
        x_0 = torch.randn(x_1.shape, dtype=x_1.dtype, device=x_1.device)
        t = time_law(torch.rand(x_1.shape[0], dtype=x_1.dtype, device=x_1.device),
                     self.time_power)
        path = self.path.sample(self.coupling(x_0, x_1, c), x_1, t)
        if self.class_dropout and c is not None:
            dropped = torch.rand(x_1.shape[0], device=x_1.device) < self.class_dropout
            error = velocity(path.x_t, path.t, c, dropped) - path.dx_t
        else:
            error = velocity(path.x_t, path.t, c) - path.dx_t
        return error.square().sum(dim=1).mean(), {}

    def __repr__(self) -> str:
        dropout = f", class_dropout={self.class_dropout:g}" if self.class_dropout else ""
        return (f"FlowMatchingLoss({self.coupling!r}, time_power={self.time_power:g}"
                f"{dropout})")
