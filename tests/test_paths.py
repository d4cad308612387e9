"""Probability paths (Eq. 14-15), the time law, and the couplings of noise to data."""

import math

import pytest
import torch

from flows_src.ot import ot_pairing
from flows_src.paths import (
    IndependentCoupling,
    LinearPath,
    OTCoupling,
    ot_coupled_noise,
    time_law,
)


def ring(n: int, generator: torch.Generator) -> torch.Tensor:
    angle = torch.rand(n, generator=generator) * 2 * math.pi
    radius = 2 + 0.1 * torch.randn(n, generator=generator)
    return torch.stack([radius * angle.cos(), radius * angle.sin()], dim=1)


def test_path_endpoints_and_target():
    x_1, x_0 = torch.randn(5, 2), torch.randn(5, 2)
    at_0 = LinearPath().sample(x_0, x_1, torch.zeros(5))
    at_1 = LinearPath().sample(x_0, x_1, torch.ones(5))
    assert torch.equal(at_0.x_t, x_0) and torch.equal(at_1.x_t, x_1)
    assert torch.equal(at_0.dx_t, x_1 - x_0)


def test_path_points_and_their_velocity():
    generator = torch.Generator().manual_seed(0)
    x_1, x_0 = torch.randn(1000, 2, generator=generator), torch.randn(1000, 2, generator=generator)
    t = torch.rand(1000, generator=generator)
    path = LinearPath().sample(x_0, x_1, t)
    torch.testing.assert_close(path.x_t, t[:, None] * x_1 + (1 - t[:, None]) * x_0)
    # The velocity of Eq. 15 is the time derivative of Eq. 14.
    later = LinearPath().sample(x_0, x_1, t + 1e-3)
    torch.testing.assert_close((later.x_t - path.x_t) / 1e-3, path.dx_t, rtol=0, atol=1e-3)


def test_time_law():
    u = torch.rand(10_000, generator=torch.Generator().manual_seed(0))
    assert time_law(u) is u  # the exercise's uniform times, untouched
    t = time_law(u, 3.0)
    torch.testing.assert_close(t, 1 - (1 - u) ** 3)
    # P(t > s) = (1 - s)^(1 / p): with p = 3 almost half the times lie above 0.9 (uniform: 0.1)
    assert (t > 0.9).float().mean().item() == pytest.approx(0.1 ** (1 / 3), abs=0.02)


def test_independent_coupling_keeps_the_draw():
    x_0, x_1 = torch.randn(6, 2), torch.randn(6, 2)
    assert IndependentCoupling()(x_0, x_1) is x_0


def test_ot_noise_stays_within_each_class_and_block():
    generator = torch.Generator().manual_seed(1)
    x_1, x_0 = ring(60, generator), torch.randn(60, 2, generator=generator)
    c = torch.randint(0, 3, (60,), generator=generator)
    paired = ot_coupled_noise(x_0, x_1, c, block=8)
    for k in range(3):  # each class gets back its own draw of noise, only reordered
        mine = paired[c == k]
        assert torch.equal(mine[mine[:, 0].argsort()], x_0[c == k][x_0[c == k][:, 0].argsort()])
    blocks = ot_coupled_noise(x_0, x_1, block=16)
    for start in range(0, 60, 16):
        chunk = slice(start, start + 16)
        assert torch.equal(blocks[chunk], x_0[chunk][ot_pairing(x_0[chunk], x_1[chunk])])
    whole = ot_coupled_noise(x_0, x_1)
    assert torch.equal(whole, x_0[ot_pairing(x_0, x_1)])
    assert torch.equal(ot_coupled_noise(x_0, x_1, 2), whole)
    assert torch.equal(OTCoupling(16)(x_0, x_1), blocks)
