"""Flow matching as a density model: the network, the objective and the sampler put
together; sampling (Alg. 2), reversing (Eq. 18), the likelihood, trajectories, training."""

import dataclasses
import math

import pytest
import torch

from flows_src.config import FMConfig
from flows_src.flow_matching import FlowMatching
from flows_src.fm_loss import FlowMatchingLoss
from flows_src.ode import LOG_PROB_CHUNK, log_prob, solve
from flows_src.path_metrics import path_length_ratio, straightness
from flows_src.paths import OTCoupling
from flows_src.sampler import ODESampler

SMALL = FMConfig(hidden=16, n_linear=3)
CONDITIONAL = FMConfig(hidden=16, n_linear=3, n_classes=5, embed_dim=4)


def model(config: FMConfig = SMALL, seed: int = 0) -> FlowMatching:
    torch.manual_seed(seed)
    return FlowMatching(config)


def test_the_config_decides_network_objective_and_sampler():
    fm = model(dataclasses.replace(CONDITIONAL, coupling="ot", time_power=2.0, dt=0.01,
                                   time_features=2, batch_size=64))
    assert fm.net.net[0].in_features == 2 + 1 + 4 + 4 and fm.net.embedding.num_embeddings == 5
    assert fm.objective.coupling == OTCoupling(64) and fm.objective.time_power == 2.0
    assert fm.sampler == ODESampler(dt=0.01)
    # the network is the only trained part: its weights are the model's
    assert list(fm.parameters()) == list(fm.net.parameters())


def test_model_loss_is_its_objective_on_its_network():
    fm = model(CONDITIONAL)
    x_1, c = torch.randn(8, 2), torch.arange(8) % 5
    torch.manual_seed(7)
    loss, _ = fm.loss(x_1, c)
    torch.manual_seed(7)
    assert torch.equal(loss, FlowMatchingLoss()(fm.net, x_1, c)[0])


def test_model_loss_compiles_without_graph_breaks():
    fm = model(CONDITIONAL)
    compiled = torch.compile(fm.loss, backend="eager", fullgraph=True)
    x_1, c = torch.randn(16, 2), torch.arange(16) % 5
    torch.manual_seed(3)
    eager = fm.loss(x_1, c)[0]
    torch.manual_seed(3)
    torch.testing.assert_close(compiled(x_1, c)[0], eager)


def test_with_sampler_shares_the_network():
    fm = model()
    coarse = fm.with_sampler(dt=0.5, method="rk4")
    assert coarse.sampler == ODESampler(dt=0.5, method="rk4") and fm.sampler == ODESampler()
    assert coarse.net is fm.net
    assert fm.with_sampler(ODESampler(nll_dt=0.1)).sampler.nll_dt == 0.1
    with pytest.raises(ValueError, match=r"^dt must be a number in \(0, 1\]"):
        fm.with_sampler(dt=0.0)
    with pytest.raises(ValueError, match=r"^method must be one of"):
        fm.with_sampler(method="heun")


def test_sample_is_alg_2_from_the_generator_noise():
    fm = model().with_sampler(dt=0.25)
    x = fm.sample(5, torch.Generator().manual_seed(4))
    y = torch.randn(5, 2, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        for t in (0.0, 0.25, 0.5, 0.75):
            y = y + fm.net(y, t) * 0.25
    torch.testing.assert_close(x, y)
    assert not x.requires_grad
    with pytest.raises(ValueError, match=r"^n must be"):
        fm.sample(0)


def test_solve_steps_and_nfe():
    fm = model()
    sol = fm.with_sampler(dt=0.3).solve(torch.randn(10, 2))
    assert sol.y.shape == (10, 2) and sol.nfe == math.ceil(1 / 0.3) == 4
    assert fm.with_sampler(dt=0.3, method="rk4").solve(torch.randn(3, 2)).nfe == 16
    assert fm.solve(torch.randn(3, 2)).nfe == round(1 / SMALL.sampler.dt)


def test_trajectory_at_the_exercise_times():
    fm = model()
    x_0 = torch.randn(50, 2)
    path = fm.trajectory(x_0, times=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert path.states.shape == (6, 50, 2)
    torch.testing.assert_close(path.times, torch.linspace(0, 1, 6))
    assert torch.equal(path.states[0], x_0)
    assert torch.equal(path.states[-1], fm.solve(x_0).y)
    assert fm.trajectory(x_0).states.shape == (1001, 50, 2)


def test_conditional_sample_with_one_class_or_many():
    fm = model(CONDITIONAL).with_sampler(dt=0.1)
    one = fm.sample(4, torch.Generator().manual_seed(0), c=2)
    many = fm.sample(4, torch.Generator().manual_seed(0), c=torch.full((4,), 2))
    torch.testing.assert_close(one, many)
    assert not torch.allclose(one, fm.sample(4, torch.Generator().manual_seed(0), c=0))
    with pytest.raises(ValueError, match=r"^c must be class labels in \[0, 4\]"):
        fm.sample(3, c=5)
    with pytest.raises(ValueError, match=r"^c is required"):
        fm.sample(3)


def test_reverse_trajectory_inverts_sample():
    fm = model(CONDITIONAL)
    c = torch.arange(20) % 5
    x_0 = torch.randn(20, 2)
    back = fm.trajectory(fm.solve(x_0, c=c).y, c=c, reverse=True)
    assert back.times[0] == 1 and back.times[-1] == 0 and len(back.times) == 1001
    torch.testing.assert_close(back.states[-1], x_0, rtol=0, atol=1e-3)


def test_model_log_prob_is_the_ode_log_prob():
    fm = model(CONDITIONAL).with_sampler(nll_dt=0.1)
    x_1, c = torch.randn(6, 2), torch.tensor([0, 1, 2, 3, 4, 0])
    got = fm.log_prob(x_1, c)
    assert got.shape == (6,) and torch.isfinite(got).all()
    expected = log_prob(lambda y, t: fm.net(y, t, c), x_1, dt=0.1)
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, fm.log_prob(x_1, 4))


def test_a_class_per_point_goes_with_its_points_past_one_chunk():
    # more points than ode.log_prob integrates at once: each chunk keeps its own classes,
    # guided or not, given as a tensor or a list
    n = LOG_PROB_CHUNK + 100
    x_1 = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))
    c = torch.arange(n) % 5
    guided = dataclasses.replace(CONDITIONAL, class_dropout=0.1)
    for fm in (model(CONDITIONAL).with_sampler(nll_dt=0.5),
               model(guided).with_sampler(nll_dt=0.5, guidance=0.5)):
        got = fm.log_prob(x_1, c)
        assert got.shape == (n,)
        for k in range(5):
            torch.testing.assert_close(got[c == k], fm.log_prob(x_1[c == k], k))
    torch.testing.assert_close(fm.log_prob(x_1, c.tolist()), got)
    with pytest.raises(ValueError):
        fm.log_prob(x_1, c[:-1])


