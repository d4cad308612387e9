"""The quality measures on inputs whose answer is known."""

import math

import numpy as np
import pytest
import torch

from create_data import create_olympic_rings, create_unconditional_olympic_rings
from flows_src import metrics
from flows_src.history import History


def test_real_data_is_all_in_band_and_balanced_with_itself():
    x, s = create_unconditional_olympic_rings(20_000, verbose=False, seed=0,
                                              return_standardizer=True)
    assert metrics.in_band_fraction(x, s) == 1.0
    assert metrics.in_band_fraction(torch.from_numpy(x).float(), s) > 0.999
    balance = metrics.ring_balance(x[:10_000], x[10_000:], s)
    assert balance["none"] == {"model": 0.0, "data": 0.0}
    for ring in ("blue", "black", "red", "yellow", "green"):
        assert balance[ring]["model"] == pytest.approx(balance[ring]["data"], abs=0.02)
    assert sum(v["model"] for v in balance.values()) == pytest.approx(1.0)


def test_gaussian_noise_is_mostly_off_the_bands():
    _, s = create_unconditional_olympic_rings(1000, verbose=False, seed=0,
                                              return_standardizer=True)
    noise = np.random.default_rng(0).normal(size=(20_000, 2))
    fraction = metrics.in_band_fraction(noise, s)
    assert 0.05 < fraction < 0.6
    assert metrics.ring_shares(noise, s)[-1] == pytest.approx(1 - fraction)


def test_conditional_accuracy_of_true_and_shuffled_labels():
    x, labels, _, s = create_olympic_rings(10_000, verbose=False, seed=0,
                                           return_standardizer=True)
    per_class, overall = metrics.conditional_accuracy(x, labels, s)
    assert overall == 1.0 and (per_class == 1.0).all()
    shuffled = np.random.default_rng(0).permutation(labels)
    _, chance = metrics.conditional_accuracy(x, torch.from_numpy(shuffled), s)
    assert chance < 0.35  # only the overlaps of neighbouring rings agree by chance


def test_nll_of_the_standard_normal_is_its_entropy():
    x = torch.randn(200_000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    dist = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=torch.float64),
                                                  torch.eye(2, dtype=torch.float64))
    assert metrics.nll(dist.log_prob, x, chunk=7777) == pytest.approx(
        math.log(2 * math.pi * math.e), abs=0.01)


def run(epoch_losses, batch_losses, **counts):
    return History(batch_loss=batch_losses, epochs=[{"loss": v} for v in epoch_losses],
                   **counts)


def test_steadiness_counts_rises_the_worst_batch_and_the_clipped_steps():
    steady = metrics.steadiness(run([3.0, 2.5, 2.0, 1.9], [3.0, 2.0, 2.0, 1.0]))
    assert steady == {"rises": 0, "largest_rise": 0.0, "worst_batch": 3.0,
                      "worst_over_median": 1.0, "steps": 4, "clipped_steps": 0,
                      "skipped_steps": 0}
    jumpy = metrics.steadiness(run([3.0, 2.0, 2.3, 2.1, 2.6], [2.0, 2.0, 1000.0, 2.0, 1.0],
                                   clipped_steps=1, skipped_steps=2))
    assert jumpy["rises"] == 2
    assert jumpy["largest_rise"] == pytest.approx(0.5)
    assert jumpy["worst_batch"] == 1000.0
    assert jumpy["worst_over_median"] == pytest.approx(998.0)
    assert (jumpy["steps"], jumpy["clipped_steps"], jumpy["skipped_steps"]) == (5, 1, 2)
    with pytest.raises(ValueError, match="two epochs"):
        metrics.steadiness(run([3.0], [1.0]))


def test_class_check_and_misses_locate_conditional_samples():
    from flows_src.rings import Standardizer

    identity = Standardizer((0.0, 0.0), (1.0, 1.0))
    points = np.array([
        [0.0, 1.0],     # class 0 (blue): on its band
        [0.0, -1.2],    # class 0: 0.075 outside blue's band, inside yellow's: a crossing
        [0.0, 1.2],     # class 0: 0.075 outside blue's band edge, in no band
        [2.0, 3.0],     # class 0: far from everything
        [2.0, 1.0],     # class 1 (black): on its band
    ])
    labels = np.array([0, 0, 0, 0, 1])
    check = metrics.class_check(points, labels)
    assert check[0]["own"] == 0 and check[0]["verdict"] == "in its own band"
    assert check[2]["own"] == pytest.approx(0.075) and check[4]["own"] == 0
    missed = metrics.misses(points, labels, identity, edge=0.1)
    assert missed["total"] == 3
    assert missed["near_edge"] == 1 and missed["elsewhere"] == 1
    assert missed["in_other_band"] == 1 and missed["other_band_near_crossing"] == 1
    assert check[1]["verdict"] == "outside its own band, also in yellow's (the bands cross)"
    assert check[1]["nearest_other"] == 3 and check[1]["other"] == 0


def test_shares_and_how_far_apart_they_are():
    assert metrics.share_error(0.75, 1000) == pytest.approx(math.sqrt(0.75 * 0.25 / 1000))
    assert metrics.share_error(1.0, 50) == 0.0
    # 0.76 of 1000 against 0.736 of 1000: pooled 0.748, error sqrt(0.748 * 0.252 * 2 / 1000)
    assert metrics.shares_apart(0.76, 1000, 0.736, 1000) == pytest.approx(
        0.024 / math.sqrt(0.748 * 0.252 * 2 / 1000))
    assert metrics.shares_apart(0.5, 10, 0.5, 20) == 0.0
    assert metrics.shares_apart(1.0, 10, 1.0, 30) == 0.0  # no spread: no error to divide by
    # a larger second sample shrinks the error, so the same gap is more errors apart
    assert metrics.shares_apart(0.7, 100, 0.8, 10_000) > metrics.shares_apart(0.7, 100, 0.8, 100)
