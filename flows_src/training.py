"""A generic training loop: any model with ``loss(*batch) -> (loss, components)``.

The loop knows neither model family by name. It shuffles in-memory tensors itself (no
DataLoader: the data is a few MB), steps Adam with a cosine-annealed learning rate, records
the loss of every batch and a validation summary per epoch, and writes a checkpoint after
every epoch, atomically. A loss that stops being finite ends training with the epoch and
step, and the last good checkpoint stays on disk; an interrupted one (Ctrl-C) says in one
line what it left.

Checkpoints of an unfinished run go to ``<name>.in-progress.pt`` and become ``<name>.pt``
only when the last epoch is done, so an interrupted run never replaces a finished one.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm import tqdm

from flows_src.config import TrainingConfig
from flows_src.fingerprints import fingerprint
from flows_src.history import History
from flows_src.runs import CheckpointError, load_torch, save_torch

__all__ = ["NonFiniteLossError", "TrainingStep", "train", "train_or_load",
           "load_checkpoint", "read_checkpoint", "evaluate_in_chunks", "validation"]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


def evaluate_in_chunks(fn: Callable[..., dict[str, Tensor]], *data: Tensor,
                       chunk: int = 8192) -> dict[str, float]:
    """Mean of ``fn(*batch)``'s values over ``data`` in chunks (weighted by chunk size)."""
    totals: dict[str, float] = {}
    n = len(data[0])
    for start in range(0, n, chunk):
        batch = [d[start:start + chunk] for d in data]
        for key, value in fn(*batch).items():
            totals[key] = totals.get(key, 0.0) + float(value) * len(batch[0])
    return {key: value / n for key, value in totals.items()}


def validation(*data: Tensor, seed: int = 0, chunk: int = 8192
               ) -> Callable[[nn.Module], dict[str, float]]:
    """A ``validate`` callback for :func:`train`: the model's loss and its components,
    averaged over held-out ``data``.

    A loss that draws noise (flow matching) draws it from a generator seeded with ``seed``
    inside a forked RNG state: every epoch is scored on the same draws, and training's own
    random stream is left untouched.
    """
    def validate(model: nn.Module) -> dict[str, float]:
        def summary(*batch: Tensor) -> dict[str, Tensor]:
            loss, parts = model.loss(*batch)
            return {"loss": loss, **parts}

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return evaluate_in_chunks(summary, *data, chunk=chunk)

    return validate


def _adam(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    # fused Adam updates all parameters in one kernel: most of a tiny model's optimizer cost
    try:
        return torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(model.parameters(), lr=lr, foreach=True)


class TrainingStep:
    """One optimizer step of :func:`train`: Adam on ``model.loss(*batch)``, its learning
    rate annealed to 0 by a cosine over ``total_steps`` steps, the gradient's norm clipped
    to ``config.max_grad_norm`` when that is set.

    Calling it with a batch returns the batch's loss as a float. A loss that is not finite
    leaves the weights and the schedule untouched; what to do about it is the caller's call.
    With clipping, a finite loss whose gradient is not (an overflow in the backward pass)
    is skipped the same way and counted in ``skipped``: clipping would scale it to NaN.
    ``clipped`` counts the steps whose gradient was scaled down.
    With ``config.compile`` the loss runs through ``torch.compile``; when that fails at the
    first call (no working compiler), the step warns and stays eager, and ``compiled``
    becomes ``False``.

    Arguments:
        model: has ``loss(*batch) -> (loss, components)``.
        config: the learning rate, the gradient clip and the compile switch.
        total_steps: length of the cosine schedule.
    """

    def __init__(self, model: nn.Module, config: TrainingConfig, total_steps: int):
        self.optimizer = _adam(model, config.lr)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer,
                                                                   T_max=total_steps)
        self.max_grad_norm = config.max_grad_norm
        self._parameters = [p for p in model.parameters() if p.requires_grad]
        self.skipped = self.clipped = 0
        self.compiled = config.compile
        self._eager_loss = model.loss
        self._loss = torch.compile(model.loss) if config.compile else model.loss
        self._first = True

    def __call__(self, *batch: Tensor) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        if self._first and self.compiled:
            try:
                loss, _ = self._loss(*batch)
            except Exception as error:  # noqa: BLE001 - any compiler failure means eager
                warnings.warn(f"torch.compile failed ({type(error).__name__}); "
                              "training eagerly", stacklevel=2)
                self.compiled, self._loss = False, self._eager_loss
                loss, _ = self._loss(*batch)
        else:
            loss, _ = self._loss(*batch)
        self._first = False
        value = loss.item()
        if math.isfinite(value):
            loss.backward()
            if self.max_grad_norm is not None:
                norm = nn.utils.clip_grad_norm_(self._parameters, self.max_grad_norm)
                if not math.isfinite(norm):
                    self.skipped += 1
                    return value
                self.clipped += int(norm > self.max_grad_norm)
            self.optimizer.step()
            self.schedule.step()
        return value


