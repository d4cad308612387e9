"""Hyper-parameter studies on Optuna: quality against training seconds, per model family.

    python tools/study.py --name nf-affine [--trials 20] [--budget-seconds 300] [--workers 2]
                          [--storage URL_OR_FILE] [--seed 0] [--sampler-seed S]
    python tools/study.py --name nf-affine --trials 0     # only rebuild the table and plot
    python tools/study.py --list                          # the studies and their spaces

A study is plain data in :data:`STUDIES`: the model family, the fields it fixes, and the
search space over the family's config fields (a list is a choice, ``("log", low, high)`` a
log-uniform number), plus ``train_share``, the share of the per-trial budget spent training.
Each trial builds its config through ``flows_src.experiments.config`` (the exercise's
``spec`` preset with the study's fields on top), times a few optimizer steps of that model
(:func:`seconds_per_step`) to find how many epochs fit in ``train_share x budget`` seconds,
trains with ``flows_src.training.train`` (a full cosine schedule over those epochs), and
scores the model on held-out data as the family's notebook does (:func:`score`). It has two
objectives, both minimized: the *shortfall* from a perfect model (``1 - in-band + gap``
for the unconditional families, both 0 at the data's limit; ``1 - accuracy`` for the
conditional one) and the measured training seconds. Everything else (in-band, gap, NLL,
epochs, the full config, the worker) is kept with the trial as user attributes.

Storage: by default the journal file ``runs/studies/<name>/journal.log`` (nothing to start;
Optuna's ``JournalFileBackend``, which Optuna recommends over SQLite when several processes
write to one study). ``--storage`` takes a database URL (``postgresql://user:pw@host/db``:
workers on several machines share the study) or a path to another journal file. ``--workers
N`` runs N processes of this command, each with its share of ``--trials``; independent
commands (other shells, other machines) with the same ``--name`` and storage add their trials
to the same study. When its workers are done, the command writes ``table.md``,
``trials.json`` and ``pareto.png`` under ``runs/studies/<name>/`` from every finished trial
of the study, the best trade-offs (the Pareto front) marked.

Tooling: Optuna is imported here and in tests only, never by ``create_data.py``,
``flows_src/`` or ``exported/`` (the course's library rule).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna  # tooling only
import torch

from create_data import create_olympic_rings, create_unconditional_olympic_rings
from flows_src import experiments, metrics, runs
from flows_src.training import NonFiniteLossError, TrainingStep, train

ROOT = Path(__file__).resolve().parents[1]

#: The reserved name in a search space for the share of the budget spent training.
SHARE = "train_share"


@dataclass(frozen=True)
class Study:
    """One study: what it searches, for which family, scored how.

    Arguments:
        family: ``"nf"``, ``"fm"`` or ``"cfm"`` (:data:`flows_src.experiments.FAMILIES`).
        about: one line for ``--list`` and the table's heading.
        fixed: config fields every trial sets (on top of the ``spec`` preset).
        space: config field -> a list of choices, or ``("log", low, high)``; ``train_share``
            is the share of the per-trial budget spent training.
        candidates: points of ``space`` the study tries first, before its sampler proposes
            any (Optuna's ``enqueue_trial``, once per study): the family's preset and the
            alternatives measured before, so the study compares them at equal budget.
    """

    family: str
    about: str
    fixed: dict = field(default_factory=dict)
    space: dict = field(default_factory=dict)
    candidates: list[dict] = field(default_factory=list)

    def outside_space(self) -> list[str]:
        """Each candidate's values that its space cannot propose (a choice not listed, a
        number outside its range, a field not searched), as text; empty when all fit."""
        wrong = []
        for i, candidate in enumerate(self.candidates):
            for name, value in candidate.items():
                spec = self.space.get(name)
                fits = spec is not None and (
                    value in spec if isinstance(spec, list) else spec[1] <= value <= spec[2])
                if not fits:
                    wrong.append(f"candidate {i}: {name}={value!r}")
        return wrong

    def missing_fields(self) -> list[str]:
        """Config fields the study sets that the family's config class does not have (yet)."""
        names = set(experiments.FAMILIES[self.family].config_class.field_names())
        return sorted((set(self.fixed) | set(self.space)) - names - {SHARE})


