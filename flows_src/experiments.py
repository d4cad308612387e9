"""The model families, and building, loading and evaluating a run: the config of a family
under a preset, the model of a config, the model a notebook trained (from its run folder), its
scores, and a reader's description of its config.

The presets themselves (plain data) are :mod:`flows_src.presets`.
"""

from __future__ import annotations

import dataclasses
import os
import textwrap

import torch
from torch import Tensor

from flows_src import metrics, registry, rings
from flows_src.config import FMConfig, NFConfig, TrainingConfig, config_from_dict
from flows_src.density import DensityModel
from flows_src.flow_matching import FlowMatching
from flows_src.history import History
from flows_src.normalizing_flow import NormalizingFlow
from flows_src.presets import LADDERS, PRESETS
from flows_src.rings import Standardizer
from flows_src.runs import load_torch, run_file, run_metrics
from flows_src.sampler import ODESampler
from flows_src.training import load_checkpoint

__all__ = ["FAMILIES", "NOTEBOOKS", "config", "ladder", "build", "load_run", "evaluate",
           "evaluate_conditional", "describe"]

#: The model families, each by its model class, whose ``config_class`` is the family's config
#: class (``"cfm"``: class-conditional flow matching). A new family is a row here and its
#: notebook's row in :mod:`flows_src.registry`; it runs at its config class's defaults until
#: :data:`flows_src.presets.PRESETS` names it.
FAMILIES: dict[str, type[DensityModel]] = {"nf": NormalizingFlow, "fm": FlowMatching,
                                           "cfm": FlowMatching}

#: The notebook that trains each family (the table of notebooks: :mod:`flows_src.registry`).
NOTEBOOKS = {nb.family: nb.name for nb in registry.NOTEBOOKS if nb.family is not None}


def config(family: str, preset: str = "spec", **fields) -> NFConfig | FMConfig:
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
    return FAMILIES[family].config_class(**{**_preset(family, preset), **_given(fields)})


def ladder(family: str, **fields) -> list[tuple[str, NFConfig | FMConfig]]:
    """``spec``, then each step of :data:`~flows_src.presets.LADDERS` on top of the ones
    before it (the last is ``strong`` but for :data:`~flows_src.presets.TRAINING`), as
    ``(label, config)`` pairs with ``fields`` (as in :func:`config`) on top of each; ``spec``
    alone for a family without a ladder."""
    steps = [("spec (the exercise)", config(family, "spec", **fields))]
    config_class, changed = FAMILIES[family].config_class, dict(_preset(family, "spec"))
    for label, step in LADDERS.get(family, []):
        changed.update(step)
        steps.append((f"+ {label}", config_class(**{**changed, **_given(fields)})))
    return steps


def _preset(family: str, preset: str) -> dict:
    """The fields ``preset`` sets for ``family``: none under ``spec`` unless it names them."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(map(repr, PRESETS))}, "
                         f"got {preset!r}")
    if preset == "spec":
        return PRESETS["spec"].get(family, {})
    if family not in PRESETS[preset]:
        has = ["spec", *(name for name in PRESETS if name != "spec" and family in PRESETS[name])]
        raise ValueError(f"family {family!r} has no preset {preset!r}; its presets: "
                         f"{', '.join(map(repr, has))}")
    return PRESETS[preset][family]


def _given(fields: dict) -> dict:
    """``fields`` less those that keep the preset's value (``None``; never ``seed``)."""
    return {key: value for key, value in fields.items() if key == "seed" or value is not None}


def build(config: NFConfig | FMConfig) -> NormalizingFlow | FlowMatching:
    """An untrained model of ``config``'s family: the class of :data:`FAMILIES` whose
    ``config_class`` ``config`` is."""
    models = {model.config_class: model for model in FAMILIES.values()}
    return models[type(config)](config)


