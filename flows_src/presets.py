"""Named configurations: the exercise's (``"spec"``) and stronger ones chosen by measurement.

``"spec"`` is the default everywhere and the only preset the hand-in report answers with:
the hyper-parameters of Sec. 3.3 and 4.3, as the config classes' defaults. ``"strong"``
trains each family further within about five minutes on one core of a 2-core laptop; the
beyond notebook (``notebooks/beyond.py``) measures what each of its changes bought, in the
order of :data:`LADDERS`.

A notebook run with ``-p preset strong`` answers the same questions with the strong model,
into ``runs/<notebook>/strong/seed-<s>/``; ``-p preset spline`` (the normalizing flow only)
with rational-quadratic spline couplings.

Plain data, per model family (``"cfm"``: class-conditional flow matching), and the check of
a run against its targets. A preset names flat fields; the family's config class routes each
to its part (model, objective, training, sampler: :mod:`flows_src.config`). The configs the
presets make (:func:`flows_src.experiments.config` and :func:`~flows_src.experiments.ladder`),
and building, loading and evaluating a run of one, are :mod:`flows_src.experiments`.
"""

from __future__ import annotations

__all__ = ["PRESETS", "LADDERS", "TRAINING", "TARGETS", "check_targets", "meets"]

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
        ("wider network (hidden 64 -> 128)", {"hidden": 128}),
        ("batch 128 -> 512, lr 1e-3 -> 2e-3", {"batch_size": 512, "lr": 2e-3}),
        ("time features (4 frequencies)", {"time_features": 4}),
        ("training times nearer t = 1 (power 3)", {"time_power": 3.0}),
        ("Fourier features of x_t (4 octaves)", {"space_features": 4}),
    ],
}
LADDERS["cfm"] = [("wider network (hidden 64 -> 192)", {"hidden": 192}), *LADDERS["fm"][1:],
                  ("classifier-free guidance (10% of labels dropped, w = 0.5)",
                   {"class_dropout": 0.1, "guidance": 0.5})]

#: What ``strong`` sets besides its ladder: the length of training (the ladder's steps are
#: compared at one shorter length): the flow's 24 epochs took 209-225 s in trials on one
#: core beside another training run. Flow matching's networks are trials on the fronts of
#: its studies with a 300-s budget on one core (``make study NAME=fm`` and ``NAME=cfm``, seed
#: 0; ``runs/studies/``), two studies side by side: unconditional, hidden 128 with Fourier
#: features of x_t (4 octaves), 197 epochs: in-band 0.984 and gap 0.058 (hidden 192 with
#: them, 117 epochs: 0.982 and 0.060; hidden 128 without, 200 epochs: 0.959 and 0.111);
#: conditional, hidden 192 with 4 octaves, 96 epochs: accuracy 0.9846 (hidden 128, 195
#: epochs: 0.9846; 6 octaves: 0.9800 at 192, 0.9848 at 128; without: 0.9806); the same network
#: trained with 10% of its labels dropped and sampled with classifier-free guidance of weight
#: 0.5, 95 epochs: accuracy 0.9930 (the weight the best of 0, 0.25, 0.5, 1, 2 in a trial on
#: seed 0; the beyond notebook's guidance table repeats that comparison for each seed).
#: Their lengths stay those of the round before, cut then to about 280 s of two notebooks
#: side by side from the seconds the notebooks measured there (180 epochs of the first took
#: 309 s, 110 of the second 352 s): a trial's epochs come from a few timed steps and can
#: overrun its budget. In a sweep of seeds 0-4 with guidance at 85 epochs they trained
#: 246-285 s and 268-308 s: seed 3's conditional model 8 s over budget, on a machine then
#: about 12% slower for every model; 85 epochs left too thin a margin, so the conditional
#: model now trains 78 (308 s x 78/85 = 283 s at that seed's pace). The round's last sweep
#: (seeds 0-4): 225-246 s and 213-247 s, accuracy 0.9904-0.9934.
TRAINING: dict[str, dict] = {
    "nf": {"epochs": 24},
    "fm": {"epochs": 165},
    "cfm": {"epochs": 78},
}

#: Each preset's fields per family, on top of the config classes' defaults (the exercise's);
#: a family ``spec`` does not name runs at its config class's defaults, and has no other
#: preset until one names it. ``strong`` is every step of :data:`LADDERS` plus
#: :data:`TRAINING` (a test keeps them equal). ``spline`` (the normalizing flow only) swaps
#: the affine coupling for rational-quadratic spline couplings (:mod:`flows_src.spline`),
#: after the neural spline flow that reached in-band 0.974 and gap 0.049 on this data in
#: 300 s on one core (issue 17): 6 transforms of 16 bins on [-5, 5], two hidden layers of
#: 128, batch 512, lr 2e-3 (cosine), the gradient norm clipped at 100 (it never engaged). On
#: seed 0 and one core, 32 epochs reached in-band 0.972 and gap 0.046, 36 epochs 0.979 and
#: 0.041 in 223 s of training (about 20 s more with a cold compile cache).
PRESETS: dict[str, dict[str, dict]] = {
    "spec": {"nf": {}, "fm": {}, "cfm": {"n_classes": 5}},
    "strong": {
        "nf": {"hidden": 32, "n_linear": 4, "init": "he", "max_grad_norm": 100.0,
               "log_s_bound": 2.0, "batch_size": 256, "lr": 5e-4, "epochs": 24},
        "fm": {"hidden": 128, "batch_size": 512, "lr": 2e-3, "time_features": 4,
               "time_power": 3.0, "space_features": 4, "epochs": 165},
        "cfm": {"hidden": 192, "batch_size": 512, "lr": 2e-3, "time_features": 4,
                "time_power": 3.0, "space_features": 4, "class_dropout": 0.1,
                "guidance": 0.5, "epochs": 78, "n_classes": 5},
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

