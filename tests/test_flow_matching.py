"""Flow matching: the velocity network, the linear path (Eq. 14), the loss (Eq. 16), sampling."""

import dataclasses
import math

import pytest
import torch
from torch import nn

from flows_src.config import FMConfig
from flows_src.flow_matching import DIM, VelocityField, ot_coupled_noise, sample_path
from flows_src.ode import log_prob, solve
from flows_src.ot import ot_pairing
from flows_src.path_metrics import path_length_ratio, straightness

SMALL = FMConfig(hidden=16, n_linear=3)
CONDITIONAL = FMConfig(hidden=16, n_linear=3, n_classes=5, embed_dim=4)


def model(config: FMConfig = SMALL, seed: int = 0) -> VelocityField:
    torch.manual_seed(seed)
    return VelocityField(config)


# --- architecture ---------------------------------------------------------------------------


def test_default_architecture_is_the_exercise():
    net = VelocityField()
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (3, 64), (64, 64), (64, 64), (64, 64), (64, 2)
    ]
    assert sum(isinstance(m, nn.LeakyReLU) for m in net.modules()) == 4
    assert net.embedding is None


def test_conditional_first_layer_mixes_point_time_and_class():
    net = model(CONDITIONAL)
    assert net.embedding.num_embeddings == 5 and net.embedding.embedding_dim == 4
    assert net.net[0].in_features == DIM + 1 + 4


@pytest.mark.parametrize("t", [0.3, torch.tensor(0.3), torch.full((6,), 0.3)])
def test_forward_shape_and_time_broadcast(t):
    net = model()
    y = torch.randn(6, 2)
    v = net(y, t)
    assert v.shape == (6, 2)
    torch.testing.assert_close(v, net(y, torch.full((6,), 0.3)))


def test_time_is_an_input():
    net = model()
    y = torch.randn(6, 2)
    assert not torch.allclose(net(y, 0.1), net(y, 0.9))


def test_conditional_output_depends_on_the_class():
    net = model(CONDITIONAL)
    y, t = torch.randn(6, 2), torch.rand(6)
    v = [net(y, t, torch.full((6,), k)) for k in range(5)]
    for a in range(5):
        for b in range(a + 1, 5):
            assert (v[a] - v[b]).abs().max() > 1e-3
    torch.testing.assert_close(net(y, t, 3), v[3])


@pytest.mark.parametrize("c", [5, -1, torch.tensor([0, 1, 5]), torch.tensor([-1, 0, 0])])
def test_unknown_class_is_one_line_value_error(c):
    net = model(CONDITIONAL)
    with pytest.raises(ValueError, match=r"^c must be class labels in \[0, 4\], got -?\d+$"):
        net(torch.zeros(3, 2), 0.5, c)
    with pytest.raises(ValueError, match=r"^c must be class labels in \[0, 4\]"):
        net.sample(3, dt=0.5, c=c)


def test_missing_or_unexpected_class_is_value_error():
    with pytest.raises(ValueError, match=r"^c is required.*\[0, 4\]"):
        model(CONDITIONAL)(torch.zeros(3, 2), 0.5)
    with pytest.raises(ValueError, match=r"^c is required"):
        model(CONDITIONAL).sample(3, dt=0.5)
    with pytest.raises(ValueError, match=r"^c must be None"):
        model()(torch.zeros(3, 2), 0.5, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"^c must be integer"):
        model(CONDITIONAL)(torch.zeros(3, 2), 0.5, torch.zeros(3))
    with pytest.raises(ValueError, match=r"^c must have shape \(3,\)"):
        model(CONDITIONAL)(torch.zeros(3, 2), 0.5, torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"^c must have shape \(n,\)"):
        model(CONDITIONAL).as_velocity(torch.zeros(3, 1, dtype=torch.long))


# --- path and loss ---------------------------------------------------------------------------


def test_path_endpoints_and_target():
    x_1, x_0 = torch.randn(5, 2), torch.randn(5, 2)
    at_0 = sample_path(x_1, x_0=x_0, t=torch.zeros(5))
    at_1 = sample_path(x_1, x_0=x_0, t=torch.ones(5))
    assert torch.equal(at_0.x_t, x_0) and torch.equal(at_1.x_t, x_1)
    assert torch.equal(at_0.dx_t, x_1 - x_0)


