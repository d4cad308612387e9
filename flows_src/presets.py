"""Named configurations: the exercise's (``"spec"``) and stronger ones chosen by measurement.

``"spec"`` is the default everywhere and the only preset the hand-in report answers with:
the hyper-parameters of Sec. 3.3 and 4.3, as the config classes' defaults. ``"strong"``
trains each family further within about five minutes on one core of a 2-core laptop; the
beyond notebook (``notebooks/beyond.py``) measures what each of its changes bought, in the
order of :data:`LADDERS`.

A notebook run with ``-p preset strong`` answers the same questions with the strong model,
into ``runs/<notebook>/strong/seed-<s>/``; ``-p preset spline`` (the normalizing flow only)
with rational-quadratic spline couplings.
"""

from __future__ import annotations

import dataclasses
import os
import textwrap

import torch
from torch import Tensor, nn

from flows_src import metrics, registry, rings
from flows_src.config import FMConfig, NFConfig, TrainingConfig, config_from_dict
from flows_src.flow_matching import VelocityField
from flows_src.normalizing_flow import NormalizingFlow
from flows_src.rings import Standardizer
from flows_src.runs import load_torch, run_file, run_metrics
from flows_src.training import History, load_checkpoint

__all__ = ["FAMILIES", "NOTEBOOKS", "PRESETS", "LADDERS", "config", "ladder", "build",
           "TRAINING", "TARGETS", "check_targets", "meets", "load_run", "evaluate"]

#: The model families and their config classes (``"cfm"``: class-conditional flow matching).
FAMILIES: dict[str, type[TrainingConfig]] = {"nf": NFConfig, "fm": FMConfig, "cfm": FMConfig}

#: The notebook that trains each family (the table of notebooks: :mod:`flows_src.registry`).
NOTEBOOKS = {nb.family: nb.name for nb in registry.NOTEBOOKS if nb.family is not None}

#: The changes from ``spec`` to ``strong``, one step at a time, per family: (what the step
#: changes, the fields it sets). Applied in order, every step keeps the ones before it.
#: The flow's were chosen from full-length trials (the README's section on the strong flow
#: lists them): with the wider networks alone, one far-out point in a batch could freeze
#: Adam for epochs and the held-out NLL swung between epochs, so that seeds 1 and 2 ended
#: below the targets. He init, the clip and the bound of 2 steady it (the clip engaged on
#: 5-9% of the steps: the usual gradient norm is 20-30, the largest 10^3-10^9); the
#: batch of 256 (a step costs about what one of 128 does) at half the learning rate cuts the
#: swings, in two thirds of the steps of the 18 epochs of 128 that came before. Four Linear
#: layers instead of five make a step about a fifth faster; with five the same recipe met
#: the targets on seeds 0-3, with four on seeds 0-2, by wider margins.
LADDERS: dict[str, list[tuple[str, dict]]] = {
    "nf": [
        ("wider coupling networks (hidden 8 -> 32)", {"hidden": 32}),
        ("4 Linear layers per network, not 5", {"n_linear": 4}),
        ("He init, each coupling starting as the identity", {"init": "he"}),
        ("gradient norm clipped at 100", {"max_grad_norm": 100.0}),
        ("log-scale bound 5 -> 2", {"log_s_bound": 2.0}),
        ("batch 128 -> 256, lr 1e-3 -> 5e-4", {"batch_size": 256, "lr": 5e-4}),
    ],
    "fm": [
        ("wider network (hidden 64 -> 256)", {"hidden": 256}),
        ("batch 128 -> 512, lr 1e-3 -> 2e-3", {"batch_size": 512, "lr": 2e-3}),
        ("time features (4 frequencies)", {"time_features": 4}),
        ("training times nearer t = 1 (power 3)", {"time_power": 3.0}),
    ],
}
LADDERS["cfm"] = LADDERS["fm"]

#: What ``strong`` sets besides its ladder: the length of training (the ladder's steps are
#: compared at one shorter length): the flow's 24 epochs took 209-225 s in trials on one
#: core beside another training run; flow matching's larger batches make 60 epochs
#: affordable.
TRAINING: dict[str, dict] = {
    "nf": {"epochs": 24},
    "fm": {"epochs": 60},
    "cfm": {"epochs": 60},
}