def load_run(family: str, seed: int, runs_root: str | os.PathLike = "runs",
             preset: str = "spec") -> tuple[NormalizingFlow | FlowMatching, History, dict]:
    """The model a notebook trained (``family``'s notebook with ``seed`` and ``preset``),
    rebuilt from the config saved with it, in eval mode; its history and ``metrics.json``.

    A missing run stops with one line naming the notebook to run first.
    """
    path = run_file(NOTEBOOKS[family], seed, "model.pt", runs_root, preset)
    model = build(config_from_dict(FAMILIES[family].config_class, load_torch(path)["config"]))
    history, _ = load_checkpoint(model, path)
    return model.eval(), history, run_metrics(NOTEBOOKS[family], seed, runs_root, preset)


def evaluate(model: DensityModel, x_val: Tensor, standardizer: Standardizer, *,
             n_samples: int = 5000, n_nll: int = 1000, seed: int = 0,
             steps: int = 50) -> dict[str, float]:
    """Held-out NLL, its gap to the data entropy, and the in-band fraction of ``n_samples``
    samples (drawn with seed ``seed``), the same way for either unconditional family.

    An exact likelihood (the normalizing flow's) is scored on all of ``x_val``, an ODE
    likelihood (flow matching's: RK4, dt = 0.01) on its first ``n_nll`` points; a model
    with a solver samples with the midpoint rule in ``steps`` steps (see the beyond
    notebook's solver table for how close that comes to the exercise's 1,000 Euler steps).
    """
    model = model.with_sampler(ODESampler(dt=1 / steps, method="midpoint", nll_dt=0.01))
    with torch.no_grad():
        samples = model.sample(n_samples, torch.Generator().manual_seed(seed))
        nll = metrics.nll(model.log_prob, x_val if model.exact_likelihood else x_val[:n_nll])
    return {"nll": nll, "gap": nll - rings.data_entropy(),
            "in_band": metrics.in_band_fraction(samples, standardizer)}


def evaluate_conditional(model: FlowMatching, standardizer: Standardizer, *,
                         n_per_class: int, seed: int) -> dict:
    """A class-conditional model sampled with its own sampler, ``n_per_class`` points of each
    class from noise seeded with ``seed``: ``accuracy`` (the share in their own ring's band),
    ``per_class`` ``(n_classes,)``, ``in_band`` (in any band), the ``samples`` and the
    ``classes`` they were drawn with (each class's ``n_per_class`` in a row)."""
    classes = torch.arange(model.net.n_classes).repeat_interleave(n_per_class)
    with torch.no_grad():
        samples = model.sample(len(classes), torch.Generator().manual_seed(seed), c=classes)
    per_class, accuracy = metrics.conditional_accuracy(samples, classes, standardizer)
    return {"accuracy": accuracy, "per_class": per_class, "samples": samples,
            "classes": classes, "in_band": metrics.in_band_fraction(samples, standardizer)}


