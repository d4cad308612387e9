"""Minibatch optimal transport: the exact assignment and the pairing of noise with data."""

import itertools

import numpy as np
import pytest
import torch

from flows_src.ot import _solve, min_cost_assignment, ot_pairing


def total(cost: np.ndarray, assignment: np.ndarray) -> float:
    return float(cost[np.arange(len(cost)), assignment].sum())


def brute_force(cost: np.ndarray) -> float:
    """The least total cost over all n! permutations."""
    n = len(cost)
    perms = np.array(list(itertools.permutations(range(n))))
    return float(cost[np.arange(n), perms].sum(axis=1).min())


def is_permutation(p: np.ndarray | torch.Tensor, n: int) -> bool:
    return sorted(np.asarray(p).tolist()) == list(range(n))


# --- the assignment ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", range(1, 8))
def test_assignment_is_the_optimum_found_by_brute_force(n):
    rng = np.random.default_rng(n)
    for _ in range(30):
        cost = rng.normal(size=(n, n)) * rng.choice([1e-3, 1.0, 1e3])
        assignment = min_cost_assignment(cost)
        assert assignment.dtype == np.int64 and is_permutation(assignment, n)
        assert total(cost, assignment) == pytest.approx(brute_force(cost), rel=0, abs=1e-9
                                                        * max(1.0, np.abs(cost).max()))


@pytest.mark.parametrize("n", [3, 6, 7])
def test_ties_and_degenerate_costs(n):
    """Integer costs with many equal entries, a constant matrix, repeated rows: any of the
    tied optima will do, but it must be one."""
    rng = np.random.default_rng(0)
    for cost in [rng.integers(0, 3, size=(n, n)).astype(float), np.full((n, n), 2.0),
                 np.tile(rng.random(n), (n, 1)), np.tile(rng.random((n, 1)), (1, n))]:
        assignment = min_cost_assignment(cost)
        assert is_permutation(assignment, n)
        assert total(cost, assignment) == pytest.approx(brute_force(cost), abs=1e-12)


@pytest.mark.parametrize("n", [64, 256])
def test_dual_certificate_for_large_batches(n):
    """Beyond brute force: potentials u, v with c - u - v >= 0 everywhere and = 0 on the
    assignment prove it optimal (its cost equals the dual bound sum u + sum v)."""
    rng = np.random.default_rng(n)
    x_1, x_0 = rng.normal(size=(n, 2)) * 0.7 + 0.5, rng.normal(size=(n, 2))
    cost = np.square(x_1[:, None] - x_0[None]).sum(-1)
    assignment, u, v = _solve(cost)
    reduced = cost - u[:, None] - v
    assert reduced.min() > -1e-9
    np.testing.assert_allclose(reduced[np.arange(n), assignment], 0, atol=1e-9)
    assert total(cost, assignment) == pytest.approx(u.sum() + v.sum(), abs=1e-9)
    assert np.array_equal(assignment, min_cost_assignment(cost))


def test_empty_one_point_and_identity():
    assert min_cost_assignment(np.zeros((0, 0))).shape == (0,)
    assert ot_pairing(torch.zeros(0, 2), torch.zeros(0, 2)).shape == (0,)
    assert min_cost_assignment(np.array([[5.0]])).tolist() == [0]
    cost = 1 - np.eye(5)
    assert min_cost_assignment(cost).tolist() == [0, 1, 2, 3, 4]
    assert min_cost_assignment(torch.tensor(cost)).tolist() == [0, 1, 2, 3, 4]


def test_invariances():
    """Adding a constant to a row or a column changes every assignment's cost alike, so the
    optimum stays optimal; permuting rows permutes the answer; transposing inverts it."""
    rng = np.random.default_rng(1)
    cost = rng.random((40, 40))
    best = min_cost_assignment(cost)
    shifted = cost + rng.normal(size=(40, 1)) * 10 + rng.normal(size=(1, 40)) * 10
    assert np.array_equal(min_cost_assignment(shifted), best)
    assert np.array_equal(min_cost_assignment(3.7 * cost), best)
    rows = rng.permutation(40)
    assert np.array_equal(min_cost_assignment(cost[rows]), best[rows])
    assert np.array_equal(best[min_cost_assignment(cost.T)], np.arange(40))


@pytest.mark.parametrize("cost, match", [
    (np.zeros((2, 3)), r"^cost must be a square \(n, n\) matrix, got shape \(2, 3\)$"),
    (np.zeros(3), r"^cost must be a square"),
    (np.array([[0.0, np.inf], [1.0, 0.0]]), r"^cost must be finite"),
    (np.array([[0.0, np.nan], [1.0, 0.0]]), r"^cost must be finite"),
])
def test_bad_cost_is_a_one_line_value_error(cost, match):
    with pytest.raises(ValueError, match=match):
        min_cost_assignment(cost)


# --- pairing noise with data ------------------------------------------------------------------


def squared_distance(x_0: torch.Tensor, x_1: torch.Tensor) -> float:
    return (x_0 - x_1).square().sum().item()


@pytest.mark.parametrize("n", [1, 2, 5, 128])
def test_pairing_is_a_permutation_that_lowers_the_total_squared_distance(n):
    generator = torch.Generator().manual_seed(n)
    x_0 = torch.randn(n, 2, generator=generator)
    angle = torch.rand(n, generator=generator) * 2 * torch.pi
    x_1 = 2 * torch.stack([angle.cos(), angle.sin()], dim=1)
    perm = ot_pairing(x_0, x_1)
    assert perm.dtype == torch.int64 and perm.shape == (n,) and is_permutation(perm, n)
    assert squared_distance(x_0[perm], x_1) <= squared_distance(x_0, x_1) + 1e-9
    # No other permutation does better: try every pair swap.
    paired = x_0[perm]
    gain = ((paired[:, None] - x_1[None]).square().sum(-1)
            + (paired[None] - x_1[:, None]).square().sum(-1)).double()
    own = (paired - x_1).square().sum(-1).double()
    assert (gain - own[:, None] - own[None, :]).min() > -1e-4
    if n == 128:  # independent pairs of these two clouds are far worse than the best pairs
        assert squared_distance(x_0[perm], x_1) < 0.5 * squared_distance(x_0, x_1)


def test_pairing_matches_brute_force_and_undoes_a_shuffle():
    generator = torch.Generator().manual_seed(0)
    x_1 = torch.randn(7, 3, generator=generator, dtype=torch.float64)
    x_0 = torch.randn(7, 3, generator=generator, dtype=torch.float64)
    cost = (x_1[:, None] - x_0[None]).square().sum(-1).numpy()
    assert squared_distance(x_0[ot_pairing(x_0, x_1)], x_1) == pytest.approx(
        brute_force(cost), abs=1e-9)
    # Points paired with slightly moved copies of themselves, shuffled: the pairing unshuffles.
    shuffle = torch.randperm(50, generator=generator)
    x_1 = torch.randn(50, 2, generator=generator)
    x_0 = (x_1 + 1e-3 * torch.randn(50, 2, generator=generator))[shuffle]
    assert torch.equal(shuffle[ot_pairing(x_0, x_1)], torch.arange(50))


def test_pairing_bad_shapes():
    with pytest.raises(ValueError, match=r"^x_0 and x_1 must have the same shape"):
        ot_pairing(torch.zeros(3, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"^x_0 and x_1 must have the same shape"):
        ot_pairing(torch.zeros(3), torch.zeros(3))