_SHARES = ("log", 0.125, 1.0)
# minibatch OT (coupling "ot") is not searched: its numpy solver costs about 0.5 s per batch
# of 512, a few hundred steps in a budget of minutes
_FM_SPACE = {
    "hidden": [128, 192, 256, 384],
    "n_linear": [4, 5],
    "batch_size": [256, 512, 1024],
    "lr": ("log", 5e-4, 4e-3),
    "time_features": [0, 4, 8],
    "time_power": [1.0, 2.0, 3.0, 4.0],
    "space_features": [0, 4, 6],
    SHARE: _SHARES,
}
# Each trains for the whole budget, with the strong preset's objective and training: the
# strong preset's networks (128 wide unconditional, 192 conditional; with Fourier features of
# x_t, 4 octaves), the other width with them, and the strong network of the round before
# (without them: its first study chose hidden 128 for 200 epochs, in-band 0.959 and gap
# 0.111 on seed 0; conditional, hidden 192, accuracy 0.983); the conditional study then
# tries 6 octaves, after both widths with 4 stopped just short of accuracy 0.985, and then
# classifier-free guidance on the strong network: 10 % of the labels dropped in training,
# samples guided with weight 0.5 (the best of 0, 0.25, 0.5, 1, 2 in a trial on seed 0; the
# weight changes the sampler only, so a trial that trains one model scores one weight, and
# the beyond notebook compares the weights on each seed's strong model). (Optuna
# refuses a new choice in a study that has trials: a changed space is a new study,
# ``--storage`` or a clean runs/; new candidates join a study at its next run.)
_FM_STRONG = {"n_linear": 5, "batch_size": 512, "lr": 2e-3, "time_features": 4,
              "time_power": 3.0, SHARE: 1.0}
_FM_CANDIDATES = [{**_FM_STRONG, "hidden": hidden, "space_features": space}
                  for hidden, space in ((128, 4), (192, 4), (128, 0))]
_CFM_CANDIDATES = [{**_FM_STRONG, "hidden": hidden, "space_features": space, "embed_dim": 8}
                   for hidden, space in ((192, 4), (128, 4), (192, 0), (128, 6), (192, 6))]
_CFM_CANDIDATES.append({**_CFM_CANDIDATES[0], "class_dropout": 0.1, "guidance": 0.5})

_NSF = {"n_couplings": 6, "hidden": 128, "n_linear": 3, "bins": 16, "bound": 5.0,
        "batch_size": 512, "lr": 2e-3, "init": "uniform", SHARE: 1.0}

#: The studies, by name. Each searches around what the family's ladder
#: (:data:`flows_src.presets.LADDERS`) found to matter.
STUDIES: dict[str, Study] = {
    # candidates: the strong preset's networks and training (its 24 epochs took about 210 s),
    # and wider or shallower networks in the same time
    "nf-affine": Study(
        "nf", "normalizing flow, affine couplings (the strong preset's family)",
        fixed={"init": "he", "max_grad_norm": 100.0},
        space={"n_couplings": [8, 12, 15], "hidden": [16, 32, 64], "n_linear": [3, 4, 5],
               "log_s_bound": [2.0, 5.0], "batch_size": [128, 256, 512],
               "lr": ("log", 2e-4, 3e-3), SHARE: _SHARES},
        candidates=[{"n_couplings": 15, "hidden": 32, "n_linear": 4, "log_s_bound": 2.0,
                     "batch_size": 256, "lr": 5e-4, SHARE: share} for share in (0.7, 1.0)]
        + [{"n_couplings": 15, "hidden": 64, "n_linear": 3, "log_s_bound": 2.0,
            "batch_size": 256, "lr": 5e-4, SHARE: 1.0}]),
    # around zuko's NSF, measured on this data (issue 17): 6 transforms, 16 bins, two hidden
    # layers of 128, batch 512, lr 2e-3, gradient norm clipped at 100 (the spline preset,
    # PyTorch's default initialization); candidates: that, more bins on a tighter interval,
    # more transforms
    "nf-spline": Study(
        "nf", "normalizing flow, rational-quadratic spline couplings",
        fixed={"transform": "spline", "max_grad_norm": 100.0},
        space={"n_couplings": [4, 6, 8], "hidden": [64, 128, 192], "n_linear": [3, 4],
               "bins": [8, 16, 24], "bound": [3.0, 4.0, 5.0], "batch_size": [256, 512, 1024],
               "lr": ("log", 5e-4, 4e-3), "init": ["uniform", "he"], SHARE: _SHARES},
        candidates=[{**_NSF, **change} for change in (
            {}, {"bins": 24, "bound": 4.0}, {"n_couplings": 8})]),
    "fm": Study("fm", "flow matching, unconditional", space=_FM_SPACE,
                candidates=_FM_CANDIDATES),
    "cfm": Study("cfm", "flow matching, class-conditional (5 rings)",
                 space={**_FM_SPACE, "embed_dim": [8, 16, 32], "class_dropout": [0.0, 0.1, 0.2],
                        "guidance": [0.0, 0.5, 1.0]},
                 candidates=_CFM_CANDIDATES),
}

