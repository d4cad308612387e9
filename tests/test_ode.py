"""The ODE solvers and the change-of-variables likelihood against fields with known answers."""

import math

import pytest
import torch
from torch import Tensor, nn

from flows_src.ode import (
    METHODS,
    exact_divergence,
    log_prob,
    nfe_sweep,
    solve,
    standard_normal_log_prob,
    time_grid,
)

F64 = torch.float64
Y0 = torch.tensor([[1.0, -2.0], [0.5, 3.0], [-0.3, 0.1]], dtype=F64)


def cosine_field(y: Tensor, t: Tensor) -> Tensor:
    """v = cos(t) y, solved by y_t = y_0 exp(sin t); time-dependent, so stage times matter."""
    return torch.cos(t)[:, None] * y


def cosine_solution(t: float) -> Tensor:
    return Y0 * math.exp(math.sin(t))


def random_mlp(seed: int, dtype: torch.dtype = F64) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 2)).to(dtype)


def mlp_velocity(net: nn.Module):
    return lambda y, t: net(torch.cat([y, t[:, None]], dim=1))


# --- time grid -----------------------------------------------------------------------------


def test_time_grid_ends_exactly_with_a_shorter_last_step():
    grid = time_grid(0.3, dtype=F64)
    assert grid.tolist() == pytest.approx([0.0, 0.3, 0.6, 0.9, 1.0], abs=1e-15)
    assert grid[-1].item() == 1.0
    assert (grid.diff() > 0).all()


def test_time_grid_multiple_of_dt_has_no_extra_step():
    grid = time_grid(1e-3, dtype=F64)
    assert len(grid) == 1001
    assert grid[0].item() == 0.0 and grid[-1].item() == 1.0
    assert grid.diff().min().item() == pytest.approx(1e-3, rel=1e-9)


def test_time_grid_backward():
    grid = time_grid(0.3, t_start=1.0, t_end=0.0, dtype=F64)
    assert grid.tolist() == pytest.approx([1.0, 0.7, 0.4, 0.1, 0.0], abs=1e-15)
    assert grid[-1].item() == 0.0
    assert (grid.diff() < 0).all()


@pytest.mark.parametrize("dt", [0.0, -0.1, 1.5, float("nan"), True])
def test_bad_dt_is_one_line_value_error(dt):
    with pytest.raises(ValueError, match=r"^dt must be in \(0, 1\], got .*$"):
        time_grid(dt)
    with pytest.raises(ValueError, match="dt"):
        solve(cosine_field, Y0, dt=dt)


def test_unknown_method_is_value_error():
    with pytest.raises(ValueError, match="method"):
        solve(cosine_field, Y0, dt=0.1, method="heun")


# --- accuracy -----------------------------------------------------------------------------


def test_euler_on_exponential_decay_is_first_order():
    errors = [
        (solve(lambda y, t: -y, Y0, dt=dt).y - Y0 * math.exp(-1)).abs().max().item()
        for dt in (0.01, 0.005)
    ]
    assert errors[0] < 0.01
    assert errors[0] / errors[1] == pytest.approx(2.0, abs=0.1)


@pytest.mark.parametrize("method", list(METHODS))
def test_constant_field_is_exact_even_with_a_short_last_step(method):
    velocity = torch.tensor([0.7, -1.3], dtype=F64)
    sol = solve(lambda y, t: velocity.expand_as(y), Y0, dt=0.3, method=method)
    torch.testing.assert_close(sol.y, Y0 + velocity, rtol=0, atol=1e-14)
    back = solve(lambda y, t: velocity.expand_as(y), Y0, dt=0.3, t_start=1, t_end=0, method=method)
    torch.testing.assert_close(back.y, Y0 - velocity, rtol=0, atol=1e-14)


