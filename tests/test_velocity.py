"""The velocity network: its architecture (Sec. 4.3), time and class inputs, bad classes."""

import math

import pytest
import torch
from torch import nn

from flows_src.density import DIM
from flows_src.velocity import VelocityNet

SMALL = {"hidden": 16, "n_linear": 3}
CONDITIONAL = {"hidden": 16, "n_linear": 3, "n_classes": 5, "embed_dim": 4}


def net(seed: int = 0, **fields) -> VelocityNet:
    torch.manual_seed(seed)
    return VelocityNet(**(fields or SMALL))


def test_default_architecture_is_the_exercise():
    default = VelocityNet()
    linears = [m for m in default.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (3, 64), (64, 64), (64, 64), (64, 64), (64, 2)
    ]
    assert sum(isinstance(m, nn.LeakyReLU) for m in default.modules()) == 4
    assert default.embedding is None


def test_conditional_first_layer_mixes_point_time_and_class():
    conditional = net(**CONDITIONAL)
    assert conditional.embedding.num_embeddings == 5 and conditional.embedding.embedding_dim == 4
    assert conditional.net[0].in_features == DIM + 1 + 4


@pytest.mark.parametrize("t", [0.3, torch.tensor(0.3), torch.full((6,), 0.3)])
def test_forward_shape_and_time_broadcast(t):
    v_net = net()
    x_t = torch.randn(6, 2)
    v = v_net(x_t, t)
    assert v.shape == (6, 2)
    torch.testing.assert_close(v, v_net(x_t, torch.full((6,), 0.3)))


def test_time_is_an_input():
    v_net = net()
    x_t = torch.randn(6, 2)
    assert not torch.allclose(v_net(x_t, 0.1), v_net(x_t, 0.9))


def test_conditional_output_depends_on_the_class():
    v_net = net(**CONDITIONAL)
    x_t, t = torch.randn(6, 2), torch.rand(6)
    v = [v_net(x_t, t, torch.full((6,), k)) for k in range(5)]
    for a in range(5):
        for b in range(a + 1, 5):
            assert (v[a] - v[b]).abs().max() > 1e-3
    torch.testing.assert_close(v_net(x_t, t, 3), v[3])


@pytest.mark.parametrize("c", [5, -1, torch.tensor([0, 1, 5]), torch.tensor([-1, 0, 0])])
def test_unknown_class_is_one_line_value_error(c):
    with pytest.raises(ValueError, match=r"^c must be class labels in \[0, 4\], got -?\d+$"):
        net(**CONDITIONAL)(torch.zeros(3, 2), 0.5, c)


def test_missing_or_unexpected_class_is_value_error():
    with pytest.raises(ValueError, match=r"^c is required.*\[0, 4\]"):
        net(**CONDITIONAL)(torch.zeros(3, 2), 0.5)
    with pytest.raises(ValueError, match=r"^c must be None"):
        net()(torch.zeros(3, 2), 0.5, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"^c must be integer"):
        net(**CONDITIONAL)(torch.zeros(3, 2), 0.5, torch.zeros(3))
    with pytest.raises(ValueError, match=r"^c must have shape \(3,\)"):
        net(**CONDITIONAL)(torch.zeros(3, 2), 0.5, torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"^c must have shape \(n,\)"):
        net(**CONDITIONAL).as_velocity(torch.zeros(3, 1, dtype=torch.long))


def test_as_velocity_is_the_network_for_one_class():
    v_net = net(**CONDITIONAL)
    x_t, t = torch.randn(4, 2), torch.rand(4)
    torch.testing.assert_close(v_net.as_velocity(1)(x_t, t), v_net(x_t, t, 1))
    embedding = v_net.embedding.weight[1:2]
    torch.testing.assert_close(v_net.as_velocity(embedding=embedding)(x_t, t), v_net(x_t, t, 1))
    with pytest.raises(ValueError, match=r"^embedding must have shape \(1, 4\)"):
        v_net.as_velocity(embedding=torch.zeros(2, 4))


@pytest.mark.parametrize("fields", [SMALL, CONDITIONAL], ids=["unconditional", "conditional"])
def test_time_features_widen_the_first_layer_and_keep_checkpoints_plain(fields):
    v_net = net(**fields, time_features=3)
    first = v_net.net[0]
    conditional = "n_classes" in fields
    assert first.in_features == 2 + 1 + 6 + (fields["embed_dim"] if conditional else 0)
    x_t, c = torch.randn(5, 2), (torch.arange(5) if conditional else None)
    # the features are sin/cos of pi j t: their values at t = 0.3 feed the first layer
    angles = 0.3 * math.pi * torch.arange(1, 4)
    inputs = [x_t, torch.full((5, 1), 0.3), angles.sin().expand(5, 3), angles.cos().expand(5, 3)]
    if c is not None:
        inputs.append(v_net.embedding(c))
    torch.testing.assert_close(v_net(x_t, 0.3, c), v_net.net(torch.cat(inputs, 1)))
    # the frequencies are not weights: a checkpoint holds the same keys as without them
    assert set(v_net.state_dict()) == set(net(**fields).state_dict())


