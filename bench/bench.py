"""Speed of training and sampling: plain eager references against this project's models.

``make bench`` (or ``python -m bench.bench``) measures, in one process and one run, the wall
time of a training step (batch 128, the exercise's architectures and Adam with cosine
annealing) of

* the plain eager reference of :mod:`bench.reference`, trained as a reader would: default
  Adam, ``zero_grad``, ``loss.backward()``, ``step()``, ``loss.item()`` for the log;
* ours as the notebooks train it, through :class:`flows_src.training.TrainingStep`, eager and
  with ``torch.compile`` (its warm-up, the first step, timed apart);

for the normalizing flow and for flow matching, and the time to sample 1,000 points with
Euler steps of 1/1000 (ours against a plain loop). Blocks of steps alternate between the
contenders and the medians over blocks are reported, so that the machine's noise falls on
all of them alike. It prints the ratios and the projected time of the exercise's 20 epochs
(250,000 points: 1,953 steps per epoch). It never fails on time.

It runs on one torch thread unless told otherwise (``--threads``): a second thread never
helped these models, and where other processes share the cores it makes steps many times
slower. By default inductor compiles into a fresh cache folder, so the warm-up shown is the
cold compile a first run pays; ``--warm-cache`` uses the usual cache (what a rerun pays).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from bench.reference import ReferenceFlow, ReferenceVelocity, reference_fm_loss
from flows_src.config import FMConfig, NFConfig
from flows_src.flow_matching import FlowMatching
from flows_src.normalizing_flow import NormalizingFlow
from flows_src.training import TrainingStep

STEPS_PER_EPOCH = 250_000 // 128
EPOCHS = 20


@dataclass
class Contender:
    """One way to train: ``step()`` draws the next batch and takes one optimizer step."""

    name: str
    step: Callable[[], float]
    warmup_s: float = 0.0
    ms: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.ms)


def _batches(data: torch.Tensor, batch_size: int, seed: int) -> Callable[[], torch.Tensor]:
    """The trainer's batching: slices of a random permutation, gathered from memory."""
    order = torch.Generator().manual_seed(seed)
    state = {"perm": torch.randperm(len(data), generator=order), "i": 0}

    def next_batch() -> torch.Tensor:
        i = state["i"]
        if (i + 1) * batch_size > len(data):
            state["perm"], i = torch.randperm(len(data), generator=order), 0
        state["i"] = i + 1
        return data[state["perm"][i * batch_size:(i + 1) * batch_size]]

    return next_batch


def _plain_step(model: torch.nn.Module, loss_of: Callable[[torch.Tensor], torch.Tensor],
                next_batch: Callable[[], torch.Tensor], lr: float) -> Callable[[], float]:
    """A reader's training step: default Adam, cosine annealing, the loss logged."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, STEPS_PER_EPOCH * EPOCHS)

    def step() -> float:
        loss = loss_of(next_batch())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        return loss.item()

    return step


def _our_step(name: str, model: torch.nn.Module, config, next_batch) -> Contender:
    train_step = TrainingStep(model, config, STEPS_PER_EPOCH * EPOCHS)
    start = time.perf_counter()
    train_step(next_batch())  # with compile: the warm-up
    warmup = time.perf_counter() - start
    if config.compile and not train_step.compiled:
        name += " (compile failed: eager)"
    return Contender(name, lambda: train_step(next_batch()), warmup)


def _contenders(reference: torch.nn.Module, reference_loss: Callable, ours: Callable,
                config, data: torch.Tensor, compile: bool) -> list[Contender]:
    batch = config.batch_size
    contenders = [Contender("reference", _plain_step(reference, reference_loss,
                                                     _batches(data, batch, 0), config.lr))]
    for compiled in [False, True] if compile else [False]:
        torch.manual_seed(0)
        contenders.append(_our_step("ours compiled" if compiled else "ours eager",
                                    ours(config), dataclasses.replace(config, compile=compiled),
                                    _batches(data, batch, 0)))
    return contenders


def nf_contenders(data: torch.Tensor, compile: bool = True) -> list[Contender]:
    """The exercise's normalizing flow: reference, ours eager, ours compiled."""
    config = NFConfig()
    torch.manual_seed(0)
    reference = ReferenceFlow(config.model.n_couplings, config.model.hidden, config.model.n_linear)
    return _contenders(reference, reference.loss, NormalizingFlow, config, data, compile)


def fm_contenders(data: torch.Tensor, compile: bool = True) -> list[Contender]:
    """The exercise's (unconditional) flow matching: reference, ours eager, ours compiled."""
    config = FMConfig()
    torch.manual_seed(0)
    reference = ReferenceVelocity(config.model.hidden, config.model.n_linear)
    return _contenders(reference, lambda x_1: reference_fm_loss(reference, x_1), FlowMatching,
                       config, data, compile)