#: How each family is scored: the notebooks' sizes (in-band on 10,000 samples; the gap on
#: 10,000 held-out points, as issue 17 asks of both families; the conditional notebook's
#: 1,000 samples per class).
SCORING = {
    "nf": {"n_eval": 10_000},
    "fm": {"n_eval": 10_000, "n_nll": 10_000, "nll_dt": 0.01},
    "cfm": {"n_eval": 5_000},
}


class ToolError(Exception):
    """A mistake in how the tool was called: reported in one line."""


# ---------------------------------------------------------------------------------------
# data, budget, scoring


_DATA: dict[tuple, tuple] = {}


def data(family: str, n_points: int, n_val: int, seed: int) -> tuple:
    """``(train tensors, held-out tensors, standardizer)`` drawn as the family's notebook
    draws them (one call, one standardization, then the split); cached per process."""
    key = (family, n_points, n_val, seed)
    if key not in _DATA:
        if family == "cfm":
            points, labels, _, standardizer = create_olympic_rings(
                n_points + n_val, verbose=False, seed=seed, return_standardizer=True)
            # the course's sampler returns the points sorted by class: shuffle before the split
            order = np.random.default_rng(seed).permutation(len(points))
            x = torch.as_tensor(points[order], dtype=torch.float32)
            c = torch.as_tensor(labels[order], dtype=torch.long)
            _DATA[key] = (x[:n_points], c[:n_points]), (x[n_points:], c[n_points:]), standardizer
        else:
            points, standardizer = create_unconditional_olympic_rings(
                n_points + n_val, verbose=False, seed=seed, return_standardizer=True)
            x = torch.as_tensor(points, dtype=torch.float32)
            _DATA[key] = (x[:n_points],), (x[n_points:],), standardizer
    return _DATA[key]


def seconds_per_step(config, train_data: tuple, min_seconds: float = 1.0,
                     max_steps: int = 60) -> float:
    """The wall time of one optimizer step of ``config``'s model, batch slicing included, on
    a core of its own: the 20th percentile of up to ``max_steps`` timed steps (about
    ``min_seconds``) after two warm-up steps, on a throwaway copy of the model. A low
    percentile, not the median, so that another job on the machine while the steps are
    timed does not cut the trial's epochs (its measured training seconds still show the
    load it met)."""
    model = experiments.build(config)
    step = TrainingStep(model, config, total_steps=1000)
    generator = torch.Generator().manual_seed(config.seed)
    n = len(train_data[0])
    times: list[float] = []
    start = time.perf_counter()
    for i in range(max_steps + 2):
        idx = torch.randint(n, (config.batch_size,), generator=generator)
        t0 = time.perf_counter()
        step(*[d[idx] for d in train_data])
        if i >= 2:
            times.append(time.perf_counter() - t0)
            if time.perf_counter() - start > min_seconds and len(times) >= 5:
                break
    return float(np.quantile(times, 0.2))


def plan_epochs(seconds: float, step_seconds: float, steps_per_epoch: int) -> int:
    """The epochs of ``step_seconds`` per step that fit in ``seconds`` (at least one)."""
    return max(1, int(seconds / (step_seconds * steps_per_epoch)))


