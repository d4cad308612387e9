"""Plain eager references, written the way a reader would from the exercise (tooling only).

The "before" of the speed comparison: the normalizing flow composed of the library's plain
coupling layers, as a reader would compose them, and a plain flow-matching field. Never
imported by the shipped code.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from flows_src.couplings import AffineCoupling, Permutation, mlp

__all__ = [
    "ReferenceFlow",
    "ReferenceVelocity",
    "reference_fm_loss",
]


class ReferenceFlow(nn.Module):
    """The library's plain coupling layers (:class:`~flows_src.couplings.AffineCoupling`, two
    MLPs each) with a :class:`~flows_src.couplings.Permutation` between consecutive ones,
    composed as the exercise reads (Sec. 3.1.4); p_z = N(0, I)."""

    def __init__(self, n_couplings: int = 15, hidden: int = 8, n_linear: int = 5):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(n_couplings):
            if i:
                layers.append(Permutation())
            layers.append(AffineCoupling(hidden, n_linear))
        self.layers = nn.ModuleList(layers)
        self.p_z = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))

    @property
    def couplings(self) -> list[AffineCoupling]:
        """The coupling layers, in order."""
        return [layer for layer in self.layers if isinstance(layer, AffineCoupling)]

    def forward(self, z: Tensor) -> Tensor:
        for layer in self.layers:
            z = layer(z)
        return z

    def inverse_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        log_det = torch.zeros(x.shape[0], dtype=x.dtype)
        for layer in reversed(self.layers):
            if isinstance(layer, AffineCoupling):
                log_det = log_det + layer.log_det_inverse(x)
            x = layer.inverse(x)
        return x, log_det

    def log_prob(self, x: Tensor) -> Tensor:
        z, log_det = self.inverse_and_log_det(x)
        return self.p_z.log_prob(z) + log_det

    def loss(self, x: Tensor) -> Tensor:
        """Eq. 9, averaged over the batch."""
        return -self.log_prob(x).mean()


class ReferenceVelocity(nn.Module):
    """v(y, t): an MLP on cat(y, t), ``n_linear`` Linear layers of width ``hidden``."""

    def __init__(self, hidden: int = 64, n_linear: int = 5):
        super().__init__()
        self.net = mlp(3, hidden, 2, n_linear)

    def forward(self, y: Tensor, t: Tensor) -> Tensor:
        return self.net(torch.cat([y, t], dim=1))


def reference_fm_loss(
    model: ReferenceVelocity, x_1: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Alg. 1 / Eq. 16: mean over the batch of ||V(y, t) - (x_1 - x_0)||^2."""
    x_0 = torch.randn(x_1.shape, generator=generator, dtype=x_1.dtype)
    t = torch.rand(x_1.shape[0], 1, generator=generator, dtype=x_1.dtype)
    y = t * x_1 + (1 - t) * x_0
    return (model(y, t) - (x_1 - x_0)).square().sum(dim=1).mean()
