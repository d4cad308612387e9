"""Figures answer their questions at print size: class trajectories in the rings' colours,
text no smaller than 7 pt, nothing wider than the page, one view across panels."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

from flows_src import figures, plotting  # noqa: E402
from flows_src.rings import COLOURS, Standardizer  # noqa: E402


@pytest.fixture(autouse=True)
def print_style():
    with matplotlib.rc_context(plotting.PRINT_STYLE):
        yield
    plt.close("all")


def test_class_trajectories_draw_each_whole_path_in_its_class_colour():
    states = np.cumsum(np.random.default_rng(0).normal(size=(50, 5, 2)), axis=0)
    labels = np.array([3, 0, 4, 1, 2])
    fig, ax = plt.subplots()
    plotting.class_trajectories(ax, states, labels)
    lines = ax.get_lines()
    assert len(lines) == 5
    for line, k, j in zip(lines, labels, range(5)):
        assert to_rgba(line.get_color()) == to_rgba(plotting.ring_colour(k))
        np.testing.assert_array_equal(line.get_xydata(), states[:, j])  # the whole path
    # the ring colours are the course's, with gold for a yellow that shows on paper
    assert [plotting.ring_colour(k) for k in range(5)] == [
        "blue", "black", "red", "gold", "green"] and COLOURS[3] == "yellow"


def test_rings_can_be_drawn_in_their_own_colours():
    fig, ax = plt.subplots()
    plotting.bands(ax, Standardizer((2.0, -0.4), (1.6, 0.85)), color=None)
    colours = {to_rgba(line.get_color()) for line in ax.get_lines()}
    assert colours == {to_rgba(plotting.ring_colour(k)) for k in range(5)}


def test_print_problems_catch_small_text_and_a_figure_wider_than_the_page():
    fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
    ax.plot([0, 1], [0, 1])
    assert plotting.print_problems(fig) == []
    ax.set_title("tiny", fontsize=5)
    assert any("5.0 pt" in p for p in plotting.print_problems(fig))
    wide, _ = plt.subplots(figsize=(10, 3), layout="constrained")
    assert any("larger than the page" in p for p in plotting.print_problems(wide))
    with pytest.raises(ValueError, match="would not print legibly"):
        plotting.finish(wide)


def test_panels_share_one_view_and_fit_the_page():
    fig, axes = plotting.panels(6, cols=3, height=1.9)
    near = np.random.default_rng(1).normal(size=(500, 2))
    far = np.vstack([near, [[40.0, 0.0]]])  # one far point must not squash the view
    xlim, ylim = plotting.view(near, far, least=plotting.DATA_VIEW)
    assert xlim[1] < 10 and xlim[0] <= plotting.DATA_VIEW[0]
    plotting.same_limits(axes, xlim, ylim)
    assert {ax.get_xlim() for ax in axes} == {xlim} and {ax.get_ylim() for ax in axes} == {ylim}
    assert plotting.print_problems(fig) == []
    note = figures.outside_note([far], xlim, ylim)
    assert "of 501 points lie outside" in note and "distance 40.0" in note
    assert figures.outside_note([near[:10]], xlim, ylim).startswith("All 10 points")


def test_paths_that_leave_the_view_get_a_second_panel_showing_them_whole():
    standardizer = Standardizer((2.0, -0.4), (1.6, 0.85))
    probe = np.zeros((5, 2))
    states = np.linspace(probe, probe + np.array([[0, 0]] * 4 + [[0.3, 24.3]]), 16)
    fig = figures.paths_near_and_far(states, np.linspace(1, 0, 16), probe, standardizer,
                                      title="paths", label="t")
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(panels) == 2
    assert panels[1].get_ylim()[1] > 24.3 and panels[0].get_ylim()[1] < 3
    assert plotting.print_problems(fig) == []
    assert "(0.30, 24.30)" in figures.far_note(states[-1], "latent")
