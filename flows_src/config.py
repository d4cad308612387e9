"""Configuration objects: one per model family, defaults = the exercise's hyper-parameters.

The exercise (Sec. 3.3 and 4.3) gives "working parameters tested by us"; they live here and
nowhere else. Notebooks and command-line options override fields with
``dataclasses.replace``; every field is checked when the object is built, so a bad value
stops with one line that names the field and its allowed range.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["TrainingConfig", "NFConfig", "FMConfig", "COUPLINGS", "INITS", "TRANSFORMS",
           "config_from_dict"]

COUPLINGS = ("independent", "ot")
"""How flow matching may pair noise with data (``FMConfig.coupling``)."""

INITS = ("uniform", "he")
"""How the normalizing flow's coupling networks start (``NFConfig.init``)."""

TRANSFORMS = ("affine", "spline")
"""What a normalizing flow's coupling layer does to ``z_r`` (``NFConfig.transform``)."""


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


@dataclass(frozen=True)
class TrainingConfig:
    """What every model family trains with (Sec. 3.3 and 4.3 give the same values).

    Arguments:
        n_points: training points (``number_of_data_points``).
        n_val: held-out points drawn with the training set, never trained on.
        epochs: passes over the training points.
        batch_size: points per optimizer step.
        lr: Adam's learning rate, annealed to 0 by a cosine schedule over all steps.
        seed: seeds the data, the initial weights and the batch order.
        max_grad_norm: before each Adam step, scale the gradient down to this total norm
            when it is larger; ``None`` (the exercise) never clips. One batch holding a
            point that a normalizing flow maps far out can have a gradient ~10^6 times the
            usual; unclipped, its square fills Adam's second-moment estimate and every
            later step is ~0 for thousands of steps (the held-out loss jumps and stays up).
            Setting it also skips a step whose gradient is not finite (clipping would scale
            it to NaN); the history counts the clipped and the skipped steps.
        compile: run the loss through ``torch.compile`` (same model, faster steps after a
            warm-up of about a minute; falls back to eager where no compiler works).
    """

    n_points: int = 250_000
    n_val: int = 10_000
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    max_grad_norm: float | None = None
    compile: bool = False

    def __post_init__(self) -> None:
        _check_int("n_points", self.n_points, 1)
        _check_int("n_val", self.n_val, 1)
        _check_int("epochs", self.epochs, 1)
        _check_int("batch_size", self.batch_size, 1)
        if self.batch_size > self.n_points:
            raise ValueError(f"batch_size must be <= n_points ({self.n_points}), "
                             f"got {self.batch_size}")
        _check_int("seed", self.seed, 0)
        if isinstance(self.lr, bool) or not (isinstance(self.lr, (int, float))
                                             and 0 < self.lr < 1):
            raise ValueError(f"lr must be a number in (0, 1), got {self.lr!r}")
        if self.max_grad_norm is not None and not (
                isinstance(self.max_grad_norm, (int, float))
                and not isinstance(self.max_grad_norm, bool) and self.max_grad_norm > 0):
            raise ValueError(f"max_grad_norm must be a positive number or None, "
                             f"got {self.max_grad_norm!r}")


