"""Plots of how training went: the loss over epochs and over batches, and a study's trade-off
of shortfall against training time. Each function draws on an ``Axes`` it is given and
returns it; saving is the caller's decision (:func:`flows_src.plotting.finish`).
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

__all__ = ["epoch_curves", "loss_per_epoch", "batch_losses", "study_front"]


def epoch_curves(ax: Axes, epochs: list[dict[str, float]], series: dict[str, str], *,
                 floor: float | None = None, floor_label: str = "data entropy $H$",
                 title: str | None = None) -> Axes:
    """Per-epoch lines: ``series`` maps a key of the epoch dicts to its legend label.

    ``floor`` draws a dashed horizontal reference (e.g. the data entropy under an NLL).
    """
    x = [e["epoch"] for e in epochs]
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for key, label in series.items():
        ax.plot(x, [e[key] for e in epochs], marker="o", ms=3, label=label)
    if floor is not None:
        ax.axhline(floor, color="k", ls="--", lw=0.8, label=floor_label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("nats per point")
    return _finish(ax, title)


def loss_per_epoch(ax: Axes, runs: dict[str, list[dict[str, float]]], *, key: str = "loss",
                   title: str | None = None) -> Axes:
    """One line per run: ``runs`` maps a legend label to a history's epoch dicts, plotted
    from epoch 1 (epoch 0, the untrained model, would dwarf the rest)."""
    for label, epochs in runs.items():
        trained = [e for e in epochs if e["epoch"] > 0]
        ax.plot([e["epoch"] for e in trained], [e[key] for e in trained], "o-", ms=2,
                label=label)
    ax.set(xlabel="epoch", ylabel=f"held-out {key}")
    return _finish(ax, title)


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
    return _finish(ax, title)


def study_front(ax: Axes, rows: list[dict], *, title: str | None = None) -> Axes:
    """A study's trials (``rows`` of ``runs/studies/<name>/trials.json``: ``train_seconds``,
    ``shortfall``, ``pareto``) as shortfall against training seconds, the front of best
    trade-offs drawn as a line through its trials."""
    seconds = np.array([r["train_seconds"] for r in rows], dtype=float)
    short = np.array([r["shortfall"] for r in rows], dtype=float)
    front = np.array([bool(r["pareto"]) for r in rows])
    ax.scatter(seconds[~front], short[~front], s=12, color="0.6", label="trial")
    order = np.argsort(seconds[front])
    ax.plot(seconds[front][order], short[front][order], "o-", color="tab:red", ms=4,
            label="best trade-offs")
    ax.set(xlabel="training seconds", ylabel="shortfall (0 = perfect)")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return ax


def _finish(ax: Axes, title: str | None) -> Axes:
    """A light grid, the legend and the title (if any) of a training plot."""
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return ax