def _in_progress(path: Path) -> Path:
    return path.with_name(f"{path.stem}.in-progress{path.suffix}")


def _checkpoint(model: nn.Module, config: TrainingConfig, history: History, print_: str,
                extra: dict | None) -> dict:
    return {
        "model": type(model).__qualname__,
        "config": dataclasses.asdict(config),
        "fingerprint": print_,
        "state_dict": model.state_dict(),
        "history": history.as_dict(),
        "extra": extra or {},
    }


def train(model: nn.Module, data: tuple[Tensor, ...], config: TrainingConfig, *,
          validate: Callable[[nn.Module], dict[str, float]] | None = None,
          checkpoint: str | Path | None = None, extra: dict | None = None,
          progress: bool = True) -> History:
    """Train ``model`` on ``data`` with Adam and cosine annealing (and gradient clipping
    when ``config.max_grad_norm`` is set); return the history.

    Arguments:
        model: has ``loss(*batch) -> (loss, components)``; ``batch`` holds one slice of each
            tensor in ``data`` (e.g. ``(x,)`` or ``(x, labels)``).
        data: training tensors sharing their first dimension.
        config: epochs, batch size, learning rate, gradient clip, seed, compile.
        validate: called without gradients, in eval mode, before training and after each
            epoch; returns the numbers to record (e.g. the validation loss).
        checkpoint: where the finished model, config and history go; each epoch's state is
            written beside it (``.in-progress.pt``) and renamed into place at the end.
        extra: more to store in the checkpoint (e.g. the data's standardizer).
        progress: show a tqdm bar.

    The batch order comes from a generator seeded with ``config.seed``, and torch's global
    generator (used by a loss that draws noise) is seeded with ``config.seed + 1``, so the
    same seed gives the same weights. The last partial batch of an epoch is dropped, which
    keeps every step's shape the same (one compiled graph).
    """
    n = len(data[0])
    steps_per_epoch = n // config.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"batch_size must be <= the number of training points ({n}), "
                         f"got {config.batch_size}")
    total_steps = steps_per_epoch * config.epochs
    order = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed + 1)
    train_step = TrainingStep(model, config, total_steps)
    print_ = fingerprint(model, config)
    partial = _in_progress(Path(checkpoint)) if checkpoint is not None else None
    history = History(compiled=config.compile)

    def record(epoch: int, seconds: float) -> None:
        summary = {"epoch": epoch, "lr": train_step.optimizer.param_groups[0]["lr"],
                   "seconds": seconds}
        if validate is not None:
            model.eval()
            with torch.no_grad():
                summary.update(validate(model))
            model.train()
        history.epochs.append(summary)

    record(0, 0.0)
    bar = tqdm(total=total_steps, disable=not progress, mininterval=2.0, file=sys.stderr,
               desc=type(model).__name__)
    try:
        for epoch in range(1, config.epochs + 1):
            start = time.perf_counter()
            perm = torch.randperm(n, generator=order)
            for step in range(steps_per_epoch):
                idx = perm[step * config.batch_size:(step + 1) * config.batch_size]
                batch = [d[idx] for d in data]
                t0 = time.perf_counter()
                value = train_step(*batch)
                if not history.batch_loss:
                    history.first_step_seconds = time.perf_counter() - t0
                    history.compiled = train_step.compiled
                if not math.isfinite(value):
                    bar.close()
                    kept = (f"; last good checkpoint kept: {partial}" if epoch > 1 and partial
                            else "")
                    raise NonFiniteLossError(
                        f"loss became {value} at epoch {epoch}, step {step + 1}{kept}")
                history.batch_loss.append(value)
                history.clipped_steps = train_step.clipped
                history.skipped_steps = train_step.skipped
                bar.update()
                if step % 200 == 0:
                    bar.set_postfix(epoch=epoch, loss=f"{value:.3f}", refresh=False)
            record(epoch, time.perf_counter() - start)
            if partial is not None:
                save_torch(_checkpoint(model, config, history, print_, extra), partial)
    except KeyboardInterrupt:
        bar.close()
        raise KeyboardInterrupt(_interrupted(history, config, checkpoint, partial)) from None
    bar.close()
    if partial is not None:
        os.replace(partial, checkpoint)
    return history