def score(family: str, model, val: tuple, standardizer, seed: int, n_eval: int,
          n_nll: int = 10_000, nll_dt: float = 0.01) -> dict[str, float]:
    """The family's notebook's Results cell: samples drawn with seed ``seed + 100``; the
    normalizing flow's NLL exact on all held-out points, flow matching's from the ODE
    likelihood (RK4 with ``nll_dt``) of the first ``n_nll``; the conditional model's
    accuracy on ``n_eval`` samples, equally many per class."""
    generator = torch.Generator().manual_seed(seed + 100)
    model.eval()
    x_val = val[0]
    if family == "cfm":
        result = experiments.evaluate_conditional(model, standardizer, seed=seed + 100,
                                                  n_per_class=max(1, n_eval // 5))
        return {"accuracy": result["accuracy"], "in_band": result["in_band"]}
    if family == "nf":
        with torch.no_grad():
            samples = model.sample(n_eval, generator)
            nll = metrics.nll(model.log_prob, x_val)
    else:
        samples = model.sample(n_eval, generator)
        nll = metrics.nll(model.with_sampler(nll_dt=nll_dt).log_prob, x_val[:n_nll], chunk=1000)
    result = metrics.quality(samples, x_val, standardizer, nll)
    return {"nll": result["nll"], "gap": result["gap"], "in_band": result["in_band"]}


def shortfall(family: str, result: dict) -> float:
    """How far a model is from perfect (0): :func:`flows_src.metrics.shortfall`, with the
    conditional family's accuracy only."""
    return metrics.shortfall({"accuracy": result["accuracy"]} if family == "cfm" else
                             {"in_band": result["in_band"], "gap": result["gap"]})


# ---------------------------------------------------------------------------------------
# trials


def suggest(trial: optuna.Trial, name: str, spec) -> object:
    """One value of ``spec`` (a list of choices or ``("log", low, high)``) for ``name``."""
    if isinstance(spec, list):
        return trial.suggest_categorical(name, spec)
    kind, low, high = spec
    if kind != "log":
        raise ToolError(f"search space of {name!r}: a list of choices or ('log', low, high), "
                        f"got {spec!r}")
    return trial.suggest_float(name, low, high, log=True)


def make_objective(definition: Study, args: argparse.Namespace):
    """The trial function: build, time, train within the budget, score."""
    family = definition.family
    scoring = {**SCORING[family], **({"n_eval": args.n_eval} if args.n_eval else {}),
               **({"n_nll": args.n_nll} if args.n_nll else {})}
    worker = f"{socket.gethostname()}:{os.getpid()}"

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        params = {name: suggest(trial, name, spec) for name, spec in definition.space.items()}
        share = params.pop(SHARE, 1.0)
        try:
            config = dataclasses.replace(
                experiments.config(family, "spec"), **definition.fixed, **params,
                n_points=args.n_points, n_val=args.n_val, seed=args.seed, compile=False)
        except ValueError as error:  # a point of the space no config allows (guidance
            # without dropped labels): pruned before any training, so the sampler learns it
            trial.set_user_attr("error", str(error))
            raise optuna.TrialPruned(str(error)) from None
        train_data, val, standardizer = data(family, args.n_points, args.n_val, args.seed)
        steps_per_epoch = args.n_points // config.batch_size
        step_seconds = seconds_per_step(config, train_data)
        epochs = plan_epochs(share * args.budget_seconds, step_seconds, steps_per_epoch)
        config = dataclasses.replace(config, epochs=epochs)
        trial.set_user_attr("worker", worker)
        trial.set_user_attr("budget_seconds", args.budget_seconds)
        trial.set_user_attr("epochs", epochs)
        trial.set_user_attr("planned_seconds", epochs * steps_per_epoch * step_seconds)
        trial.set_user_attr("config", dataclasses.asdict(config))

        torch.manual_seed(config.seed)
        model = experiments.build(config)
        try:
            history = train(model, train_data, config, progress=False)
        except NonFiniteLossError as error:
            trial.set_user_attr("error", str(error))
            raise
        start = time.perf_counter()
        result = score(family, model, val, standardizer, args.seed, **scoring)
        trial.set_user_attr("score_seconds", time.perf_counter() - start)
        trial.set_user_attr("train_seconds", history.train_seconds)
        trial.set_user_attr("clipped_steps", history.clipped_steps)
        for key, value in result.items():
            trial.set_user_attr(key, value)
        value = shortfall(family, result)
        print(f"[{worker}] trial {trial.number}: shortfall {value:.4f} in "
              f"{history.train_seconds:.1f} s ({epochs} epochs) {trial.params}", flush=True)
        return value, history.train_seconds

    return objective


# ---------------------------------------------------------------------------------------
# storage, workers


def study_dir(runs_root: Path, name: str) -> Path:
    return runs.study_dir(name, runs_root)  # the library's layout


def storage_of(spec: str | None, runs_root: Path, name: str) -> optuna.storages.BaseStorage:
    """``spec`` as Optuna storage: a database URL (``postgresql://...``, ``sqlite:///...``),
    or a journal file's path; by default ``runs/studies/<name>/journal.log``."""
    if spec and "://" in spec:
        return _database(spec)
    path = Path(spec) if spec else study_dir(runs_root, name) / "journal.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def _database(url: str, attempts: int = 5) -> optuna.storages.RDBStorage:
    """Optuna's storage in the database at ``url``. Commands started together on a fresh
    database race to create its tables (the loser gets an ``IntegrityError``): it retries."""
    import sqlalchemy

    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():  # Optuna calls the heartbeat experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                # a worker that dies mid-trial (a killed machine) leaves its trial RUNNING;
                # the heartbeat lets the others mark it FAIL
                return optuna.storages.RDBStorage(url, heartbeat_interval=60, grace_period=180)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as error:
            if attempt == attempts - 1:
                failure = error
            else:
                time.sleep(1 + random.random())
        except (sqlalchemy.exc.SQLAlchemyError, ImportError) as error:
            failure = error
            break
    shown = sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    first = (str(failure).strip().splitlines() or [""])[0]
    raise ToolError(f"cannot open --storage {shown}: {type(failure).__name__}: {first}")


def open_study(args: argparse.Namespace, sampler: optuna.samplers.BaseSampler | None = None
               ) -> optuna.Study:
    study = optuna.create_study(
        storage=storage_of(args.storage, args.runs_root, args.name), study_name=args.name,
        directions=["minimize", "minimize"], sampler=sampler, load_if_exists=True)
    if not study.metric_names:  # labels for Optuna's own tools (optuna-dashboard)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(["shortfall", "train_seconds"])
    return study


def split(trials: int, workers: int) -> list[int]:
    """``trials`` shared among ``workers`` as evenly as possible."""
    return [trials // workers + (i < trials % workers) for i in range(workers)]


def run_worker(args: argparse.Namespace, definition: Study, trials: int) -> None:
    """Run ``trials`` trials in this process."""
    seed = None if args.sampler_seed is None else args.sampler_seed + args.worker_index
    study = open_study(args, optuna.samplers.TPESampler(seed=seed))
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        study.optimize(make_objective(definition, args), n_trials=trials,
                       catch=(NonFiniteLossError,))
    finally:
        torch.set_num_threads(threads)


def worker_command(args: argparse.Namespace, index: int, trials: int) -> list[str]:
    """This command for one worker process: ``trials`` trials, no report."""
    command = [sys.executable, str(Path(__file__).resolve()), "--name", args.name,
               "--trials", str(trials), "--budget-seconds", str(args.budget_seconds),
               "--seed", str(args.seed), "--runs-root", str(args.runs_root),
               "--n-points", str(args.n_points), "--n-val", str(args.n_val),
               "--threads", str(args.threads), "--worker-index", str(index), "--no-report"]
    for option, value in (("--storage", args.storage), ("--sampler-seed", args.sampler_seed),
                          ("--n-eval", args.n_eval), ("--n-nll", args.n_nll)):
        if value is not None:
            command += [option, str(value)]
    return command


def run_workers(args: argparse.Namespace, shares: list[int]) -> None:
    """One process per share, side by side; stops with one line if any of them failed."""
    processes = [subprocess.Popen(worker_command(args, i, n)) for i, n in enumerate(shares)
                 if n > 0]
    codes = [p.wait() for p in processes]
    if any(codes):
        raise ToolError(f"{sum(c != 0 for c in codes)} of {len(processes)} worker processes "
                        f"failed (exit codes {codes})")


# ---------------------------------------------------------------------------------------
# the report


def pareto_front(points) -> np.ndarray:
    """``(n,)`` booleans: True where no other point of ``points`` (``(n, k)``, every column
    minimized) is at least as good in every column and better in one. Equal points are
    both on the front."""
    p = np.asarray(points, dtype=float).reshape(len(points), -1)
    no_worse = (p[:, None, :] <= p[None, :, :]).all(-1)  # [j, i]: j <= i everywhere
    better = (p[:, None, :] < p[None, :, :]).any(-1)
    return ~(no_worse & better).any(0)


def trial_rows(study: optuna.Study, family: str) -> list[dict]:
    """One dict per finished trial: its number, parameters, results; ``pareto`` marks the
    best trade-offs of shortfall against training seconds."""
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    rows = [{"trial": t.number, "shortfall": t.values[0], "train_seconds": t.values[1],
             **{k: t.user_attrs.get(k) for k in ("in_band", "gap", "nll", "accuracy",
                                                 "epochs", "worker", "config")},
             "params": dict(t.params)} for t in done]
    if rows:
        front = pareto_front([[r["shortfall"], r["train_seconds"]] for r in rows])
        for row, on_front in zip(rows, front):
            row["pareto"] = bool(on_front)
    return sorted(rows, key=lambda r: (not r["pareto"], r["train_seconds"]))


def _value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def markdown(rows: list[dict], definition: Study, name: str) -> str:
    """The trials as a markdown table, the Pareto front first (each sorted by time)."""
    measures = ["accuracy", "in_band"] if definition.family == "cfm" else ["in_band", "gap"]
    params = list(definition.space)
    defaults = experiments.config(definition.family, "spec").flat()
    head = ["trial", "front", "shortfall", "train s", *measures, "epochs", *params]
    lines = [f"# Study {name}: {definition.about}", "",
             f"shortfall = {'1 - accuracy' if definition.family == 'cfm' else '1 - in-band + gap'}"
             f"; front: the best trade-offs of shortfall against training seconds", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        # a field the space gained after a trial ran: the value its config had, or, for a
        # field the config did not have yet, the default (the behaviour before the field)
        ran_with = {**defaults, **{name: value for part in (r["config"] or {}).values()
                                   if isinstance(part, dict) for name, value in part.items()}}
        cells = [r["trial"], "*" if r["pareto"] else "", r["shortfall"], r["train_seconds"],
                 *(r[m] for m in measures), r["epochs"],
                 *(r["params"].get(p, ran_with.get(p)) for p in params)]
        lines.append("| " + " | ".join(map(_value, cells)) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], definition: Study, name: str, path: Path) -> None:
    """Shortfall against training seconds, every finished trial, the front as a step line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds = np.array([r["train_seconds"] for r in rows])
    values = np.array([r["shortfall"] for r in rows])
    front = np.array([r["pareto"] for r in rows])
    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    ax.scatter(seconds[~front], values[~front], s=18, color="0.6", label="trial")
    order = np.argsort(seconds[front])
    ax.step(seconds[front][order], values[front][order], where="post", color="C3", lw=1)
    ax.scatter(seconds[front], values[front], s=30, color="C3",
               label="best trade-off (Pareto front)", zorder=3)
    for r in rows:
        if r["pareto"]:
            ax.annotate(str(r["trial"]), (r["train_seconds"], r["shortfall"]),
                        textcoords="offset points", xytext=(4, 4), fontsize=8)
    if (values > 0).all():
        ax.set_yscale("log")
    what = "1 - accuracy" if definition.family == "cfm" else "1 - in-band + gap (nats)"
    ax.set(xlabel="training seconds (one core)", ylabel=f"shortfall: {what}",
           title=f"study {name}: {len(rows)} trials, {int(front.sum())} on the front")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(study: optuna.Study, definition: Study, out: Path) -> list[dict]:
    """``table.md``, ``trials.json`` and ``pareto.png`` under ``out``; returns the rows."""
    from flows_src.runs import atomic_write, write_json

    rows = trial_rows(study, definition.family)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(rows, definition, study.study_name)
    atomic_write(out / "table.md", lambda f: f.write(table.encode()))
    write_json(out / "trials.json", {"study": study.study_name, "family": definition.family,
                                     "fixed": definition.fixed, "rows": rows})
    if rows:
        plot(rows, definition, study.study_name, out / "pareto.png")
    return rows


def print_front(rows: list[dict], family: str) -> None:
    front = [r for r in rows if r["pareto"]]
    measures = ["accuracy"] if family == "cfm" else ["in_band", "gap"]
    print(metrics.format_table(
        [[r["trial"], r["shortfall"], r["train_seconds"], *(r[m] for m in measures),
          r["epochs"], " ".join(f"{k}={_value(v)}" for k, v in r["params"].items())]
         for r in front],
        ["trial", "shortfall", "train s", *measures, "epochs", "parameters"]))


# ---------------------------------------------------------------------------------------
# command line


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--name", help=f"the study: one of {', '.join(STUDIES)}")
    p.add_argument("--list", action="store_true", help="list the studies and exit")
    p.add_argument("--trials", type=int, default=20,
                   help="trials this command runs, shared among its workers (0: report only)")
    p.add_argument("--budget-seconds", type=float, default=300.0,
                   help="training seconds per trial at train_share = 1 (default: 300)")
    p.add_argument("--workers", type=int, default=1, help="processes of this command")
    p.add_argument("--storage", help="database URL (postgresql://...) or journal file; "
                   "default: runs/studies/<name>/journal.log")
    p.add_argument("--seed", type=int, default=0, help="data and initialization seed")
    p.add_argument("--sampler-seed", type=int,
                   help="seed of the sampler (worker i uses it + i); default: random")
    p.add_argument("--runs-root", type=Path, default=ROOT / "runs")
    p.add_argument("--n-points", type=int, default=250_000, help="training points")
    p.add_argument("--n-val", type=int, default=10_000, help="held-out points")
    p.add_argument("--n-eval", type=int, help="samples scored (default: the notebook's)")
    p.add_argument("--n-nll", type=int, help="held-out points of flow matching's NLL")
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    p.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--no-report", action="store_true", help=argparse.SUPPRESS)
    return p


def check(args: argparse.Namespace) -> Study:
    if args.name not in STUDIES:
        raise ToolError(f"--name must be one of {', '.join(STUDIES)}; got {args.name!r}")
    definition = STUDIES[args.name]
    outside = definition.outside_space()
    if outside:
        raise ToolError(f"study {args.name!r}: {'; '.join(outside)} is outside its space")
    missing = definition.missing_fields()
    if missing:
        config_class = experiments.FAMILIES[definition.family].config_class.__name__
        raise ToolError(f"study {args.name!r} sets {', '.join(missing)}, which "
                        f"{config_class} lacks (not in flows_src/config.py yet?)")
    for option, value, low in (("--trials", args.trials, 0), ("--workers", args.workers, 1),
                               ("--n-points", args.n_points, 1), ("--n-val", args.n_val, 1),
                               ("--threads", args.threads, 1)):
        if value < low:
            raise ToolError(f"{option} must be an integer >= {low}, got {value}")
    if not args.budget_seconds > 0:
        raise ToolError(f"--budget-seconds must be > 0, got {args.budget_seconds}")
    return definition


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.list:
        for name, definition in STUDIES.items():
            missing = definition.missing_fields()
            print(f"{name}: {definition.about}"
                  + (f" [needs {', '.join(missing)}]" if missing else ""))
            print(f"    fixed {definition.fixed}\n    space {definition.space}")
            for candidate in definition.candidates:
                print(f"    candidate {candidate}")
        return 0
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        definition = check(args)
        if args.no_report:  # one worker of a command with several
            run_worker(args, definition, args.trials)
            return 0
        start = time.perf_counter()
        study = open_study(args)  # created once, before any worker
        if args.trials:
            for candidate in definition.candidates:
                study.enqueue_trial(candidate, skip_if_exists=True)
        if args.workers == 1:
            run_worker(args, definition, args.trials)
        elif args.trials:
            run_workers(args, split(args.trials, args.workers))
        rows = write_report(open_study(args), definition, study_dir(args.runs_root, args.name))
    except (ToolError, ValueError) as error:
        print(f"study.py: error: {error}", file=sys.stderr)
        return 2
    out = study_dir(args.runs_root, args.name)
    if rows:
        print_front(rows, definition.family)
    print(f"study {args.name}: {len(rows)} finished trials, {sum(r['pareto'] for r in rows)} "
          f"on the front; {time.perf_counter() - start:.0f} s; table {out / 'table.md'}, "
          f"plot {out / 'pareto.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