def interleave(contenders: list[Contender], blocks: int, steps: int) -> list[Contender]:
    """Run ``blocks`` rounds of ``steps`` steps of each contender in turn; record ms/step."""
    for contender in contenders:  # allocator, caches, lazy inits
        contender.step()
    for _ in range(blocks):
        for contender in contenders:
            start = time.perf_counter()
            for _ in range(steps):
                contender.step()
            contender.ms.append((time.perf_counter() - start) * 1e3 / steps)
    return contenders


def sampling(n: int = 1000, dt: float = 1e-3, repeats: int = 3) -> list[Contender]:
    """Seconds to sample ``n`` points with Euler steps ``dt``: a plain loop over a reference
    field against :meth:`FlowMatching.sample` (same sizes, untrained weights), interleaved."""
    config = FMConfig(dt=dt)
    torch.manual_seed(0)
    reference = ReferenceVelocity(config.model.hidden, config.model.n_linear)
    ours = FlowMatching(config)
    n_steps = round(1 / dt)

    @torch.no_grad()
    def plain() -> float:
        y = torch.randn(n, 2)
        for i in range(n_steps):
            y = y + dt * reference(y, torch.full((n, 1), i * dt))
        return float(y[0, 0])

    def our() -> float:
        return float(ours.sample(n)[0, 0])

    contenders = [Contender("reference", plain), Contender("ours", our)]
    return interleave(contenders, repeats, 1)


def _fmt_minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def training_table(title: str, contenders: list[Contender], notebook: str) -> list[str]:
    """Lines of the table for one model: ms/step, ratios, projected 20 epochs."""
    ref = contenders[0]
    rows = [f"{title} (the notebook trains it {notebook})",
            f"  {'':<16}{'ms/step':>9}  {'[min-max]':<15}{'warm-up':>9}{'speed-up':>10}"
            f"{'20 epochs':>12}"]
    for c in contenders:
        total = c.median * 1e-3 * STEPS_PER_EPOCH * EPOCHS + c.warmup_s
        warmup = f"{c.warmup_s:.1f} s" if c.name.startswith("ours compiled") else ""
        speedup = "" if c is ref else f"{ref.median / c.median:.1f}x"
        spread = f"[{min(c.ms):.1f}-{max(c.ms):.1f}]"
        rows.append(f"  {c.name:<16}{c.median:>9.2f}  {spread:<15}{warmup:>9}{speedup:>10}"
                    f"{_fmt_minutes(total):>12}")
    return rows


def sampling_table(contenders: list[Contender], n: int, dt: float) -> list[str]:
    ref, ours = contenders
    return [f"FM sampling, {n:,} points, dt = 1/{round(1 / dt)} (Euler)",
            f"  reference {ref.median / 1e3:.2f} s, ours {ours.median / 1e3:.2f} s: "
            f"{ref.median / ours.median:.1f}x"]


def run(blocks: int, steps: int, compile_: bool, quick: bool) -> None:
    """Measure and print every table."""
    from create_data import create_unconditional_olympic_rings  # the exercise's data

    data = torch.as_tensor(create_unconditional_olympic_rings(250_000, verbose=False, seed=0),
                           dtype=torch.float32)
    cache = os.environ.get("TORCHINDUCTOR_CACHE_DIR", "")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"{os.cpu_count()} CPU(s) ({platform.processor() or platform.machine()}), "
          f"Python {platform.python_version()}")
    print(f"{blocks} interleaved blocks of {steps} steps; compile: "
          + ("off" if not compile_ else "fresh cache (cold warm-up)"
             if "bench-inductor-" in cache else "usual cache"))
    print(f"load average at start: {os.getloadavg()[0]:.2f}\n", flush=True)
    for title, make, notebook in [
            ("Normalizing flow (15 couplings, 2 MLPs of 5 Linear, width 8)", nf_contenders,
             "compiled"),
            ("Flow matching (5 Linear, width 64)", fm_contenders, "eager")]:
        contenders = interleave(make(data, compile_), blocks, steps)
        print("\n".join(training_table(title, contenders, notebook)), "\n", flush=True)
    n, dt = 1000, 1e-3
    print("\n".join(sampling_table(sampling(n, dt, repeats=1 if quick else 3), n, dt)))
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few steps: a smoke test")
    parser.add_argument("--blocks", type=int, help="rounds of interleaved blocks (default 10)")
    parser.add_argument("--steps", type=int, help="steps per block (default 100)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: a second thread never helped these "
                             "models; 0: torch's default)")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled column")
    parser.add_argument("--warm-cache", action="store_true",
                        help="compile with inductor's usual cache instead of a fresh one")
    args = parser.parse_args(argv)
    compile_ = not args.no_compile
    threads, cache = torch.get_num_threads(), os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="bench-inductor-") as fresh:
        try:
            if args.threads:
                torch.set_num_threads(args.threads)
            if compile_ and not args.warm_cache:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = fresh
            run(args.blocks or (2 if args.quick else 10), args.steps or (5 if args.quick else 100),
                compile_, args.quick)
        finally:  # leave the process as it was (the smoke test runs in pytest's)
            torch.set_num_threads(threads)
            if cache is None:
                os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
            else:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
    return 0


if __name__ == "__main__":
    sys.exit(main())
