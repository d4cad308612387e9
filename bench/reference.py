"""Plain eager references, written the way a reader would from the exercise (tooling only).

The "before" of the speed comparison, and the ground truth that the optimised models of
``flows_src`` are checked against. Never imported by the shipped code.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = [
    "ReferenceCoupling",
    "ReferencePermutation",
    "ReferenceFlow",
    "ReferenceVelocity",
    "reference_fm_loss",
]


def _mlp(n_in: int, hidden: int, n_out: int, n_linear: int) -> nn.Sequential:
    sizes = [n_in] + [hidden] * (n_linear - 1) + [n_out]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            layers.append(nn.LeakyReLU())
        layers.append(nn.Linear(a, b))
    return nn.Sequential(*layers)


class ReferenceCoupling(nn.Module):
    """Affine coupling layer (Eq. 3-6) with two separate MLPs, for log s and for b."""

    def __init__(self, hidden: int = 8, n_linear: int = 5):
        super().__init__()
        self.log_s_net = _mlp(1, hidden, 1, n_linear)
        self.b_net = _mlp(1, hidden, 1, n_linear)

    def forward(self, z: Tensor) -> Tensor:
        z_l, z_r = z[:, :1], z[:, 1:]
        y_r = torch.exp(self.log_s_net(z_l)) * z_r + self.b_net(z_l)
        return torch.cat([z_l, y_r], dim=1)

    def inverse(self, y: Tensor) -> Tensor:
        y_l, y_r = y[:, :1], y[:, 1:]
        z_r = (y_r - self.b_net(y_l)) / torch.exp(self.log_s_net(y_l))
        return torch.cat([y_l, z_r], dim=1)

    def log_det_inverse(self, y: Tensor) -> Tensor:
        return -self.log_s_net(y[:, :1]).sum(dim=1)


class ReferencePermutation(nn.Module):
    """Swaps the two coordinates (Sec. 3.1.5)."""

    def forward(self, z: Tensor) -> Tensor:
        return z[:, [1, 0]]

    def inverse(self, y: Tensor) -> Tensor:
        return y[:, [1, 0]]


class ReferenceFlow(nn.Module):
    """Coupling layers with a permutation between consecutive ones; p_z = N(0, I)."""

    def __init__(self, n_couplings: int = 15, hidden: int = 8, n_linear: int = 5):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(n_couplings):
            if i:
                layers.append(ReferencePermutation())
            layers.append(ReferenceCoupling(hidden, n_linear))
        self.layers = nn.ModuleList(layers)
        self.p_z = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))

    def forward(self, z: Tensor) -> Tensor:
        for layer in self.layers:
            z = layer(z)
        return z

    def inverse_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        log_det = torch.zeros(x.shape[0], dtype=x.dtype)
        for layer in reversed(self.layers):
            if isinstance(layer, ReferenceCoupling):
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
        self.net = _mlp(3, hidden, 2, n_linear)

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