def test_model_as_velocity_serves_a_custom_solve():
    fm = model(CONDITIONAL)
    y = torch.randn(4, 2)
    sol = solve(fm.as_velocity(1), y, dt=0.5, method="midpoint")
    expected = solve(lambda p, t: fm.net(p, t, 1), y, dt=0.5, method="midpoint")
    torch.testing.assert_close(sol.y, expected.y)


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
    fm = FlowMatching(FMConfig(hidden=64, n_linear=4))
    optimizer = torch.optim.Adam(fm.parameters(), lr=3e-3)
    held_out = ring(4096, data)

    def held_out_loss() -> float:
        torch.manual_seed(123)
        with torch.no_grad():
            return fm.loss(held_out)[0].item()

    before = held_out_loss()
    for _ in range(300):
        loss, _ = fm.loss(ring(128, data))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = held_out_loss()
    # The loss cannot reach 0 (the target x_1 - x_0 is random given x_t): ~6 -> ~4 here.
    assert after < 0.75 * before
    radius = fm.with_sampler(dt=0.01).sample(2000, torch.Generator().manual_seed(0)).norm(dim=1)
    # A standard normal puts ~17% of its mass in this annulus.
    assert ((radius - 2).abs() < 0.3).float().mean() > 0.8


def train(coupling: str, steps: int = 200, batch: int = 64) -> FlowMatching:
    torch.manual_seed(0)
    data = torch.Generator().manual_seed(1)
    fm = FlowMatching(FMConfig(hidden=32, n_linear=3, batch_size=batch, coupling=coupling))
    optimizer = torch.optim.Adam(fm.parameters(), lr=3e-3)
    for _ in range(steps):
        loss, _ = fm.loss(ring(batch, data))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return fm


def test_ot_coupling_trains_straighter_paths(one_thread):
    """Same model, data and steps; only the pairing differs. Independent pairs from a
    Gaussian to a ring bend and speed up (ratio ~2, S ~1 here); OT pairs come out nearly
    straight (~1.1, S ~0.02), measured on the same noise."""
    measures = {}
    x_0 = torch.randn(1000, 2, generator=torch.Generator().manual_seed(0))
    for coupling in ("independent", "ot"):
        path = train(coupling).with_sampler(dt=0.02).trajectory(x_0)
        measures[coupling] = path_length_ratio(path.states), straightness(path.states,
                                                                           path.times)
        radius = path.states[-1].norm(dim=1)
        assert ((radius - 2).abs() < 0.3).float().mean() > 0.5, coupling  # both learned it
    (ratio, s), (ratio_ot, s_ot) = measures["independent"], measures["ot"]
    assert ratio_ot < 1 + 0.5 * (ratio - 1) and ratio_ot < 0.8 * ratio
    assert s_ot < 0.1 * s


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


def test_class_dropout_gives_a_guidable_model_and_guidance_moves_every_solve():
    fm = model(dataclasses.replace(CONDITIONAL, objective=dataclasses.replace(
        CONDITIONAL.objective, class_dropout=0.2)))
    assert fm.objective.class_dropout == 0.2 and fm.net.null_embedding is not None
    with torch.no_grad():
        fm.net.null_embedding.normal_()
    guided = fm.with_sampler(guidance=1.5, dt=0.1, nll_dt=0.1)
    x_1 = torch.randn(6, 2)
    field = fm.net.as_velocity(2, guidance=1.5)
    torch.testing.assert_close(guided.log_prob(x_1, 2), log_prob(field, x_1, dt=0.1))
    noise = torch.randn(6, 2)
    torch.testing.assert_close(guided.solve(noise, c=2).y, solve(field, noise, dt=0.1).y)
    assert not torch.allclose(guided.solve(noise, c=2).y, fm.with_sampler(dt=0.1).solve(
        noise, c=2).y)
    with pytest.raises(ValueError, match="^class_dropout needs a class-conditional model"):
        FlowMatching(FMConfig(hidden=8, n_linear=2, class_dropout=0.1))
    with pytest.raises(ValueError, match="^guidance needs a network trained with dropped"):
        model(CONDITIONAL).with_sampler(guidance=1.0).sample(2, c=0)
