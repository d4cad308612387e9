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

import ast
import dataclasses
import hashlib
import importlib.util
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm import tqdm

from flows_src.config import TrainingConfig
from flows_src.runs import CheckpointError, load_torch, save_torch

__all__ = ["History", "NonFiniteLossError", "TrainingStep", "train", "train_or_load",
           "load_checkpoint", "read_checkpoint", "fingerprint", "evaluate_in_chunks", "validation"]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class History:
    """What a training run leaves behind.

    Arguments:
        batch_loss: the loss of every optimizer step, in order.
        epochs: one dict per epoch (epoch 0 = before training) with the validation summary,
            the learning rate at the epoch's end and the epoch's wall time.
        first_step_seconds: the first step's time: with ``compile`` this is the warm-up.
        compiled: whether the loss ran through ``torch.compile``.
        clipped_steps: steps whose gradient norm was clipped (``config.max_grad_norm``).
        skipped_steps: steps left out because their gradient was not finite (only counted
            with gradient clipping; see :class:`TrainingStep`).
    """

    batch_loss: list[float] = field(default_factory=list)
    epochs: list[dict[str, float]] = field(default_factory=list)
    first_step_seconds: float = 0.0
    compiled: bool = False
    clipped_steps: int = 0
    skipped_steps: int = 0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> History:
        return cls(**values)

    @property
    def train_seconds(self) -> float:
        return float(sum(e.get("seconds", 0.0) for e in self.epochs))


def fingerprint(model: nn.Module, config: TrainingConfig) -> str:
    """A hash of what decides the trained weights: the config (less ``compile``, which
    changes speed, not the model) and the code (:func:`code_modules`: the model's modules,
    this trainer, the data samplers and every module of the package they import), as syntax
    trees without docstrings or comments, so an edit of the documentation never retrains."""
    values = dataclasses.asdict(config)
    values.get("training", values).pop("compile")  # a run's config holds a training part
    parts = [type(model).__qualname__, json.dumps(values, sort_keys=True)]
    for name in code_modules(model):
        parts += [name, _code(name)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def code_modules(model: nn.Module) -> list[str]:
    """The modules whose code decides ``model``'s trained weights, sorted: those defining its
    layers, this trainer and the data samplers (``rings``), and, within their package, every
    module these import, directly or not."""
    package = __name__.partition(".")[0]
    todo = [type(m).__module__ for m in model.modules()
            if type(m).__module__.partition(".")[0] == package]
    todo += [__name__, f"{package}.rings"]
    found: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += _imported(name, package)
    return sorted(found)


def _imported(name: str, package: str) -> list[str]:
    """The modules of ``package`` that module ``name`` imports (anywhere in its code)."""
    found = []
    for node in ast.walk(ast.parse(_source(name))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = (importlib.util.resolve_name("." * node.level + (node.module or ""),
                                                name.rpartition(".")[0])
                    if node.level else node.module)
            found.append(base)
            found += [f"{base}.{alias.name}" for alias in node.names]
    return [m for m in found if m.partition(".")[0] == package and _file(m) is not None]


def _file(name: str) -> Path | None:
    """The source file of module ``name`` of this package (``None``: not a module, e.g. a
    class imported from one)."""
    path = Path(__file__).parent.joinpath(*name.split(".")[1:])
    return next((p for p in (path.with_suffix(".py"), path / "__init__.py")
                 if "." in name and p.is_file()), None)


def _source(name: str) -> str:
    return _file(name).read_text()


def _code(name: str) -> str:
    """Module ``name``'s syntax tree (what runs) without its docstrings, as text: comments
    never reach the tree, and layout is not part of it."""

    class NoDocstrings(ast.NodeTransformer):
        def visit_Expr(self, node: ast.Expr) -> ast.Expr | None:
            text = isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            return None if text else node

    return ast.dump(NoDocstrings().visit(ast.parse(_source(name))))


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
    :func:`fingerprint`); otherwise (or with ``force``) train and write it."""
    path = Path(checkpoint)
    if path.exists() and not force:
        saved = read_checkpoint(path)
        if saved["fingerprint"] == fingerprint(model, config):
            return load_checkpoint(model, path)[0]
    return train(model, data, config, checkpoint=path, **kwargs)