def _interrupted(history: History, config: TrainingConfig, checkpoint: str | Path | None,
                 partial: Path | None) -> str:
    """What an interrupted :func:`train` leaves on disk, in one line."""
    done = len(history.epochs) - 1
    kept = (f"{checkpoint} is unchanged" if checkpoint is not None and Path(checkpoint).exists()
            else "no finished checkpoint was written")
    state = f"; epoch {done}'s state is in {partial}" if done and partial is not None else ""
    return f"training stopped in epoch {done + 1} of {config.epochs}: {kept}{state}"


_KEYS = ("model", "config", "fingerprint", "state_dict", "history", "extra")


def read_checkpoint(path: str | Path) -> dict:
    """The dict :func:`train` saved at ``path`` (model name, config, fingerprint, weights,
    history, extra); any other file is a :class:`~flows_src.runs.CheckpointError`."""
    saved = load_torch(path)
    missing = [key for key in _KEYS if key not in saved] if isinstance(saved, dict) else _KEYS
    if missing:
        raise CheckpointError(f"checkpoint {path} was not written by flows_src.training "
                              f"(no {', '.join(missing)}); delete it, or retrain with force "
                              "(-p force True, or --force True for a script)")
    return saved


def load_checkpoint(model: nn.Module, path: str | Path) -> tuple[History, dict]:
    """Load weights saved by :func:`train` into ``model``; return its history and extra.

    A checkpoint made for another architecture, or a file that is not a checkpoint of
    :func:`train` (truncated, corrupt, foreign), stops with one line saying so.
    """
    saved = read_checkpoint(path)
    if saved["model"] != type(model).__qualname__:
        raise ValueError(f"checkpoint {path} holds a {saved['model']}, not a "
                         f"{type(model).__qualname__}")
    try:
        model.load_state_dict(saved["state_dict"])
    except RuntimeError as error:
        first = str(error).splitlines()[1].strip() if "\n" in str(error) else str(error)
        raise ValueError(f"checkpoint {path} was made with another architecture "
                         f"(config {saved['config']}): {first}") from None
    return History.from_dict(saved["history"]), saved["extra"]


def train_or_load(model: nn.Module, data: tuple[Tensor, ...], config: TrainingConfig, *,
                  checkpoint: str | Path, force: bool = False, **kwargs) -> History:
    """Reuse ``checkpoint`` when it was trained with this config and this code (same
    :func:`~flows_src.fingerprints.fingerprint`); otherwise (or with ``force``) train and
    write it."""
    path = Path(checkpoint)
    if path.exists() and not force:
        saved = read_checkpoint(path)
        if saved["fingerprint"] == fingerprint(model, config):
            return load_checkpoint(model, path)[0]
    return train(model, data, config, checkpoint=path, **kwargs)
