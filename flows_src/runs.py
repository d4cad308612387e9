"""Where a run's outputs go, and writing them so an interrupted run corrupts nothing.

Everything a notebook produces lands in ``<runs_root>/<notebook>/seed-<seed>/`` (with a
preset other than the exercise's, ``<runs_root>/<notebook>/<preset>/seed-<seed>/``): figures,
``metrics.json``, checkpoints. Files are written to a temporary name in the same folder
and renamed into place, so a reader sees the old file or the new one, never half of one.

A whole run is published the same way when the tooling executes a notebook
(``tools/notebooks.py``, ``make run``): it names the run folder's in-progress twin,
``<run folder>.in-progress``, in the environment variable :data:`STAGING_ENV`, and
:func:`run_dir` hands the notebook that twin to write into; the tool renames it into place
only when every cell has succeeded, so a failed or killed run leaves the finished one as it
was. Reads of other notebooks' results (:func:`run_file`) always see finished runs.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import pickle
import tempfile
import warnings
from dataclasses import dataclass, fields
from pathlib import Path

import torch

__all__ = ["PROJECT_ROOT", "STAGING_ENV", "root_dir", "run_dir", "staging_dir", "atomic_write",
           "write_json", "read_json", "save_torch", "load_torch", "CheckpointError",
           "run_file", "run_metrics", "ModelRecord", "BeyondRecord", "load_record", "studies_dir",
           "study_dir"]

#: The folder holding ``flows_src/``, ``notebooks/`` and ``runs/``.
PROJECT_ROOT = Path(__file__).resolve().parents[1]

#: Names the in-progress folder (:func:`staging_dir`) that the running notebook writes into.
STAGING_ENV = "FLOWS_LAB_STAGING"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be loaded: named, with what to do, in one line."""


def staging_dir(path: str | os.PathLike) -> Path:
    """The in-progress twin of run folder ``path``: ``<path>.in-progress`` beside it."""
    path = Path(path)
    return path.with_name(f"{path.name}.in-progress")


def root_dir(runs_root: str | os.PathLike = "runs") -> Path:
    """The runs folder ``runs_root``: a relative one is taken from the project root, so the
    answer does not depend on the working directory."""
    if not str(runs_root).strip():
        raise ValueError("runs_root must name a folder (default 'runs'), got ''")
    root = Path(runs_root)
    return root if root.is_absolute() else PROJECT_ROOT / root


def run_dir(notebook: str, seed: int, runs_root: str | os.PathLike = "runs",
            preset: str = "spec", create: bool = True) -> Path:
    """The output folder of one notebook run (created unless ``create`` is false):
    ``<runs_root>/<notebook>/seed-<seed>`` for the exercise's settings, and
    ``<runs_root>/<notebook>/<preset>/seed-<seed>`` for another preset
    (:mod:`flows_src.presets`). A relative ``runs_root`` is taken from the project root, so
    the answer does not depend on the working directory.

    ``create=True`` asks for the folder this run writes into: while the tooling executes
    the notebook (:data:`STAGING_ENV` names this folder's :func:`staging_dir`), that is the
    in-progress twin, published under the folder's name once the whole run succeeded.
    """
    for name, value in (("notebook", notebook), ("preset", preset)):
        if not isinstance(value, str) or not value.strip() or value[0] == "." or any(
                c in value for c in "/\\"):
            raise ValueError(f"{name} must be a plain folder name, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    path = root_dir(runs_root) / notebook
    if preset != "spec":
        path = path / preset
    path = path / f"seed-{seed}"
    if create:
        staging = staging_dir(path)
        if os.environ.get(STAGING_ENV) == str(staging):
            path = staging
        path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(binary_file)`` on a temporary file beside ``path``, then rename it; the
    file is readable by all, as one written in place would be (not ``mkstemp``'s 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _plain(value):
    """JSON-safe copy: numpy/torch scalars become floats, NaN and inf become null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(_plain(obj), indent=2, sort_keys=True) + "\n"
    return atomic_write(Path(path), lambda f: f.write(text.encode()))


def read_json(path: str | os.PathLike):
    """Read a JSON file written by :func:`write_json`."""
    return json.loads(Path(path).read_text())


def run_file(notebook: str, seed: int, name: str, runs_root: str | os.PathLike = "runs",
             preset: str = "spec") -> Path:
    """The path of file ``name`` of another notebook's run with the same seed (and preset).

    One notebook reuses another's results from disk rather than retraining its model; a
    missing file stops with one line that says which notebook to run first.
    """
    path = run_dir(notebook, seed, runs_root, preset, create=False) / name
    if not path.is_file():
        args = f"-p seed {seed}" + ("" if preset == "spec" else f" -p preset {preset}")
        script = f"--seed {seed}" + ("" if preset == "spec" else f" --preset {preset}")
        raise FileNotFoundError(f"{path} is missing: run the {notebook} notebook first "
                                f"(make run NB={notebook} ARGS='{args}'; from the hand-in, "
                                f"python exported/{notebook}.py {script})")
    return path


def run_metrics(notebook: str, seed: int, runs_root: str | os.PathLike = "runs",
                preset: str = "spec") -> dict:
    """The ``metrics.json`` of another notebook's run with the same seed and preset (see
    :func:`run_file`)."""
    return read_json(run_file(notebook, seed, "metrics.json", runs_root, preset))


@dataclass(frozen=True)
class ModelRecord:
    """The headline numbers of a model notebook's ``metrics.json`` (normalizing flow, flow
    matching, class-conditional flow matching); ``None`` where a family reports no such
    number, or the file lacks it.

    Arguments:
        nll: held-out negative log-likelihood (nats per point; unconditional families).
        gap: ``nll`` less the data's entropy H, the best any model can do.
        in_band: the share of samples inside a ring's band.
        accuracy: the share of class-conditional samples inside their own ring.
        train_seconds: the training's wall time.
    """

    nll: float | None = None
    gap: float | None = None
    in_band: float | None = None
    accuracy: float | None = None
    train_seconds: float | None = None

    @classmethod
    def from_metrics(cls, metrics: dict) -> ModelRecord:
        """The record of a ``metrics.json``'s content."""
        return cls(**{f.name: metrics.get(f.name) for f in fields(cls)})


