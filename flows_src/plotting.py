"""Plots. Each function draws on an ``Axes`` it is given and returns it; saving is the
caller's decision (:func:`finish`).

Every point plot has equal aspect and axes labelled with the space they show (data, latent,
or a state between them); where colour means time or class there is a colour bar or a
legend. Figures are drawn at the size they print: :data:`PRINT_STYLE` sets fonts of at least
:data:`MIN_FONT_PT`, and :func:`print_problems` (which :func:`finish` applies) rejects a
figure wider than the page or with smaller text, so what a notebook shows is legible on an
A4 page. Plots of how training went (losses, a study's trade-offs) are in
:mod:`flows_src.training_plots`.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from flows_src.rings import CENTERS, COLOURS, PROBE_INSIDE, RADIUS, THICKNESS, Standardizer
from flows_src.runs import atomic_write

__all__ = [
    "PRINT_STYLE", "PRINT_WIDTH_IN", "PRINT_HEIGHT_IN", "MIN_FONT_PT", "AXES", "DATA_VIEW",
    "use_print_style", "print_problems", "ring_colour", "finish", "frame", "points", "classes",
    "bands", "trajectories", "class_trajectories", "time_colorbar", "density", "panels",
    "same_limits", "view", "outer_labels", "probes",
]

#: The printable area of an A4 page with the report's margins, in inches: a figure is
#: printed at its own size (1 inch of figure = 1 inch of paper) up to this.
PRINT_WIDTH_IN, PRINT_HEIGHT_IN = 7.2, 5.2
#: The smallest text a figure may hold, in points at print size.
MIN_FONT_PT = 7.0
#: Fonts for figures printed at their own size: nothing below :data:`MIN_FONT_PT`.
PRINT_STYLE = {
    "font.size": 8.0, "axes.titlesize": 8.5, "axes.labelsize": 8.0, "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5, "legend.fontsize": 7.5, "legend.title_fontsize": 7.5,
    "figure.titlesize": 9.5, "figure.dpi": 150, "savefig.dpi": 150,
}
#: Axis labels by the space a panel shows.
AXES = {
    "data": ("$x_1$ (standardized)", "$x_2$ (standardized)"),
    "latent": ("$z_1$ (latent)", "$z_2$ (latent)"),
    "state": ("first coordinate", "second coordinate"),
}

# matplotlib's "yellow" vanishes on white paper; the logo's yellow is closer to gold
_DISPLAY = {"yellow": "gold"}


def use_print_style() -> None:
    """Apply :data:`PRINT_STYLE` to matplotlib (a notebook calls this once, at its top)."""
    matplotlib.rcParams.update(PRINT_STYLE)


def ring_colour(label: int) -> str:
    """The matplotlib colour of ring ``label`` (0..4)."""
    name = COLOURS[label]
    return _DISPLAY.get(name, name)


def print_problems(fig: Figure) -> list[str]:
    """What keeps ``fig`` from printing legibly at its own size: wider than
    :data:`PRINT_WIDTH_IN` or taller than :data:`PRINT_HEIGHT_IN` (the report would shrink
    it, and its text with it), or text smaller than :data:`MIN_FONT_PT`. Empty when fine.

    The size is that of the tight bounding box, as the notebook shows and the report prints.
    """
    renderer = fig.canvas.get_renderer()
    box = fig.get_tightbbox(renderer)
    problems = []
    if box.width > PRINT_WIDTH_IN + 0.05 or box.height > PRINT_HEIGHT_IN + 0.05:
        problems.append(f"{box.width:.1f} x {box.height:.1f} in, larger than the page's "
                        f"{PRINT_WIDTH_IN} x {PRINT_HEIGHT_IN} in")
    small = sorted({round(t.get_fontsize(), 1) for t in fig.findobj(matplotlib.text.Text)
                    if t.get_visible() and t.get_text().strip()
                    and t.get_fontsize() < MIN_FONT_PT})
    if small:
        problems.append(f"text of {', '.join(map(str, small))} pt, below {MIN_FONT_PT} pt")
    return problems


def finish(fig: Figure, path: str | os.PathLike | None = None) -> None:
    """Check that ``fig`` prints legibly (:func:`print_problems`), save it to ``path``
    (PNG, written atomically) and show it.

    Under a non-interactive backend (a headless script) the figure is closed instead of
    shown, so a script never blocks and never warns.
    """
    problems = print_problems(fig)
    if problems:
        name = f" {Path(path).name}" if path is not None else ""
        raise ValueError(f"figure{name} would not print legibly: {'; '.join(problems)}")
    if path is not None:
        atomic_write(path, lambda f: fig.savefig(f, format="png", bbox_inches="tight"))
    if matplotlib.get_backend().lower() == "agg":
        plt.close(fig)
    else:
        plt.show()


def frame(ax: Axes, title: str | None, space: str = "data") -> Axes:
    """Equal aspect, the axis labels of ``space`` (a key of :data:`AXES`) and ``title``."""
    ax.set_aspect("equal")
    ax.set_xlabel(AXES[space][0])
    ax.set_ylabel(AXES[space][1])
    if title:
        ax.set_title(title)
    return ax


def points(ax: Axes, xy: np.ndarray, *, title: str | None = None, s: float = 2,
           color: str = "tab:blue", alpha: float = 0.6, space: str = "data") -> Axes:
    """Scatter ``(n, 2)`` points; ``space`` names the axes (a key of :data:`AXES`)."""
    xy = np.asarray(xy)
    ax.scatter(xy[:, 0], xy[:, 1], s=s, color=color, alpha=alpha, linewidths=0)
    return frame(ax, title, space)


def classes(ax: Axes, xy: np.ndarray, labels: np.ndarray, *, title: str | None = None,
            s: float = 2, legend: str = "upper right") -> Axes:
    """Scatter ``(n, 2)`` points coloured by ring label, with a legend of ring colours."""
    xy, labels = np.asarray(xy), np.asarray(labels)
    for k, name in enumerate(COLOURS):
        sel = labels == k
        ax.scatter(xy[sel, 0], xy[sel, 1], s=s, color=ring_colour(k), label=f"{k}: {name}",
                   linewidths=0, alpha=0.7)
    ax.legend(markerscale=4, loc=legend, title="class")
    return frame(ax, title)


def bands(ax: Axes, standardizer: Standardizer, *, color: str | None = "0.6",
          lw: float = 0.5) -> Axes:
    """Outline each ring's band, mapped into standardized coordinates: in ``color`` (thin
    grey by default), or with ``color=None`` each ring in its own colour."""
    angle = np.linspace(0, 2 * np.pi, 200)
    unit = np.column_stack([np.cos(angle), np.sin(angle)])
    for k, center in enumerate(CENTERS):
        for r in (RADIUS - THICKNESS / 2, RADIUS + THICKNESS / 2):
            xy = standardizer.transform(center + r * unit)
            ax.plot(xy[:, 0], xy[:, 1], color=color or ring_colour(k), lw=lw, zorder=0)
    return ax


def trajectories(ax: Axes, states: np.ndarray, times: np.ndarray, *,
                 title: str | None = None, cmap: str = "viridis", colors=None,
                 numbered: bool = False, s: float = 6, space: str = "state") -> Axes:
    """Draw the paths of points through time: markers coloured by time, a line per path.

    Arguments:
        states: ``(k, n, 2)`` positions of n points at k times.
        times: ``(k,)`` the times (layer fraction for a normalizing flow, t for an ODE).
        colors: per-path line colours; default: a distinct hue per path (``tab10``).
        numbered: write each path's number beside its end (the circle); its start is a
            square in the path's colour, so every path can be followed where paths cross.
        space: what the axes show (a key of :data:`AXES`).
    """
    states, times = np.asarray(states), np.asarray(times)
    norm = matplotlib.colors.Normalize(0.0, 1.0)
    n = states.shape[1]
    hues = plt.get_cmap("tab10")
    for j in range(n):
        line_colour = hues(j % 10) if colors is None else colors[j]
        ax.plot(states[:, j, 0], states[:, j, 1], color=line_colour, lw=1.0, zorder=1,
                alpha=0.9)
        ax.scatter(states[:, j, 0], states[:, j, 1], c=times, cmap=cmap, norm=norm, s=s,
                   zorder=2, linewidths=0)
        if numbered:
            ax.scatter(*states[0, j], marker="s", s=16, color=line_colour, zorder=3,
                       edgecolors="k", linewidths=0.4)
            ax.annotate(str(j), states[-1, j], xytext=(4, 3), textcoords="offset points",
                        fontsize=MIN_FONT_PT + 1, color=line_colour, weight="bold", zorder=6)
    ax.scatter(states[-1, :, 0], states[-1, :, 1], facecolors="none", edgecolors="k",
               s=40, lw=0.8, zorder=3)
    return frame(ax, title, space)


def class_trajectories(ax: Axes, states: np.ndarray, labels: np.ndarray, *,
                       title: str | None = None) -> Axes:
    """Paths of class-conditional samples, each whole path in its class's ring colour: a
    hollow circle where it starts (the noise), a filled one where it ends.

    Arguments:
        states: ``(k, n, 2)`` positions of n points at k times.
        labels: ``(n,)`` the class of each path (0..4).
    """
    states, labels = np.asarray(states), np.asarray(labels)
    for j, k in enumerate(labels):
        colour = ring_colour(int(k))
        ax.plot(states[:, j, 0], states[:, j, 1], color=colour, lw=1.6, zorder=2,
                label=f"{int(k)}: {COLOURS[int(k)]}")
        ax.scatter(*states[0, j], s=36, facecolors="w", edgecolors=colour, lw=1.4, zorder=3)
        ax.scatter(*states[-1, j], s=44, color=colour, edgecolors="k", lw=0.7, zorder=4)
    return frame(ax, title, "state")


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
    image = ax.pcolormesh(xs, ys, log_p, cmap=cmap, vmin=vmin, vmax=vmax, shading="auto",
                          rasterized=True)
    frame(ax, title)
    return image


def panels(n: int, *, cols: int | None = None, size: float | None = None,
           share: bool = True, height: float | None = None) -> tuple[Figure, list[Axes]]:
    """A row (or grid) of ``n`` panels that fits the printed page.

    Arguments:
        cols: panels per row (default: all in one row).
        size: each panel's width in inches (default: the page's width shared by ``cols``).
        share: one x and one y range for every panel, so panels compare at a glance.
        height: each panel's height in inches (default: its width).
    """
    cols = cols or n
    rows = -(-n // cols)
    size = size or (PRINT_WIDTH_IN - 0.2) / cols
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, (height or size) * rows),
                             squeeze=False, layout="constrained", sharex=share, sharey=share)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def view(*clouds: np.ndarray, quantile: float = 0.995, margin: float = 0.3,
         least: tuple[float, float, float, float] | None = None
         ) -> tuple[tuple[float, float], tuple[float, float]]:
    """``(xlim, ylim)`` holding the central ``quantile`` of every ``(n, 2)`` cloud on each
    axis (a few far points do not squash the rest), and at least ``least``
    ``(x_min, x_max, y_min, y_max)``."""
    xy = np.concatenate([np.asarray(c, dtype=float).reshape(-1, 2) for c in clouds])
    low = np.quantile(xy, (1 - quantile) / 2, axis=0) - margin
    high = np.quantile(xy, 1 - (1 - quantile) / 2, axis=0) + margin
    if least is not None:
        low = np.minimum(low, [least[0], least[2]])
        high = np.maximum(high, [least[1], least[3]])
    return (float(low[0]), float(high[0])), (float(low[1]), float(high[1]))


def same_limits(axes: list[Axes], xlim: tuple[float, float], ylim: tuple[float, float]
                ) -> list[Axes]:
    """Give every panel the same ``xlim`` and ``ylim``."""
    for ax in axes:
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
    return axes


def probes(ax: Axes, xy: np.ndarray, notes: list[str] | None = None, *,
           numbered: bool = True) -> Axes:
    """Mark the five probe points (:data:`flows_src.rings.PROBE_POINTS`, standardized,
    ``(5, 2)``): green stars inside the logo, red outside, each with its index (unless
    ``numbered`` is false) and an optional note (e.g. its log-density)."""
    xy = np.asarray(xy)
    for i, (x, y) in enumerate(xy):
        ax.scatter(x, y, marker="*", s=140, zorder=5, edgecolors="w", linewidths=0.6,
                   color="tab:green" if PROBE_INSIDE[i] else "tab:red")
        if not numbered and not notes:
            continue
        text = ": ".join(([f"{i}"] if numbered else []) + ([notes[i]] if notes else []))
        ax.annotate(text, (x, y), xytext=(5, 4), textcoords="offset points",
                    zorder=6, bbox={"boxstyle": "round,pad=0.15", "fc": "w", "alpha": 0.7,
                                    "lw": 0})
    return ax


#: A view of the standardized data with a margin, ``(x_min, x_max, y_min, y_max)``: the
#: least every point plot of a model shows.
DATA_VIEW = (-2.4, 2.4, -2.4, 2.1)


def outer_labels(axes: list[Axes], cols: int, space: str = "state") -> list[Axes]:
    """Axis labels (of ``space``) on the outer panels of a grid only: the bottom row's x
    label and the left column's y label; the panels' titles say what each one shows."""
    rows = -(-len(axes) // cols)
    for i, ax in enumerate(axes):
        row, col = divmod(i, cols)
        bottom = row == rows - 1 or i + cols >= len(axes)
        ax.set_xlabel(AXES[space][0] if bottom else "")
        ax.set_ylabel(AXES[space][1] if col == 0 else "")
        if bottom:  # a shared x axis hides these on every row but the last
            ax.xaxis.set_tick_params(labelbottom=True)
    return axes
