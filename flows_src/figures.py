"""Whole figures for the exercise's questions, built from :mod:`flows_src.plotting`'s pieces,
and the sentences that say what a figure's view leaves out.

Each function returns the figure (saving and showing it is the caller's, with
:func:`flows_src.plotting.finish`) or a sentence to print beside it.
"""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from flows_src.plotting import (
    DATA_VIEW,
    PRINT_WIDTH_IN,
    bands,
    frame,
    probes,
    time_colorbar,
    trajectories,
)
from flows_src.rings import Standardizer

__all__ = ["outside_note", "far_note", "zoom_view", "paths_near_and_far", "bonus_figure"]


def outside_note(clouds, xlim: tuple[float, float], ylim: tuple[float, float]) -> str:
    """A sentence on how many points of the ``(n, 2)`` clouds fall outside the view."""
    xy = np.concatenate([np.asarray(c, dtype=float).reshape(-1, 2) for c in clouds])
    out = ((xy[:, 0] < xlim[0]) | (xy[:, 0] > xlim[1])
           | (xy[:, 1] < ylim[0]) | (xy[:, 1] > ylim[1]))
    if not out.any():
        return f"All {len(xy):,} points lie inside the panels' common view."
    return (f"{int(out.sum())} of {len(xy):,} points lie outside the panels' common view "
            f"(the farthest at distance {np.linalg.norm(xy[out], axis=1).max():.1f} from the "
            f"origin).")


def _in_view(xy: np.ndarray, view: tuple[float, float, float, float]) -> np.ndarray:
    return ((xy[..., 0] >= view[0]) & (xy[..., 0] <= view[1])
            & (xy[..., 1] >= view[2]) & (xy[..., 1] <= view[3]))


def far_note(xy: np.ndarray, name: str, view: tuple[float, float, float, float] = DATA_VIEW
             ) -> str:
    """A sentence giving the coordinates of the points of ``(n, 2)`` ``xy`` outside
    ``view`` (numbered by their row), or saying that none is."""
    xy = np.asarray(xy, dtype=float)
    far = np.flatnonzero(~_in_view(xy, view))
    if not len(far):
        return f"Every {name} lies inside the zoomed view."
    return "; ".join(f"point {i}'s {name} lies at ({xy[i, 0]:.2f}, {xy[i, 1]:.2f}), "
                     f"{np.linalg.norm(xy[i]):.1f} from the origin" for i in far) + (
        ", outside the zoomed view (right panel).")


def zoom_view(probe: np.ndarray, view: tuple[float, float, float, float] = DATA_VIEW,
              margin: float = 0.3) -> tuple[float, float, float, float]:
    """``view`` grown to hold every point of ``probe`` ``(n, 2)`` with a ``margin``."""
    probe = np.asarray(probe, dtype=float)
    return (min(view[0], probe[:, 0].min() - margin), max(view[1], probe[:, 0].max() + margin),
            min(view[2], probe[:, 1].min() - margin), max(view[3], probe[:, 1].max() + margin))


def paths_near_and_far(states: np.ndarray, times: np.ndarray, probe: np.ndarray,
                       standardizer: Standardizer, *, title: str, label: str,
                       others: np.ndarray | None = None, others_label: str | None = None,
                       view: tuple[float, float, float, float] = DATA_VIEW) -> Figure:
    """The paths of the probe points ``(k, 5, 2)`` at ``times`` ``(k,)``, numbered, over the
    rings: a panel zoomed on the data and the ``probe`` points ``(5, 2)`` (equal aspect),
    and when a path leaves it, a second panel with every path whole and the zoom's frame
    drawn (its axes not to scale, so a far point does not shrink it to a sliver).
    ``others`` ``(5, 2)``: points to mark with numbered crosses (another model's ends)."""
    states = np.asarray(states, dtype=float)
    view = zoom_view(probe, view)
    every = states.reshape(-1, 2) if others is None else np.concatenate(
        [states.reshape(-1, 2), np.asarray(others, dtype=float)])
    far = not _in_view(every, view).all()
    lo, hi = every.min(0) - 0.5, every.max(0) + 0.5
    if far:
        fig, axes = plt.subplots(1, 2, figsize=(PRINT_WIDTH_IN - 0.3, 3.0), squeeze=False,
                                 layout="constrained", gridspec_kw={"width_ratios": [1.45, 1]})
        axes = list(axes.flat)
    else:
        fig, ax = plt.subplots(figsize=(5.2, 3.1), layout="constrained")
        axes = [ax]
    for i, ax in enumerate(axes):
        bands(ax, standardizer)
        trajectories(ax, states, times, numbered=True,
                     title=title if i == 0 else "every path whole (axes not to scale)")
        probes(ax, probe, numbered=False)
        if others is not None:
            ax.scatter(*np.asarray(others).T, marker="x", s=40, color="tab:purple", zorder=4,
                       label=others_label)
            for j, (x, y) in enumerate(np.asarray(others)):
                ax.annotate(str(j), (x, y), xytext=(-9, 3), textcoords="offset points",
                            color="tab:purple", fontsize=7.5, zorder=6)
    axes[0].set(xlim=view[:2], ylim=view[2:])
    # a path starts at its probe point (the star, over the path's start square) and ends at
    # the circle; the legend sits below the panels, where it covers no path
    inside = axes[0].scatter([], [], marker="*", s=80, color="tab:green",
                             label="start, in a band")
    outside = axes[0].scatter([], [], marker="*", s=80, color="tab:red",
                              label="start, off the bands")
    end = axes[0].scatter([], [], facecolors="none", edgecolors="k", s=40, lw=0.8,
                          label="end (t = 0)")
    handles = [inside, outside, end]
    if others is not None:
        handles.append(axes[0].scatter([], [], marker="x", s=40, color="tab:purple",
                                       label=others_label))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
    if far:
        axes[1].set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]))
        axes[1].set_aspect("auto")
        axes[1].add_patch(matplotlib.patches.Rectangle(
            (view[0], view[2]), view[1] - view[0], view[3] - view[2], fill=False, ls="--",
            color="0.3", lw=0.8))
    time_colorbar(fig, axes, label)
    return fig


def bonus_figure(bonus, standardizer: Standardizer, target) -> Figure:
    """The bonus (:class:`flows_src.steering.BonusResult`): the exact sample's trajectory
    with the new class over time, with 30 other draws' paths faint; and where every draw
    with the new class lands, around the target ``(1, 2)``."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(PRINT_WIDTH_IN - 0.3, 3.0),
                                   layout="constrained", gridspec_kw={"width_ratios": [1.3, 1]})
    target = np.asarray(target, dtype=float).reshape(2)
    bands(ax1, standardizer)
    paths = np.asarray(bonus.draws_paths)
    ax1.plot(paths[:, :, 0], paths[:, :, 1], color="0.7", lw=0.5, zorder=0)
    trajectories(ax1, np.asarray(bonus.new_path)[::10], np.asarray(bonus.new_times)[::10],
                 title="new class: the exact sample over time (30 other draws grey)")
    ax1.scatter(*target, marker="*", s=160, color="tab:red", zorder=5, label="(4, 5)")
    ax1.legend(loc="lower right")
    ends = np.asarray(bonus.draws_ends)
    ax2.scatter(ends[:, 0], ends[:, 1], s=2, alpha=0.4, linewidths=0)
    ax2.scatter(*target, marker="*", s=160, color="tab:red", zorder=5)
    frame(ax2, f"where {len(ends):,} ordinary draws land", "data")
    time_colorbar(fig, ax1)
    return fig