@dataclass(frozen=True)
class BeyondRecord:
    """The headline numbers of the beyond notebook's ``metrics.json``.

    Arguments:
        targets_met: every strong preset met its acceptance targets.
        aim_nfe: the fewest function evaluations whose in-band fraction is within 0.01 of
            Euler with 1,000 steps (the exercise's flow matching model).
        ot_straightness: the straightness S of the OT-coupled model's paths (0: straight).
        independent_straightness: S of the independently coupled model's paths.
    """

    targets_met: bool | None = None
    aim_nfe: int | None = None
    ot_straightness: float | None = None
    independent_straightness: float | None = None

    @classmethod
    def from_metrics(cls, metrics: dict) -> BeyondRecord:
        """The record of a ``metrics.json``'s content."""
        paths = (metrics.get("ot") or {}).get("paths") or {}
        return cls(targets_met=metrics.get("targets_met"),
                   aim_nfe=(metrics.get("aim") or {}).get("nfe"),
                   ot_straightness=(paths.get("OT coupling") or {}).get("straightness"),
                   independent_straightness=(paths.get("independent coupling") or {}).get(
                       "straightness"))


def load_record(kind: type[ModelRecord] | type[BeyondRecord], notebook: str, seed: int,
                runs_root: str | os.PathLike = "runs", preset: str = "spec"
                ) -> ModelRecord | BeyondRecord | None:
    """The ``kind`` record of a finished run's ``metrics.json``, or ``None`` when the run
    is missing."""
    path = run_dir(notebook, seed, runs_root, preset, create=False) / "metrics.json"
    return kind.from_metrics(read_json(path)) if path.is_file() else None


def save_torch(obj, path: str | os.PathLike) -> Path:
    """``torch.save`` atomically (write, fsync, rename)."""
    return atomic_write(Path(path), lambda f: torch.save(obj, f))


def load_torch(path: str | os.PathLike):
    """``torch.load`` with ``weights_only=True``: a checkpoint is data, never code.

    A file that does not load that way (truncated, corrupt, or not written by
    :func:`save_torch`) raises :class:`CheckpointError` naming it; the unsafe way of
    loading is never the fix, writing the checkpoint again is.
    """
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols it then refuses
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError, ValueError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(error).__name__}: truncated, corrupt "
            "or not written by this project); delete it, or retrain with force "
            "(-p force True, or --force True for a script)") from None


def studies_dir(runs_root: str | os.PathLike = "runs") -> Path:
    """``<runs_root>/studies``: a folder per hyper-parameter study (``make study``); not
    created."""
    root = Path(runs_root)
    return (root if root.is_absolute() else PROJECT_ROOT / root) / "studies"


def study_dir(name: str, runs_root: str | os.PathLike = "runs") -> Path:
    """The folder of study ``name``, its table, plot and ``trials.json``; not created."""
    return studies_dir(runs_root) / name