def test_path_draws():
    x_1 = torch.randn(20_000, 2)
    path = sample_path(x_1, generator=torch.Generator().manual_seed(0))
    assert path.t.shape == (20_000,) and path.x_0.shape == (20_000, 2)
    assert 0 <= path.t.min() and path.t.max() <= 1
    assert path.t.mean().item() == pytest.approx(0.5, abs=0.01)
    assert path.x_0.mean().abs().max() < 0.03 and (path.x_0.std(0) - 1).abs().max() < 0.03
    t = path.t[:, None]
    torch.testing.assert_close(path.x_t, t * x_1 + (1 - t) * path.x_0)
    # The velocity of Eq. 15 is the time derivative of Eq. 14.
    later = sample_path(x_1, x_0=path.x_0, t=path.t + 1e-3)
    torch.testing.assert_close((later.x_t - path.x_t) / 1e-3, path.dx_t, rtol=0, atol=1e-3)


@pytest.mark.parametrize("config", [SMALL, CONDITIONAL])
def test_loss_is_eq_16_by_hand(config):
    net = model(config)
    x_1 = torch.randn(8, 2)
    c = torch.arange(8) % 5 if config.n_classes else None
    batch = (x_1,) if c is None else (x_1, c)
    torch.manual_seed(7)
    loss, components = net.loss(*batch)
    torch.manual_seed(7)
    x_0, t = torch.randn(8, 2), torch.rand(8)
    x_t = t[:, None] * x_1 + (1 - t[:, None]) * x_0
    v = net(x_t, t, c)
    by_hand = sum(((v[i] - (x_1[i] - x_0[i])) ** 2).sum() for i in range(8)) / 8
    assert components == {}
    assert loss.shape == ()
    torch.testing.assert_close(loss, by_hand)


def test_loss_compiles_without_graph_breaks():
    net = model(CONDITIONAL)
    compiled = torch.compile(net.loss, backend="eager", fullgraph=True)
    x_1, c = torch.randn(16, 2), torch.arange(16) % 5
    torch.manual_seed(3)
    eager = net.loss(x_1, c)[0]
    torch.manual_seed(3)
    torch.testing.assert_close(compiled(x_1, c)[0], eager)


def ring(n: int, generator: torch.Generator) -> torch.Tensor:
    """A thin ring of radius 2: far from Gaussian, and easy to check a sample against."""
    angle = torch.rand(n, generator=generator) * 2 * math.pi
    radius = 2 + 0.1 * torch.randn(n, generator=generator)
    return torch.stack([radius * angle.cos(), radius * angle.sin()], dim=1)