@pytest.mark.parametrize("fields", [SMALL, CONDITIONAL], ids=["unconditional", "conditional"])
def test_space_features_add_octaves_of_each_coordinate(fields):
    v_net = net(**fields, time_features=2, space_features=3)
    conditional = "n_classes" in fields
    assert v_net.net[0].in_features == 2 + 1 + 4 + 12 + (fields["embed_dim"] if conditional else 0)
    x_t, c = torch.randn(5, 2), (torch.arange(5) if conditional else None)
    # sin and cos of pi/2, pi and 2 pi times each coordinate, coordinate by coordinate
    periods = torch.tensor([4.0, 2.0, 1.0])
    angles = (2 * math.pi * x_t[:, :, None] / periods).flatten(1)
    torch.testing.assert_close(angles[:, 3], x_t[:, 1] * math.pi / 2)  # coordinate 1, octave 0
    times = 0.3 * math.pi * torch.arange(1, 3)
    inputs = [x_t, torch.full((5, 1), 0.3), times.sin().expand(5, 2), times.cos().expand(5, 2),
              angles.sin(), angles.cos()]
    if c is not None:
        inputs.append(v_net.embedding(c))
    torch.testing.assert_close(v_net(x_t, 0.3, c), v_net.net(torch.cat(inputs, 1)))
    assert set(v_net.state_dict()) == set(net(**fields).state_dict())
    # none by default: the exercise's network, its first layer fed (x_t, t) alone
    assert net(**fields).net[0].in_features == 3 + (fields["embed_dim"] if conditional else 0)


def test_null_class_adds_one_zero_embedding_and_keeps_the_other_weights():
    plain, nulled = net(**CONDITIONAL), net(**CONDITIONAL, null_class=True)
    extra = set(nulled.state_dict()) - set(plain.state_dict())
    assert extra == {"null_embedding"}
    assert torch.equal(nulled.null_embedding, torch.zeros(1, 4))
    for name, value in plain.state_dict().items():
        assert torch.equal(value, nulled.state_dict()[name]), name
    with pytest.raises(ValueError, match="^null_class needs a class-conditional network"):
        VelocityNet(null_class=True)


def test_dropped_points_get_the_null_embedding():
    v_net = net(**CONDITIONAL, null_class=True)
    with torch.no_grad():
        v_net.null_embedding.normal_()
    x_t, t, c = torch.randn(6, 2), torch.rand(6), torch.tensor([0, 1, 2, 3, 4, 0])
    dropped = torch.tensor([True, False, True, False, False, True])
    got = v_net(x_t, t, c, dropped)
    kept = v_net(x_t, t, c)
    null = v_net._velocity(x_t, t, v_net.null_embedding)
    torch.testing.assert_close(got[~dropped], kept[~dropped])
    torch.testing.assert_close(got[dropped], null[dropped])
    assert not torch.allclose(got[dropped], kept[dropped])
    with pytest.raises(ValueError, match="^dropped needs a network with a null class"):
        net(**CONDITIONAL)(x_t, t, c, dropped)


def test_guidance_extrapolates_from_the_null_class():
    v_net = net(**CONDITIONAL, null_class=True)
    with torch.no_grad():
        v_net.null_embedding.normal_()
    x_t, t = torch.randn(5, 2), torch.rand(5)
    v_c = v_net(x_t, t, 3)
    v_null = v_net(x_t, t, 3, torch.ones(5, dtype=torch.bool))
    for w in (0.0, 0.5, 2.0):
        expected = v_c + w * (v_c - v_null)
        torch.testing.assert_close(v_net.as_velocity(3, guidance=w)(x_t, t), expected)
    embedding = v_net.embedding.weight[3:4]
    torch.testing.assert_close(v_net.as_velocity(embedding=embedding, guidance=2.0)(x_t, t),
                               v_c + 2.0 * (v_c - v_null))
    with pytest.raises(ValueError, match="^guidance needs a network trained with dropped"):
        net(**CONDITIONAL).as_velocity(3, guidance=1.0)
    with pytest.raises(ValueError, match="^guidance is for the class-conditional model"):
        net(**SMALL).as_velocity(guidance=1.0)


def test_guidance_with_a_class_per_point():
    v_net = net(**CONDITIONAL, null_class=True)
    with torch.no_grad():
        v_net.null_embedding.normal_()
    x_t, t, c = torch.randn(6, 2), torch.rand(6), torch.tensor([4, 0, 1, 1, 3, 2])
    v_c, v_null = v_net(x_t, t, c), v_net(x_t, t, c, torch.ones(6, dtype=torch.bool))
    torch.testing.assert_close(v_net.as_velocity(c, 6, guidance=0.5)(x_t, t),
                               v_c + 0.5 * (v_c - v_null))
    # each point's class only: a point alone gives the value it has among the others
    alone = v_net.as_velocity(c[2:3], 1, guidance=0.5)(x_t[2:3], t[2:3])
    torch.testing.assert_close(alone, (v_c + 0.5 * (v_c - v_null))[2:3])