@pytest.mark.parametrize(
    ("method", "dt", "ratio", "tol"),
    [("euler", 0.01, 2.0, 0.1), ("midpoint", 0.02, 4.0, 0.4), ("rk4", 0.1, 16.0, 1.0)],
)
@pytest.mark.parametrize("backward", [False, True])
def test_order_of_accuracy(method, dt, ratio, tol, backward):
    """Halving dt divides the error at t=1 (or t=0 backward) by 2, 4 and 16."""
    start, target = (cosine_solution(1.0), Y0) if backward else (Y0, cosine_solution(1.0))
    span = {"t_start": 1.0, "t_end": 0.0} if backward else {}
    errors = [
        (solve(cosine_field, start, dt=h, method=method, **span).y - target).abs().max().item()
        for h in (dt, dt / 2)
    ]
    assert errors[0] / errors[1] == pytest.approx(ratio, abs=tol)


@pytest.mark.parametrize("method", list(METHODS))
def test_nfe_counts_evaluations(method):
    calls = []

    def counted(y, t):
        calls.append(1)
        return cosine_field(y, t)

    sol = solve(counted, Y0, dt=0.3, method=method)
    assert sol.nfe == len(calls) == 4 * METHODS[method]


def test_velocity_gets_one_time_per_sample_in_the_state_dtype():
    seen = []

    def spy(y, t):
        seen.append((t.shape, t.dtype))
        return -y

    solve(spy, Y0.float(), dt=0.5, method="rk4")
    assert set(seen) == {((3,), torch.float32)}


def test_reverse_of_forward_returns_the_start_within_order_dt():
    net = random_mlp(0)
    velocity = mlp_velocity(net)
    errors = []
    for dt in (0.02, 0.01):
        x_1 = solve(velocity, Y0, dt=dt).y
        errors.append((solve(velocity, x_1, dt=dt, t_start=1, t_end=0).y - Y0).abs().max().item())
    assert errors[0] < 0.05
    assert errors[0] / errors[1] == pytest.approx(2.0, abs=0.3)


# --- intermediates and gradients ----------------------------------------------------------


def test_requested_times_on_the_grid():
    times = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    sol = solve(cosine_field, Y0, dt=1e-3, times=times)
    assert sol.states.shape == (6, *Y0.shape)
    torch.testing.assert_close(sol.times, torch.tensor(times, dtype=F64), rtol=0, atol=1e-12)
    assert torch.equal(sol.states[0], Y0)
    assert torch.equal(sol.states[-1], sol.y)
    # Keeping states must not change the solve itself.
    assert torch.equal(sol.y, solve(cosine_field, Y0, dt=1e-3).y)
    torch.testing.assert_close(sol.states[2], Y0 * math.exp(math.sin(0.4)), rtol=1e-3, atol=0)


def test_requested_times_off_the_grid_snap_to_the_nearest_grid_time():
    sol = solve(cosine_field, Y0, dt=0.3, times=[0.0, 0.2, 0.5, 1.0])
    assert sol.times.tolist() == pytest.approx([0.0, 0.3, 0.6, 1.0], abs=1e-12)
    assert sol.nfe == 4


def test_requested_times_backward_and_out_of_range():
    sol = solve(cosine_field, cosine_solution(1.0), dt=0.1, t_start=1, t_end=0, times=[1.0, 0.0])
    assert sol.times.tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="times"):
        solve(cosine_field, Y0, dt=0.1, times=[0.5, 1.2])


def test_all_intermediates():
    sol = solve(cosine_field, Y0, dt=0.25, method="midpoint", return_intermediates=True)
    assert sol.times.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert sol.states.shape == (5, *Y0.shape)
    assert torch.equal(sol.states[-1], sol.y)
    plain = solve(cosine_field, Y0, dt=0.25)
    assert plain.times is None and plain.states is None


def test_no_graph_by_default_and_gradients_on_request():
    y0 = Y0.clone().requires_grad_(True)
    assert not solve(lambda y, t: -y, y0, dt=0.1).y.requires_grad
    sol = solve(lambda y, t: -y, y0, dt=0.1, enable_grad=True)
    sol.y.sum().backward()
    # Each Euler step multiplies by (1 - dt).
    torch.testing.assert_close(y0.grad, torch.full_like(Y0, 0.9**10))