@pytest.fixture
def one_thread():
    """Tiny matrices: a second thread only adds synchronisation (6x slower on a busy CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_short_training_lowers_the_loss_and_samples_the_ring(one_thread):
    torch.manual_seed(0)
    data = torch.Generator().manual_seed(1)
    net = VelocityField(FMConfig(hidden=64, n_linear=4))
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    held_out = ring(4096, data)

    def held_out_loss() -> float:
        torch.manual_seed(123)
        with torch.no_grad():
            return net.loss(held_out)[0].item()

    before = held_out_loss()
    for _ in range(300):
        loss, _ = net.loss(ring(128, data))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = held_out_loss()
    # The loss cannot reach 0 (the target x_1 - x_0 is random given x_t): ~6 -> ~4 here.
    assert after < 0.75 * before
    radius = net.sample(2000, dt=0.01, generator=torch.Generator().manual_seed(0)).y.norm(dim=1)
    # A standard normal puts ~17% of its mass in this annulus.
    assert ((radius - 2).abs() < 0.3).float().mean() > 0.8


# --- minibatch optimal-transport coupling (OT-CFM) ------------------------------------------


def test_coupling_is_checked():
    assert FMConfig().coupling == "independent"
    with pytest.raises(ValueError,
                       match=r"^coupling must be one of 'independent', 'ot', got 'sinkhorn'$"):
        FMConfig(coupling="sinkhorn")


def test_ot_loss_is_eq_16_on_the_ot_pairs_of_the_same_draw():
    net = model(dataclasses.replace(SMALL, coupling="ot"))
    generator = torch.Generator().manual_seed(0)
    x_1 = ring(64, generator)
    torch.manual_seed(7)
    loss, components = net.loss(x_1)
    torch.manual_seed(7)
    x_0, t = torch.randn(64, 2), torch.rand(64)  # the independent loss's draws, in order
    paired = x_0[ot_pairing(x_0, x_1)]
    x_t = t[:, None] * x_1 + (1 - t[:, None]) * paired
    by_hand = (net(x_t, t) - (x_1 - paired)).square().sum(1).mean()
    assert components == {} and loss.shape == ()
    torch.testing.assert_close(loss, by_hand)
    # The re-pairing is what OT-CFM is for: much shorter straight lines than independent pairs.
    assert (paired - x_1).square().sum(1).mean() < 0.5 * (x_0 - x_1).square().sum(1).mean()
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())


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


def test_conditional_ot_loss_keeps_the_classes_with_their_points():
    net = model(dataclasses.replace(CONDITIONAL, coupling="ot"))
    x_1, c = torch.randn(30, 2), torch.arange(30) % 5
    torch.manual_seed(2)
    loss, _ = net.loss(x_1, c)
    torch.manual_seed(2)
    x_0, t = torch.randn(30, 2), torch.rand(30)
    paired = ot_coupled_noise(x_0, x_1, c, block=CONDITIONAL.batch_size)
    x_t = t[:, None] * x_1 + (1 - t[:, None]) * paired
    torch.testing.assert_close(loss, (net(x_t, t, c) - (x_1 - paired)).square().sum(1).mean())
    with pytest.raises(ValueError, match=r"^c must be class labels in \[0, 4\]"):
        net.loss(x_1, c + 1)


def test_ot_loss_runs_compiled_with_the_assignment_left_eager():
    net = model(dataclasses.replace(CONDITIONAL, coupling="ot"))
    compiled = torch.compile(net.loss, backend="eager")
    x_1, c = torch.randn(16, 2), torch.arange(16) % 5
    torch.manual_seed(3)
    eager = net.loss(x_1, c)[0]
    torch.manual_seed(3)
    torch.testing.assert_close(compiled(x_1, c)[0], eager)


def test_straightness_of_known_paths():
    times = torch.linspace(0, 1, 101)
    e = torch.tensor([[0.6, -0.8], [3.0, 4.0]])
    line = times[:, None, None] * e  # straight at constant speed
    assert straightness(line, times) == pytest.approx(0, abs=1e-9)  # float32 rounding
    assert path_length_ratio(line) == pytest.approx(1)
    # Straight but accelerating, y_t = t^2 e: the step velocities are (t_j + t_j+1) e, so
    # S = |e|^2 x (midpoint rule of (2t - 1)^2) = |e|^2 (1/3 - dt^2 / 3); the length ratio
    # cannot see it.
    squared = times[:, None, None] ** 2 * e
    expected = (1 / 3 - 1e-4 / 3) * e.square().sum(1).mean().item()
    assert straightness(squared, times) == pytest.approx(expected, rel=1e-6)
    assert path_length_ratio(squared) == pytest.approx(1)
    # Backward in time (t from 1 to 0) is the same path.
    assert straightness(squared.flip(0), times.flip(0)) == pytest.approx(expected, rel=1e-6)


def train(coupling: str, steps: int = 200, batch: int = 64) -> VelocityField:
    torch.manual_seed(0)
    data = torch.Generator().manual_seed(1)
    net = VelocityField(FMConfig(hidden=32, n_linear=3, batch_size=batch, coupling=coupling))
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(steps):
        loss, _ = net.loss(ring(batch, data))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net


def test_ot_coupling_trains_straighter_paths(one_thread):
    """Same model, data and steps; only the pairing differs. Independent pairs from a
    Gaussian to a ring bend and speed up (ratio ~2, S ~1 here); OT pairs come out nearly
    straight (~1.1, S ~0.02), measured on the same noise."""
    measures = {}
    for coupling in ("independent", "ot"):
        sol = train(coupling).sample(1000, dt=0.02, generator=torch.Generator().manual_seed(0),
                                     return_intermediates=True)
        measures[coupling] = path_length_ratio(sol.states), straightness(sol.states, sol.times)
        radius = sol.y.norm(dim=1)
        assert ((radius - 2).abs() < 0.3).float().mean() > 0.5, coupling  # both learned it
    (ratio, s), (ratio_ot, s_ot) = measures["independent"], measures["ot"]
    assert ratio_ot < 1 + 0.5 * (ratio - 1) and ratio_ot < 0.8 * ratio
    assert s_ot < 0.1 * s


# --- sampling, reversing, likelihood ---------------------------------------------------------


def test_sample_steps_and_nfe():
    net = model()
    sol = net.sample(10, dt=0.3)
    assert sol.y.shape == (10, 2) and sol.nfe == math.ceil(1 / 0.3) == 4
    assert net.sample(3, dt=0.3, method="rk4").nfe == 16
    assert net.sample(3).nfe == round(1 / SMALL.dt)
    with pytest.raises(ValueError, match=r"^dt must be in \(0, 1\]"):
        net.sample(3, dt=0.0)
    with pytest.raises(ValueError, match=r"^n must be"):
        net.sample(0)


def test_sample_is_alg_2_from_the_generator_noise():
    net = model()
    sol = net.sample(5, dt=0.25, generator=torch.Generator().manual_seed(4), times=[0.0, 1.0])
    y = torch.randn(5, 2, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(sol.states[0], y)
    with torch.no_grad():
        for t in (0.0, 0.25, 0.5, 0.75):
            y = y + net(y, t) * 0.25
    torch.testing.assert_close(sol.y, y)
    assert not sol.y.requires_grad


def test_sample_intermediates_at_the_exercise_times():
    sol = model().sample(50, times=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert sol.states.shape == (6, 50, 2)
    torch.testing.assert_close(sol.times, torch.linspace(0, 1, 6))
    assert torch.equal(sol.states[-1], sol.y)


def test_conditional_sample_with_one_class_or_many():
    net = model(CONDITIONAL)
    one = net.sample(4, dt=0.1, c=2, generator=torch.Generator().manual_seed(0))
    many = net.sample(4, dt=0.1, c=torch.full((4,), 2), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(one.y, many.y)
    other = net.sample(4, dt=0.1, c=0, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(one.y, other.y)


def test_reverse_inverts_sample():
    net = model(CONDITIONAL)
    c = torch.arange(20) % 5
    forward = net.sample(20, dt=1e-3, c=c, return_intermediates=True)
    backward = net.reverse(forward.y, dt=1e-3, c=c)
    assert backward.nfe == 1000
    torch.testing.assert_close(backward.y, forward.states[0], rtol=0, atol=1e-3)


def test_model_log_prob_is_the_ode_log_prob():
    net = model(CONDITIONAL)
    x_1, c = torch.randn(6, 2), torch.tensor([0, 1, 2, 3, 4, 0])
    got = net.log_prob(x_1, c, dt=0.1)
    assert got.shape == (6,) and torch.isfinite(got).all()
    expected = log_prob(lambda y, t: net(y, t, c), x_1, dt=0.1)
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, net.log_prob(x_1, 4, dt=0.1))


def test_model_as_velocity_serves_a_custom_solve():
    net = model(CONDITIONAL)
    y = torch.randn(4, 2)
    sol = solve(net.as_velocity(1), y, dt=0.5, method="midpoint")
    expected = solve(lambda p, t: net(p, t, 1), y, dt=0.5, method="midpoint")
    torch.testing.assert_close(sol.y, expected.y)


# --- options of the stronger presets --------------------------------------------------------


def test_time_power_draws_later_times_in_the_same_order():
    net = model(dataclasses.replace(SMALL, time_power=3.0))
    x_1 = torch.randn(8, 2)
    torch.manual_seed(7)
    loss, _ = net.loss(x_1)
    torch.manual_seed(7)
    x_0, u = torch.randn(8, 2), torch.rand(8)
    t = 1 - (1 - u) ** 3
    by_hand = (net(t[:, None] * x_1 + (1 - t[:, None]) * x_0, t) - (x_1 - x_0)).square()
    torch.testing.assert_close(loss, by_hand.sum(1).mean())


@pytest.mark.parametrize("config", [SMALL, CONDITIONAL])
def test_time_features_widen_the_first_layer_and_keep_checkpoints_plain(config):
    net = model(dataclasses.replace(config, time_features=3))
    first = net.net[0]
    assert first.in_features == 2 + 1 + 6 + (config.embed_dim if config.n_classes else 0)
    y, c = torch.randn(5, 2), (torch.arange(5) if config.n_classes else None)
    # the features are sin/cos of pi j t: their values at t = 0.3 feed the first layer
    angles = 0.3 * math.pi * torch.arange(1, 4)
    inputs = [y, torch.full((5, 1), 0.3), angles.sin().expand(5, 3), angles.cos().expand(5, 3)]
    if c is not None:
        inputs.append(net.embedding(c))
    torch.testing.assert_close(net(y, 0.3, c), net.net(torch.cat(inputs, 1)))
    # the frequencies are not weights: a checkpoint holds the same keys as without them
    assert set(net.state_dict()) == set(model(config).state_dict())


def test_presets_options_are_checked():
    with pytest.raises(ValueError, match="time_features must be an integer >= 0"):
        FMConfig(time_features=-1)
    with pytest.raises(ValueError, match="time_power must be a number in"):
        FMConfig(time_power=0)
