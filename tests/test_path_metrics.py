"""How a flow's paths move, measured on paths whose answer is known."""

import math

import numpy as np
import pytest

from flows_src import path_metrics
from flows_src.rings import Standardizer


def test_path_shape_of_a_straight_path_and_of_a_staircase():
    line = np.linspace([0.0, 0.0], [3.0, 4.0], 16)[:, None, :]  # 15 equal steps
    shape = path_metrics.path_shape(line)
    assert shape["length_over_chord"] == pytest.approx(1.0)
    assert shape["largest_step_share"] == pytest.approx(1 / 15)
    assert shape["turning_deg"] == pytest.approx(0.0, abs=1e-6)
    # a staircase alternating x and y moves, as a coupling flow's layers do
    steps = np.array([[1.0, 0.0] if k % 2 == 0 else [0.0, 1.0] for k in range(14)])
    stair = np.vstack([[0.0, 0.0], np.cumsum(steps, axis=0)])[:, None, :]
    shape = path_metrics.path_shape(stair)
    assert shape["length_over_chord"] == pytest.approx(14 / math.hypot(7, 7))
    assert shape["turning_deg"] == pytest.approx(13 * 90)
    assert shape["late_turning_share"] == pytest.approx(2 / 13)  # turns at t = 12/14, 13/14
    hook = np.vstack([line[:13, 0], line[12, 0] + np.array([[1.0, -1.0], [2.0, -2.0]])])
    assert path_metrics.path_shape(hook[:, None, :])["late_turning_share"] == pytest.approx(1.0)
    # the median over paths: one path doubling back does not decide it
    back = np.concatenate([line, line, line[::-1] * 0 + line[:1]], axis=1)
    back[:, 2] = np.vstack([np.linspace([0, 0], [1, 0], 8), np.linspace([1, 0], [0.1, 0], 8)])
    assert path_metrics.path_shape(back)["length_over_chord"] == pytest.approx(1.0)


def test_sliced_wasserstein_is_zero_for_one_cloud_and_the_shift_for_a_moved_one():
    x = np.random.default_rng(0).normal(size=(5000, 2))
    assert path_metrics.sliced_wasserstein(x, x) == 0.0
    # moving a cloud by d: each direction's 1D distance is |d . u|; mean over u = 2|d|/pi
    assert path_metrics.sliced_wasserstein(x, x + [0.0, 2.0]) == pytest.approx(4 / math.pi,
                                                                         rel=0.01)


def test_progression_and_the_consistency_verdict():
    identity = Standardizer((0.0, 0.0), (1.0, 1.0))
    ring = np.column_stack([np.cos(np.linspace(0, 6.28, 400)), np.sin(np.linspace(0, 6.28, 400))])
    rows = path_metrics.progression([ring * 3, ring], [0.0, 1.0], ring, identity)
    assert rows[1] == [1.0, 1.0, 0.0] and rows[0][1] < 0.1 and rows[0][2] > 1
    even = {"largest_step_share": 0.1, "length_over_chord": 2.0}
    jumpy = {"largest_step_share": 0.3, "length_over_chord": 8.0}
    assert path_metrics.consistency_verdict(even, jumpy, ("flow matching", "the flow")).startswith(
        "Flow matching's flow is the more consistent")
    assert path_metrics.consistency_verdict(jumpy, even, ("a", "b")).startswith("B's flow")
    mixed = {"largest_step_share": 0.1, "length_over_chord": 9.0}
    assert path_metrics.consistency_verdict(mixed, jumpy, ("a", "b")).startswith("Mixed")


def test_a_distance_on_the_way_against_the_ends():
    assert path_metrics.against_ends(0.27, (0.137, 0.07)) == (
        "higher than at either end: 0.14 at the start, 0.07 at the end")
    assert path_metrics.against_ends(0.1, (0.137, 0.07)).startswith("between the ends'")
    assert path_metrics.against_ends(0.05, (0.137, 0.07)).startswith("lower than at either")
    # compared as printed: 0.1372 and 0.137 both read 0.14, so not "higher"
    assert path_metrics.against_ends(0.1372, (0.137, 0.07)).startswith("between the ends'")
