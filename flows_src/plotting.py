"""Plots. Each function draws on an ``Axes`` it is given and returns it; saving is the
caller's decision (:func:`finish`).

Every point plot has equal aspect and labelled axes; where colour means time or class there
is a colour bar or a legend.
"""

from __future__ import annotations

import os

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from flows_src.rings import CENTERS, COLOURS, PROBE_INSIDE, RADIUS, THICKNESS, Standardizer
from flows_src.runs import atomic_write

__all__ = [
    "ring_colour", "finish", "points", "classes", "bands", "trajectories", "time_colorbar",
    "density", "panels", "epoch_curves", "batch_losses", "probes",
]

# matplotlib's "yellow" vanishes on white paper; the logo's yellow is closer to gold
_DISPLAY = {"yellow": "gold"}


def ring_colour(label: int) -> str:
    """The matplotlib colour of ring ``label`` (0..4)."""
    name = COLOURS[label]
    return _DISPLAY.get(name, name)


def finish(fig: Figure, path: str | os.PathLike | None = None) -> None:
    """Save ``fig`` to ``path`` (PNG, written atomically) and show it.

    Under a non-interactive backend (a headless script) the figure is closed instead of
    shown, so a script never blocks and never warns.
    """
    if path is not None:
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120, bbox_inches="tight"))
    if matplotlib.get_backend().lower() == "agg":
        plt.close(fig)
    else:
        plt.show()


def _frame(ax: Axes, title: str | None) -> Axes:
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$ (standardized)")
    ax.set_ylabel("$x_2$ (standardized)")
    if title:
        ax.set_title(title)
    return ax


def points(ax: Axes, xy: np.ndarray, *, title: str | None = None, s: float = 2,
           color: str = "tab:blue", alpha: float = 0.6) -> Axes:
    """Scatter ``(n, 2)`` points."""
    xy = np.asarray(xy)
    ax.scatter(xy[:, 0], xy[:, 1], s=s, color=color, alpha=alpha, linewidths=0)
    return _frame(ax, title)


def classes(ax: Axes, xy: np.ndarray, labels: np.ndarray, *, title: str | None = None,
            s: float = 2) -> Axes:
    """Scatter ``(n, 2)`` points coloured by ring label, with a legend of ring colours."""
    xy, labels = np.asarray(xy), np.asarray(labels)
    for k, name in enumerate(COLOURS):
        sel = labels == k
        ax.scatter(xy[sel, 0], xy[sel, 1], s=s, color=ring_colour(k), label=f"{k}: {name}",
                   linewidths=0, alpha=0.7)
    ax.legend(markerscale=4, fontsize=7, loc="upper right", title="class", title_fontsize=7)
    return _frame(ax, title)


def bands(ax: Axes, standardizer: Standardizer, *, color: str = "0.6") -> Axes:
    """Outline each ring's band (thin grey), mapped into standardized coordinates."""
    angle = np.linspace(0, 2 * np.pi, 200)
    unit = np.column_stack([np.cos(angle), np.sin(angle)])
    for center in CENTERS:
        for r in (RADIUS - THICKNESS / 2, RADIUS + THICKNESS / 2):
            xy = standardizer.transform(center + r * unit)
            ax.plot(xy[:, 0], xy[:, 1], color=color, lw=0.5, zorder=0)
    return ax


def trajectories(ax: Axes, states: np.ndarray, times: np.ndarray, *,
                 title: str | None = None, cmap: str = "viridis", colors=None,
                 s: float = 6) -> Axes:
    """Draw the paths of points through time.

    Arguments:
        states: ``(k, n, 2)`` positions of n points at k times.
        times: ``(k,)`` the times (layer fraction for a normalizing flow, t for an ODE).
        colors: optional per-path line colours (e.g. a class colour); the markers along the
            path are always coloured by time.
    """
    states, times = np.asarray(states), np.asarray(times)
    norm = matplotlib.colors.Normalize(0.0, 1.0)
    for j in range(states.shape[1]):
        line_colour = "0.75" if colors is None else colors[j]
        ax.plot(states[:, j, 0], states[:, j, 1], color=line_colour, lw=0.8, zorder=1)
        ax.scatter(states[:, j, 0], states[:, j, 1], c=times, cmap=cmap, norm=norm, s=s,
                   zorder=2, linewidths=0)
    ax.scatter(states[-1, :, 0], states[-1, :, 1], facecolors="none", edgecolors="k",
               s=40, lw=0.8, zorder=3)
    return _frame(ax, title)