@dataclass(frozen=True)
class NFConfig(TrainingConfig):
    """The normalizing flow of Sec. 3.3.

    Arguments:
        n_couplings: coupling layers, a permutation between consecutive ones.
        hidden: width of the hidden layers of each coupling MLP.
        n_linear: Linear layers per MLP (two MLPs per affine coupling layer: log s and b;
            one per spline coupling layer).
        negative_slope: of the LeakyReLU between the Linear layers.
        log_s_bound: soft bound B on each layer's log-scale, log s = B tanh(r / B) of the
            network's output r; ``None`` for the unbounded output. Our one addition to the
            exercise's architecture: a LeakyReLU network is linear far from the data, so
            exp(log s) of an outlier grows exponentially and compounds over the layers; with
            the exercise's settings and seed 0 the loss overflowed to inf in epoch 3. With
            B = 5 a layer scales by at most e^5 (about 150x), far more than the data needs.
        init: ``"uniform"`` (the exercise): ``nn.Linear``'s default, U(+-1/sqrt(fan_in)),
            for every layer. It shrinks the variance of the activations ~6x per layer, so a
            5-layer network starts almost constant in its input. ``"he"``: the hidden
            layers' weights He-uniform for the LeakyReLU (the variance kept through the
            depth) and their biases 0, and the output layers all zero, so every coupling
            layer, and the flow, starts as the identity.
        transform: ``"affine"`` (the exercise, Eq. 3) or ``"spline"``: a monotone
            rational-quadratic spline of ``bins`` bins on [-bound, bound], the identity
            outside (Durkan et al. 2019; :mod:`flows_src.spline`); ``log_s_bound`` is then
            unused.
        bins: the spline's bins K, in [2, 256].
        bound: the spline's half-width B (the data are standardized: most of it lies in
            [-3, 3]).
    """

    n_couplings: int = 15
    hidden: int = 8
    n_linear: int = 5
    negative_slope: float = 0.01
    log_s_bound: float | None = 5.0
    init: str = "uniform"
    transform: str = "affine"
    bins: int = 8
    bound: float = 5.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_int("n_couplings", self.n_couplings, 1)
        if self.transform not in TRANSFORMS:
            raise ValueError(f"transform must be one of {', '.join(map(repr, TRANSFORMS))}, "
                             f"got {self.transform!r}")
        if isinstance(self.bins, bool) or not isinstance(self.bins, int) or not (
                2 <= self.bins <= 256):
            raise ValueError(f"bins must be an integer in [2, 256], got {self.bins!r}")
        if isinstance(self.bound, bool) or not (
                isinstance(self.bound, (int, float)) and 0 < self.bound <= 100):
            raise ValueError(f"bound must be a number in (0, 100], got {self.bound!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {', '.join(map(repr, INITS))}, "
                             f"got {self.init!r}")
        if self.log_s_bound is not None and not (
                isinstance(self.log_s_bound, (int, float)) and self.log_s_bound > 0):
            raise ValueError(f"log_s_bound must be a positive number or None, "
                             f"got {self.log_s_bound!r}")
        _check_int("hidden", self.hidden, 1)
        _check_int("n_linear", self.n_linear, 2)


@dataclass(frozen=True)
class FMConfig(TrainingConfig):
    r"""The flow-matching velocity field of Sec. 4.3, unconditional or class-conditional.

    Arguments:
        hidden: width of every hidden Linear layer (the exercise asks for at least 64).
        n_linear: Linear layers in the network (the exercise: 4-5).
        dt: the Euler step of Alg. 2, in (0, 1].
        n_classes: ``None`` for the unconditional model, else the number of classes fed
            through ``nn.Embedding``.
        embed_dim: size of the class embedding.
        negative_slope: of the LeakyReLU between the Linear layers.
        coupling: how the loss pairs noise with data: ``"independent"`` (the exercise's
            Alg. 1) or ``"ot"``, minibatch optimal transport (OT-CFM, straighter paths; see
            :mod:`flows_src.ot`).
        time_features: 0 feeds the network ``t`` itself (the exercise); ``k > 0`` adds
            :math:`\sin(\pi j t), \cos(\pi j t)` for :math:`j = 1..k`, so the first layer
            can resolve how the velocity changes fast near :math:`t = 1`.
        time_power: the training times are :math:`t = 1 - (1 - u)^p`, :math:`u \sim U[0, 1]`;
            :math:`p = 1` is the exercise's uniform :math:`t`, :math:`p > 1` puts more of the
            batch near :math:`t = 1`, where the field must resolve the thin bands. The same
            minimizer (any density of :math:`t` that is positive on :math:`[0, 1]` leaves the
            regression's target unchanged), a different weighting of its errors.
    """

    hidden: int = 64
    n_linear: int = 5
    dt: float = 1e-3
    n_classes: int | None = None
    embed_dim: int = 8
    negative_slope: float = 0.01
    coupling: str = "independent"
    time_features: int = 0
    time_power: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_int("hidden", self.hidden, 1)
        _check_int("n_linear", self.n_linear, 2)
        _check_int("time_features", self.time_features, 0)
        if not (isinstance(self.time_power, (int, float)) and 0 < self.time_power <= 10):
            raise ValueError(f"time_power must be a number in (0, 10], got {self.time_power!r}")
        if self.coupling not in COUPLINGS:
            raise ValueError(f"coupling must be one of {', '.join(map(repr, COUPLINGS))}, "
                             f"got {self.coupling!r}")
        _check_int("embed_dim", self.embed_dim, 1)
        if self.n_classes is not None:
            _check_int("n_classes", self.n_classes, 1)
        if not (isinstance(self.dt, (int, float)) and 0 < self.dt <= 1):
            raise ValueError(f"dt must be a number in (0, 1], got {self.dt!r}")


def config_from_dict(cls: type, values: dict) -> TrainingConfig:
    """Rebuild a config saved with ``dataclasses.asdict``; unknown fields are an error."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {', '.join(unknown)}")
    return cls(**values)