def describe(config: NFConfig | FMConfig) -> str:
    """A few sentences for a reader: the architecture and training of ``config``, and every
    setting that differs from the exercise's (Sec. 3.3, 4.3), the soft bound on the
    normalizing flow's log-scale included."""
    m = config.model
    family = "nf" if isinstance(config, NFConfig) else "cfm" if m.n_classes else "fm"
    spec = type(config)(**_preset(family, "spec"), seed=config.seed, compile=config.compile)
    training = (f"Adam, learning rate {config.lr:g} with cosine annealing to 0, "
                f"{config.n_points:,} training points, {config.epochs} epochs of batches of "
                f"{config.batch_size}")
    spline = family == "nf" and m.transform == "spline"
    if spline:
        text = (f"Normalizing flow: {m.n_couplings} rational-quadratic spline coupling "
                f"layers (Durkan et al. 2019; {m.bins} bins on [-{m.bound:g}, "
                f"{m.bound:g}], the identity outside) in place of Eq. 3's affine map, a "
                f"swap of the two coordinates between consecutive ones; each layer's widths, "
                f"heights and slopes come from one MLP of {m.n_linear} Linear layers, "
                f"hidden width {m.hidden}, LeakyReLU({m.negative_slope:g}) between "
                f"them. {training}.")
    elif family == "nf":
        text = (f"Normalizing flow: {m.n_couplings} affine coupling layers (Eq. 3-6), a "
                f"swap of the two coordinates (the permutation) between consecutive ones; "
                f"each layer has two MLPs (for log s and for b) of {m.n_linear} Linear "
                f"layers, hidden width {m.hidden}, LeakyReLU({m.negative_slope:g}) "
                f"between them. {training}.")
        if m.log_s_bound is not None:
            bound = f"{m.log_s_bound:g}"
            text += (f" One change to Eq. 3: the log-scale is soft-bounded, log s = {bound} "
                     f"tanh(r / {bound}) of the network's output r (a layer scales by at "
                     f"most e^{bound}); a LeakyReLU network is linear far from the data, so "
                     f"an unbounded exp(log s) of a far point grows exponentially and "
                     f"compounds over the layers until the loss overflows.")
    else:
        text = ("Conditional flow matching" if family == "cfm" else "Flow matching") + (
            f": an MLP of {m.n_linear} Linear layers, width {m.hidden}, "
            f"LeakyReLU({m.negative_slope:g}) between them, input (x_t, t)")
        if family == "cfm":
            text += (f" and the class through nn.Embedding({m.n_classes}, "
                     f"{m.embed_dim}), mixed with (x_t, t) by the first Linear layer")
        text += f". {training}; sampling by Euler steps of dt = {config.sampler.dt:g}."
        if config.objective.class_dropout:
            w = f"{config.sampler.guidance:g}"
            text += (f" Trained with {config.objective.class_dropout:.0%} of the labels "
                     f"replaced by a learned 'no class' embedding, so the same network also "
                     f"gives the unconditional velocity v(x_t); " + (
                         f"sampled with classifier-free guidance (Ho & Salimans 2022), "
                         f"v(x_t | c) + {w} (v(x_t | c) - v(x_t))." if config.sampler.guidance
                         else "sampled without guidance (w = 0)."))
    # the exercise gives no spline (bins, bound) and no likelihood solver (nll_dt, nll_method);
    # a spline flow has no log-scale bound
    unused = {"seed", "compile", "n_val", "bins", "bound", "nll_dt", "nll_method"} | (
        {"log_s_bound"} if spline else set())
    ours, theirs = config.flat(), spec.flat()
    order = [f.name for f in dataclasses.fields(TrainingConfig)] + list(ours)  # training first
    changed = [f"{_WORDS.get(name, name)} {_value(ours[name])} (exercise: "
               f"{_value(theirs[name])})" for name in dict.fromkeys(order)
               if name not in unused and ours[name] != theirs[name]]
    text += (" Settings that differ from the exercise's: " + "; ".join(changed) + "."
             if changed else " Every other setting is the exercise's.")
    return textwrap.fill(text, width=96)


#: How :func:`describe` names a config field for a reader.
_WORDS = {
    "n_points": "training points", "epochs": "epochs", "batch_size": "batch size",
    "lr": "learning rate", "max_grad_norm": "gradient-norm clip", "n_couplings":
    "coupling layers", "hidden": "hidden width", "n_linear": "Linear layers per network",
    "negative_slope": "LeakyReLU slope", "log_s_bound": "log-scale bound", "init":
    "initialization", "transform": "coupling transform", "dt": "Euler step", "n_classes":
    "classes", "embed_dim": "class embedding size", "coupling": "noise-data coupling",
    "time_features": "time features", "space_features":
    "Fourier-feature octaves of x_t", "time_power": "training-time power",
    "method": "solver", "class_dropout": "share of labels dropped in training",
    "guidance": "guidance weight",
}


def _value(value: object) -> str:
    """A setting as a reader writes it: ``None`` as "none", numbers with thousands marks."""
    if value is None:
        return "none"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return f"{value:g}" if isinstance(value, float) else str(value)