#: Each preset's fields per family, on top of the config classes' defaults (the exercise's).
#: ``strong`` is every step of :data:`LADDERS` plus :data:`TRAINING` (a test keeps them
#: equal). ``spline`` (the normalizing flow only) swaps the affine coupling for
#: rational-quadratic spline couplings (:mod:`flows_src.spline`), after the neural spline
#: flow that reached in-band 0.974 and gap 0.049 on this data in 300 s on one core (issue
#: 17): 6 transforms of 16 bins on [-5, 5], two hidden layers of 128, batch 512, lr 2e-3
#: (cosine), the gradient norm clipped at 100 (it never engaged). On seed 0 and one core,
#: 32 epochs reached in-band 0.972 and gap 0.046, 36 epochs 0.979 and 0.041 in 223 s of
#: training (about 20 s more with a cold compile cache).
PRESETS: dict[str, dict[str, dict]] = {
    "spec": {"nf": {}, "fm": {}, "cfm": {"n_classes": 5}},
    "strong": {
        "nf": {"hidden": 32, "n_linear": 4, "init": "he", "max_grad_norm": 100.0,
               "log_s_bound": 2.0, "batch_size": 256, "lr": 5e-4, "epochs": 24},
        "fm": {"hidden": 256, "batch_size": 512, "lr": 2e-3, "time_features": 4,
               "time_power": 3.0, "epochs": 60},
        "cfm": {"hidden": 256, "batch_size": 512, "lr": 2e-3, "time_features": 4,
                "time_power": 3.0, "epochs": 60, "n_classes": 5},
    },
    "spline": {
        "nf": {"transform": "spline", "n_couplings": 6, "bins": 16, "bound": 5.0,
               "hidden": 128, "n_linear": 3, "batch_size": 512, "lr": 2e-3,
               "max_grad_norm": 100.0, "epochs": 36},
    },
}


#: What each stronger preset must reach, per ``(family, preset)``: ``(measure, ">=" or
#: "<=", bound)`` on the run's ``metrics.json`` (gap on 10,000 held-out points, in-band on
#: 10,000 samples), and at most five minutes of training on one core. The strong flow's are
#: issue 8's; the others are issue 17's, near the data's limit (in-band 1, gap 0).
TARGETS: dict[tuple[str, str], list[tuple[str, str, float]]] = {
    ("nf", "strong"): [("in_band", ">=", 0.85), ("gap", "<=", 0.30),
                       ("train_seconds", "<=", 300.0)],
    ("nf", "spline"): [("in_band", ">=", 0.97), ("gap", "<=", 0.06),
                       ("train_seconds", "<=", 300.0)],
    ("fm", "strong"): [("in_band", ">=", 0.96), ("gap", "<=", 0.10),
                       ("train_seconds", "<=", 300.0)],
    ("cfm", "strong"): [("accuracy", ">=", 0.985), ("train_seconds", "<=", 300.0)],
}


def check_targets(family: str, preset: str, result: dict) -> list[dict]:
    """Each of :data:`TARGETS` ``[family, preset]`` against ``result`` (a run's metrics): one
    dict per target with the measure, the target as text, the value and whether it is met;
    none for a preset without targets (``spec``)."""
    return [{"measure": measure, "target": f"{sense} {bound:g}", "value": result[measure],
             "met": meets(result[measure], sense, bound)}
            for measure, sense, bound in TARGETS.get((family, preset), [])]


def meets(value: float, sense: str, bound: float) -> bool:
    """Whether ``value`` meets the target ``sense bound`` (``">="`` or ``"<="``)."""
    return bool(value >= bound if sense == ">=" else value <= bound)


def config(family: str, preset: str = "spec", **fields) -> TrainingConfig:
    """The config of ``family`` under ``preset``, with ``fields`` on top.

    A field given as ``None`` keeps the preset's value, so a notebook's parameters cell can
    say ``epochs = None`` for "the preset's epochs"; every other value is taken as given and
    checked by the config class (``epochs=0`` is an error, not a default). (So
    ``max_grad_norm=None`` does not switch the strong flow's clip off:
    ``dataclasses.replace`` the config for that.)

    Example:
        >>> config("nf", "spec", seed=3, epochs=None).epochs
        20
        >>> config("nf", "strong", epochs=3).epochs
        3
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(map(repr, FAMILIES))}, "
                         f"got {family!r}")
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(map(repr, PRESETS))}, "
                         f"got {preset!r}")
    return FAMILIES[family](**{**PRESETS[preset][family], **_given(fields)})


def ladder(family: str, **fields) -> list[tuple[str, TrainingConfig]]:
    """``spec``, then each step of :data:`LADDERS` on top of the ones before it (the last is
    ``strong`` but for :data:`TRAINING`), as ``(label, config)`` pairs with ``fields`` (as
    in :func:`config`) on top of each."""
    steps = [("spec (the exercise)", config(family, "spec", **fields))]
    changed = dict(PRESETS["spec"][family])
    for label, step in LADDERS[family]:
        changed.update(step)
        steps.append((f"+ {label}", FAMILIES[family](**{**changed, **_given(fields)})))
    return steps


def build(config: TrainingConfig) -> nn.Module:
    """An untrained model of ``config``'s family."""
    return NormalizingFlow(config) if isinstance(config, NFConfig) else VelocityField(config)


def load_run(family: str, seed: int, runs_root: str | os.PathLike = "runs",
             preset: str = "spec") -> tuple[nn.Module, History, dict]:
    """The model a notebook trained (``family``'s notebook with ``seed`` and ``preset``),
    rebuilt from the config saved with it, in eval mode; its history and ``metrics.json``.

    A missing run stops with one line naming the notebook to run first.
    """
    path = run_file(NOTEBOOKS[family], seed, "model.pt", runs_root, preset)
    model = build(config_from_dict(FAMILIES[family], load_torch(path)["config"]))
    history, _ = load_checkpoint(model, path)
    return model.eval(), history, run_metrics(NOTEBOOKS[family], seed, runs_root, preset)