# --- divergence and likelihood ------------------------------------------------------------


def test_exact_divergence_is_the_trace_of_the_jacobian():
    net = random_mlp(1)
    velocity = mlp_velocity(net)
    y = torch.randn(7, 2, dtype=F64)
    t = torch.rand(7, dtype=F64)
    expected = torch.stack(
        [
            torch.autograd.functional.jacobian(lambda p: velocity(p[None], t[i : i + 1])[0], y[i])  # noqa: B023 - called at once
            .trace()
            for i in range(7)
        ]
    )
    torch.testing.assert_close(exact_divergence(velocity, y, t), expected, rtol=1e-12, atol=1e-12)


def test_exact_divergence_works_under_no_grad():
    with torch.no_grad():
        div = exact_divergence(lambda y, t: 3.0 * y, Y0, torch.zeros(3, dtype=F64))
    torch.testing.assert_close(div, torch.full((3,), 6.0, dtype=F64))


def test_standard_normal_log_prob():
    y = torch.randn(5, 2, dtype=F64)
    expected = torch.distributions.MultivariateNormal(
        torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64)
    ).log_prob(y)
    torch.testing.assert_close(standard_normal_log_prob(y), expected)


@pytest.mark.parametrize("dtype", [F64, torch.float32])
def test_log_prob_of_a_linear_flow(dtype):
    """v = A y flows y_0 to y_1 = e^A y_0, so log p_1(x) = log N(e^{-A} x; 0, I) - tr A."""
    a = torch.tensor([[0.3, -0.8], [0.5, -0.1]], dtype=dtype)
    x_1 = torch.randn(50, 2, dtype=dtype) * 2
    expected = standard_normal_log_prob(x_1 @ torch.linalg.matrix_exp(-a).T) - a.trace()
    got, nfe = log_prob(lambda y, t: y @ a.T, x_1, dt=0.01, chunk_size=16, return_nfe=True)
    tol = 1e-8 if dtype == F64 else 1e-4
    torch.testing.assert_close(got, expected, rtol=0, atol=tol)
    assert nfe == 100 * 4


@pytest.fixture
def one_thread():
    """Tiny matrices: a second thread only adds synchronisation, slow on a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_log_prob_of_a_nonlinear_flow_integrates_to_one(one_thread):
    """The density of a random MLP flow of N(0, I) must have total mass 1 (checks the sign and
    the time handling of the divergence term, which a linear field cannot)."""
    net = random_mlp(2)
    velocity = mlp_velocity(net)
    side = torch.linspace(-7, 7, 61, dtype=F64)
    cell = (side[1] - side[0]).item() ** 2
    grid = torch.cartesian_prod(side, side)
    # The Riemann sum of a smooth, fast-decaying density is far more accurate than 1e-6.
    mass = log_prob(velocity, grid, dt=0.1).exp().sum().item() * cell
    assert mass == pytest.approx(1.0, abs=1e-6)
    # Without the divergence term (the base density pulled back alone) the mass is off.
    y_0 = solve(velocity, grid, dt=0.1, t_start=1, t_end=0, method="rk4").y
    assert abs(standard_normal_log_prob(y_0).exp().sum().item() * cell - 1.0) > 0.05


def test_nfe_sweep_spends_whole_steps_within_each_budget_and_skips_too_small_ones():
    sweep = nfe_sweep(lambda y, t: -y, Y0, [1, 5, 10], ["euler", "midpoint", "rk4"])
    assert {key: sol.nfe for key, sol in sweep.items()} == {
        ("euler", 1): 1, ("euler", 5): 5, ("euler", 10): 10, ("midpoint", 5): 4,
        ("midpoint", 10): 10, ("rk4", 5): 4, ("rk4", 10): 8}
    same = solve(lambda y, t: -y, Y0, dt=1 / 2, method="rk4")
    assert torch.equal(sweep["rk4", 10].y, same.y)
    with pytest.raises(ValueError, match="methods must be among"):
        nfe_sweep(lambda y, t: -y, Y0, [10], ["heun"])
