"""The flow-matching objective (Eq. 16): by hand, compiled, with the OT coupling and the
time law."""

import math

import pytest
import torch

from flows_src.fm_loss import FlowMatchingLoss, coupling
from flows_src.ot import ot_pairing
from flows_src.paths import OTCoupling, ot_coupled_noise
from flows_src.velocity import VelocityNet

SMALL = {"hidden": 16, "n_linear": 3}
CONDITIONAL = {"hidden": 16, "n_linear": 3, "n_classes": 5, "embed_dim": 4}


def net(**fields) -> VelocityNet:
    torch.manual_seed(0)
    return VelocityNet(**fields)


def ring(n: int, generator: torch.Generator) -> torch.Tensor:
    angle = torch.rand(n, generator=generator) * 2 * math.pi
    radius = 2 + 0.1 * torch.randn(n, generator=generator)
    return torch.stack([radius * angle.cos(), radius * angle.sin()], dim=1)


@pytest.mark.parametrize("fields", [SMALL, CONDITIONAL], ids=["unconditional", "conditional"])
def test_loss_is_eq_16_by_hand(fields):
    v_net = net(**fields)
    x_1 = torch.randn(8, 2)
    c = torch.arange(8) % 5 if "n_classes" in fields else None
    torch.manual_seed(7)
    loss, components = FlowMatchingLoss()(v_net, x_1, c)
    torch.manual_seed(7)
    x_0, t = torch.randn(8, 2), torch.rand(8)
    x_t = t[:, None] * x_1 + (1 - t[:, None]) * x_0
    v = v_net(x_t, t, c)
    by_hand = sum(((v[i] - (x_1[i] - x_0[i])) ** 2).sum() for i in range(8)) / 8
    assert components == {}
    assert loss.shape == ()
    torch.testing.assert_close(loss, by_hand)


# the independent coupling compiles into one graph; OT's assignment (numpy) stays eager
@pytest.mark.parametrize("coupled, fullgraph", [(None, True), (OTCoupling(128), False)])
def test_loss_compiles_to_the_eager_value(coupled, fullgraph):
    v_net = net(**CONDITIONAL)
    objective = FlowMatchingLoss(coupled) if coupled else FlowMatchingLoss()
    compiled = torch.compile(lambda x_1, c: objective(v_net, x_1, c), backend="eager",
                             fullgraph=fullgraph)
    x_1, c = torch.randn(16, 2), torch.arange(16) % 5
    torch.manual_seed(3)
    eager = objective(v_net, x_1, c)[0]
    torch.manual_seed(3)
    torch.testing.assert_close(compiled(x_1, c)[0], eager)


def test_coupling_by_name():
    assert coupling("ot", block=64) == OTCoupling(64)
    assert not isinstance(coupling("independent"), OTCoupling)


def test_ot_loss_is_eq_16_on_the_ot_pairs_of_the_same_draw():
    v_net = net(**SMALL)
    x_1 = ring(64, torch.Generator().manual_seed(0))
    torch.manual_seed(7)
    loss, components = FlowMatchingLoss(OTCoupling())(v_net, x_1)
    torch.manual_seed(7)
    x_0, t = torch.randn(64, 2), torch.rand(64)  # the independent loss's draws, in order
    paired = x_0[ot_pairing(x_0, x_1)]
    x_t = t[:, None] * x_1 + (1 - t[:, None]) * paired
    by_hand = (v_net(x_t, t) - (x_1 - paired)).square().sum(1).mean()
    assert components == {} and loss.shape == ()
    torch.testing.assert_close(loss, by_hand)
    # The re-pairing is what OT-CFM is for: much shorter straight lines than independent pairs.
    assert (paired - x_1).square().sum(1).mean() < 0.5 * (x_0 - x_1).square().sum(1).mean()
    loss.backward()
    assert all(p.grad is not None for p in v_net.parameters())


def test_conditional_ot_loss_keeps_the_classes_with_their_points():
    v_net, objective = net(**CONDITIONAL), FlowMatchingLoss(OTCoupling(128))
    x_1, c = torch.randn(30, 2), torch.arange(30) % 5
    torch.manual_seed(2)
    loss, _ = objective(v_net, x_1, c)
    torch.manual_seed(2)
    x_0, t = torch.randn(30, 2), torch.rand(30)
    paired = ot_coupled_noise(x_0, x_1, c, block=128)
    x_t = t[:, None] * x_1 + (1 - t[:, None]) * paired
    torch.testing.assert_close(loss, (v_net(x_t, t, c) - (x_1 - paired)).square().sum(1).mean())
    with pytest.raises(ValueError, match=r"^c must be class labels in \[0, 4\]"):
        objective(v_net, x_1, c + 1)


def test_time_power_draws_later_times_in_the_same_order():
    v_net = net(**SMALL)
    x_1 = torch.randn(8, 2)
    torch.manual_seed(7)
    loss, _ = FlowMatchingLoss(time_power=3.0)(v_net, x_1)
    torch.manual_seed(7)
    x_0, u = torch.randn(8, 2), torch.rand(8)
    t = 1 - (1 - u) ** 3
    by_hand = (v_net(t[:, None] * x_1 + (1 - t[:, None]) * x_0, t) - (x_1 - x_0)).square()
    torch.testing.assert_close(loss, by_hand.sum(1).mean())


def test_class_dropout_drops_labels_in_a_third_draw():
    v_net = net(**CONDITIONAL, null_class=True)
    with torch.no_grad():
        v_net.null_embedding.normal_()
    x_1, c = torch.randn(64, 2), torch.arange(64) % 5
    torch.manual_seed(7)
    loss, _ = FlowMatchingLoss(class_dropout=0.3)(v_net, x_1, c)
    torch.manual_seed(7)
    x_0, t = torch.randn(64, 2), torch.rand(64)
    dropped = torch.rand(64) < 0.3
    assert 0 < dropped.sum() < 64
    x_t = t[:, None] * x_1 + (1 - t[:, None]) * x_0
    v = torch.where(dropped[:, None], v_net._velocity(x_t, t, v_net.null_embedding),
                    v_net(x_t, t, c))
    torch.testing.assert_close(loss, (v - (x_1 - x_0)).square().sum(1).mean())
    # no dropout (the exercise's): two draws only, so the spec runs keep their numbers
    torch.manual_seed(7)
    FlowMatchingLoss(class_dropout=0.0)(v_net, x_1, c)
    after = torch.rand(1)
    torch.manual_seed(7)
    torch.randn(64, 2), torch.rand(64)
    assert torch.equal(after, torch.rand(1))