def _given(fields: dict) -> dict:
    """``fields`` less those that keep the preset's value (``None``; never ``seed``)."""
    return {key: value for key, value in fields.items() if key == "seed" or value is not None}


def evaluate(model: nn.Module, x_val: Tensor, standardizer: Standardizer, *,
             n_samples: int = 5000, n_nll: int = 1000, seed: int = 0,
             steps: int = 50) -> dict[str, float]:
    """Held-out NLL, its gap to the data entropy, and the in-band fraction of samples, the
    same way for either unconditional family.

    The normalizing flow's NLL is exact on all of ``x_val``; flow matching's is the ODE
    likelihood (RK4, dt = 0.01) of the first ``n_nll`` points, and its samples are
    integrated by the midpoint rule with ``steps`` steps (see the beyond notebook's solver
    table for how close that comes to the exercise's 1,000 Euler steps).
    """
    generator = torch.Generator().manual_seed(seed)
    if isinstance(model, NormalizingFlow):
        with torch.no_grad():
            nll = metrics.nll(model.log_prob, x_val)
            samples = model.sample(n_samples, generator)
    else:
        x_0 = torch.randn(n_samples, 2, generator=generator)
        with torch.no_grad():
            samples = model.sample_from(x_0, dt=1 / steps, method="midpoint").y
        nll = float(-model.log_prob(x_val[:n_nll], dt=0.01).double().mean())
    return {"nll": nll, "gap": nll - rings.data_entropy(),
            "in_band": metrics.in_band_fraction(samples, standardizer)}


def describe(config: TrainingConfig) -> str:
    """A few sentences for a reader: the architecture and training of ``config``, and every
    setting that differs from the exercise's (Sec. 3.3, 4.3), the soft bound on the
    normalizing flow's log-scale included."""
    spec = config_from_dict(type(config), {
        **PRESETS["spec"]["cfm" if getattr(config, "n_classes", None) else
                          "nf" if isinstance(config, NFConfig) else "fm"],
        "seed": config.seed, "compile": config.compile})
    training = (f"Adam, learning rate {config.lr:g} with cosine annealing to 0, "
                f"{config.n_points:,} training points, {config.epochs} epochs of batches of "
                f"{config.batch_size}")
    if isinstance(config, NFConfig) and config.transform == "spline":
        text = (f"Normalizing flow: {config.n_couplings} rational-quadratic spline coupling "
                f"layers (Durkan et al. 2019; {config.bins} bins on [-{config.bound:g}, "
                f"{config.bound:g}], the identity outside) in place of Eq. 3's affine map, a "
                f"swap of the two coordinates between consecutive ones; each layer's widths, "
                f"heights and slopes come from one MLP of {config.n_linear} Linear layers, "
                f"hidden width {config.hidden}, LeakyReLU({config.negative_slope:g}) between "
                f"them. {training}.")
    elif isinstance(config, NFConfig):
        text = (f"Normalizing flow: {config.n_couplings} affine coupling layers (Eq. 3-6), a "
                f"swap of the two coordinates (the permutation) between consecutive ones; "
                f"each layer has two MLPs (for log s and for b) of {config.n_linear} Linear "
                f"layers, hidden width {config.hidden}, LeakyReLU({config.negative_slope:g}) "
                f"between them. {training}.")
        if config.log_s_bound is not None:
            bound = f"{config.log_s_bound:g}"
            text += (f" One change to Eq. 3: the log-scale is soft-bounded, log s = {bound} "
                     f"tanh(r / {bound}) of the network's output r (a layer scales by at "
                     f"most e^{bound}); a LeakyReLU network is linear far from the data, so "
                     f"an unbounded exp(log s) of a far point grows exponentially and "
                     f"compounds over the layers until the loss overflows.")
    else:
        conditional = config.n_classes is not None
        text = ("Conditional flow matching" if conditional else "Flow matching") + (
            f": an MLP of {config.n_linear} Linear layers, width {config.hidden}, "
            f"LeakyReLU({config.negative_slope:g}) between them, input (y, t)")
        if conditional:
            text += (f" and the class through nn.Embedding({config.n_classes}, "
                     f"{config.embed_dim}), mixed with (y, t) by the first Linear layer")
        text += f". {training}; sampling by Euler steps of dt = {config.dt:g}."
    # bins and bound have no value in the exercise; a spline flow has no log-scale bound
    unused = {"seed", "compile", "n_val", "bins", "bound"} | (
        {"log_s_bound"} if getattr(config, "transform", "") == "spline" else set())
    changed = [f"{f.name} = {getattr(config, f.name)!r} (exercise: {getattr(spec, f.name)!r})"
               for f in dataclasses.fields(config)
               if f.name not in unused and getattr(config, f.name) != getattr(spec, f.name)]
    text += (" Settings that differ from the exercise's: " + "; ".join(changed) + "."
             if changed else " Every other setting is the exercise's.")
    return textwrap.fill(text, width=96)