def time_colorbar(fig: Figure, ax: Axes | list[Axes], label: str = "time $t$",
                  cmap: str = "viridis"):
    """A colour bar for time in [0, 1] beside ``ax``."""
    mappable = matplotlib.cm.ScalarMappable(matplotlib.colors.Normalize(0, 1), cmap)
    return fig.colorbar(mappable, ax=ax, label=label, shrink=0.8)


def density(ax: Axes, xs: np.ndarray, ys: np.ndarray, log_p: np.ndarray, *,
            title: str | None = None, vmin: float | None = None, vmax: float | None = None,
            cmap: str = "magma"):
    """A heat map of ``log_p`` of shape ``(len(ys), len(xs))`` over a grid; returns the
    image so the caller can add a colour bar (``vmin``/``vmax``: its range, to share one
    scale between maps)."""
    image = ax.pcolormesh(xs, ys, log_p, cmap=cmap, vmin=vmin, vmax=vmax, shading="auto")
    _frame(ax, title)
    return image


def panels(n: int, *, size: float = 3.0, cols: int | None = None) -> tuple[Figure, list[Axes]]:
    """A row (or grid) of ``n`` equal panels."""
    cols = cols or n
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def epoch_curves(ax: Axes, epochs: list[dict[str, float]], series: dict[str, str], *,
                 floor: float | None = None, floor_label: str = "data entropy $H$",
                 title: str | None = None) -> Axes:
    """Per-epoch lines: ``series`` maps a key of the epoch dicts to its legend label.

    ``floor`` draws a dashed horizontal reference (e.g. the data entropy under an NLL).
    """
    x = [e["epoch"] for e in epochs]
    for key, label in series.items():
        ax.plot(x, [e[key] for e in epochs], marker="o", ms=3, label=label)
    if floor is not None:
        ax.axhline(floor, color="k", ls="--", lw=0.8, label=floor_label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("nats per point")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return ax


def loss_per_epoch(ax: Axes, runs: dict[str, list[dict[str, float]]], *, key: str = "loss",
                   title: str | None = None) -> Axes:
    """One line per run: ``runs`` maps a legend label to a history's epoch dicts, plotted
    from epoch 1 (epoch 0, the untrained model, would dwarf the rest)."""
    for label, epochs in runs.items():
        trained = [e for e in epochs if e["epoch"] > 0]
        ax.plot([e["epoch"] for e in trained], [e[key] for e in trained], "o-", ms=2,
                label=label)
    ax.set(xlabel="epoch", ylabel=f"held-out {key}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return ax


def batch_losses(ax: Axes, losses: list[float] | np.ndarray, *, window: int = 200,
                 steps_per_epoch: int | None = None, title: str | None = None) -> Axes:
    """Every batch's loss (faint) and its moving average over ``window`` batches."""
    losses = np.asarray(losses, dtype=float)
    ax.plot(losses, color="tab:blue", alpha=0.25, lw=0.5, label="per batch")
    if len(losses) >= window:
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(np.arange(window - 1, len(losses)), smooth, color="tab:red", lw=1.2,
                label=f"moving average ({window} batches)")
    if steps_per_epoch:
        for k in range(steps_per_epoch, len(losses), steps_per_epoch):
            ax.axvline(k, color="0.85", lw=0.5, zorder=0)
    ax.set_xlabel("training batch")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return ax


def probes(ax: Axes, xy: np.ndarray, notes: list[str] | None = None) -> Axes:
    """Mark the five probe points (:data:`flows_src.rings.PROBE_POINTS`, standardized,
    ``(5, 2)``): green stars inside the logo, red outside, each with its index and an
    optional note (e.g. its log-density)."""
    xy = np.asarray(xy)
    for i, (x, y) in enumerate(xy):
        ax.scatter(x, y, marker="*", s=140, zorder=5, edgecolors="w", linewidths=0.6,
                   color="tab:green" if PROBE_INSIDE[i] else "tab:red")
        text = f"{i}" + (f": {notes[i]}" if notes else "")
        ax.annotate(text, (x, y), xytext=(5, 4), textcoords="offset points", fontsize=8,
                    zorder=6, bbox={"boxstyle": "round,pad=0.15", "fc": "w", "alpha": 0.7,
                                    "lw": 0})
    return ax
