"""Configuration objects, composed: a run's config holds small parts, each checked on its own.

- :class:`TrainingConfig`: what every family trains with (Sec. 3.3 and 4.3 give the same);
- :class:`FlowConfig`: the normalizing flow's architecture (Sec. 3.3);
- :class:`VelocityConfig`: the flow-matching network's architecture (Sec. 4.3);
- :class:`ObjectiveConfig`: how flow matching's loss pairs noise with data and draws times;
- :class:`~flows_src.sampler.ODESampler`: how flow matching integrates (Alg. 2).

A run is :class:`NFConfig` (``model``, ``training``) or :class:`FMConfig` (``model``,
``objective``, ``training``, ``sampler``). The defaults are the exercise's "working parameters
tested by us" (Sec. 3.3 and 4.3); they live here and nowhere else. A run is built and changed
with the parts' flat field names, each routed to the part that has it
(``FMConfig(hidden=256, dt=0.01)``, ``dataclasses.replace(config, epochs=3)``); every value
is checked when its part is built, so a bad one stops with one line that names the field and
its allowed range. The trainer (:mod:`flows_src.training`) reads the training part's fields
through the run (``config.epochs``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from flows_src.sampler import ODESampler

__all__ = ["TrainingConfig", "FlowConfig", "VelocityConfig", "ObjectiveConfig", "ODESampler",
           "NFConfig", "FMConfig", "COUPLINGS", "INITS", "TRANSFORMS", "config_from_dict"]

COUPLINGS = ("independent", "ot")
"""How flow matching may pair noise with data (``ObjectiveConfig.coupling``)."""

INITS = ("uniform", "he")
"""How the normalizing flow's coupling networks start (``FlowConfig.init``)."""

TRANSFORMS = ("affine", "spline")
"""What a normalizing flow's coupling layer does to ``z_r`` (``FlowConfig.transform``)."""


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, "
                         f"got {value!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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
        for name, low in (("n_points", 1), ("n_val", 1), ("epochs", 1), ("batch_size", 1)):
            _check_int(name, getattr(self, name), low)
        if self.batch_size > self.n_points:
            raise ValueError(f"batch_size must be <= n_points ({self.n_points}), "
                             f"got {self.batch_size}")
        _check_int("seed", self.seed, 0)
        if not (_is_number(self.lr) and 0 < self.lr < 1):
            raise ValueError(f"lr must be a number in (0, 1), got {self.lr!r}")
        if self.max_grad_norm is not None and not (
                _is_number(self.max_grad_norm) and self.max_grad_norm > 0):
            raise ValueError(f"max_grad_norm must be a positive number or None, "
                             f"got {self.max_grad_norm!r}")


@dataclass(frozen=True)
class FlowConfig:
    """The normalizing flow's architecture (Sec. 3.3).

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
        _check_int("n_couplings", self.n_couplings, 1)
        _check_choice("transform", self.transform, TRANSFORMS)
        if isinstance(self.bins, bool) or not isinstance(self.bins, int) or not (
                2 <= self.bins <= 256):
            raise ValueError(f"bins must be an integer in [2, 256], got {self.bins!r}")
        if not (_is_number(self.bound) and 0 < self.bound <= 100):
            raise ValueError(f"bound must be a number in (0, 100], got {self.bound!r}")
        _check_choice("init", self.init, INITS)
        if self.log_s_bound is not None and not (
                isinstance(self.log_s_bound, (int, float)) and self.log_s_bound > 0):
            raise ValueError(f"log_s_bound must be a positive number or None, "
                             f"got {self.log_s_bound!r}")
        _check_int("hidden", self.hidden, 1)
        _check_int("n_linear", self.n_linear, 2)


@dataclass(frozen=True)
class VelocityConfig:
    r"""The flow-matching network's architecture (Sec. 4.3), unconditional or
    class-conditional (:class:`~flows_src.velocity.VelocityNet`).

    Arguments:
        hidden: width of every hidden Linear layer (the exercise asks for at least 64).
        n_linear: Linear layers in the network (the exercise: 4-5).
        negative_slope: of the LeakyReLU between the Linear layers.
        time_features: 0 feeds the network ``t`` itself (the exercise); ``k > 0`` adds
            :math:`\sin(\pi j t), \cos(\pi j t)` for :math:`j = 1..k`, so the first layer
            can resolve how the velocity changes fast near :math:`t = 1`.
        space_features: 0 feeds the network ``x_t`` itself (the exercise); ``m > 0`` adds
            :math:`\sin(2^j \pi x / 2), \cos(2^j \pi x / 2)` of each coordinate :math:`x`,
            :math:`j = 0..m-1` (Fourier features, Tancik et al. 2020): periods from 4, about
            the standardized data's extent, down to :math:`4 / 2^{m-1}`, so that the network
            can bend its field at the scale of a ring's band, which a LeakyReLU MLP of
            :math:`x_t` learns slowly (its spectral bias).
        n_classes: ``None`` for the unconditional model, else the number of classes fed
            through ``nn.Embedding``.
        embed_dim: size of the class embedding.
    """

    hidden: int = 64
    n_linear: int = 5
    negative_slope: float = 0.01
    time_features: int = 0
    n_classes: int | None = None
    embed_dim: int = 8
    space_features: int = 0

    def __post_init__(self) -> None:
        _check_int("hidden", self.hidden, 1)
        _check_int("n_linear", self.n_linear, 2)
        _check_int("time_features", self.time_features, 0)
        _check_int("space_features", self.space_features, 0)
        _check_int("embed_dim", self.embed_dim, 1)
        if self.n_classes is not None:
            _check_int("n_classes", self.n_classes, 1)


@dataclass(frozen=True)
class ObjectiveConfig:
    r"""What flow matching's loss (Eq. 16, :mod:`flows_src.fm_loss`) regresses on.

    Arguments:
        coupling: how the loss pairs noise with data: ``"independent"`` (the exercise's
            Alg. 1) or ``"ot"``, minibatch optimal transport (OT-CFM, straighter paths; see
            :mod:`flows_src.ot`), in blocks of the training batch.
        time_power: the training times are :math:`t = 1 - (1 - u)^p`, :math:`u \sim U[0, 1]`;
            :math:`p = 1` is the exercise's uniform :math:`t`, :math:`p > 1` puts more of the
            batch near :math:`t = 1`, where the field must resolve the thin bands. The same
            minimizer (any density of :math:`t` that is positive on :math:`[0, 1]` leaves the
            regression's target unchanged), a different weighting of its errors.
        class_dropout: the class-conditional model only: the share of training labels
            replaced by a learned "no class" embedding, so that one network learns both
            :math:`v_t(x_t \mid c)` and :math:`v_t(x_t)` and can be sampled with
            classifier-free guidance (``ODESampler.guidance``; Ho & Salimans 2022); 0 (the
            exercise) keeps every label.
    """

    coupling: str = "independent"
    time_power: float = 1.0
    class_dropout: float = 0.0

    def __post_init__(self) -> None:
        if not (_is_number(self.time_power) and 0 < self.time_power <= 10):
            raise ValueError(f"time_power must be a number in (0, 10], got {self.time_power!r}")
        if not (_is_number(self.class_dropout) and 0 <= self.class_dropout < 1):
            raise ValueError(f"class_dropout must be a number in [0, 1), "
                             f"got {self.class_dropout!r}")
        _check_choice("coupling", self.coupling, COUPLINGS)


def _training(name: str) -> property:
    return property(lambda self: getattr(self.training, name),
                    doc=f"The training part's ``{name}``.")


class _Run:
    """A run's config: its parts (the dataclass fields), built from flat field names."""

    def __init__(self, **values) -> None:
        for f in dataclasses.fields(self):
            part = values.pop(f.name, None) or f.default_factory()
            own = {name: values.pop(name) for name in _names(type(part)) if name in values}
            object.__setattr__(self, f.name, dataclasses.replace(part, **own) if own else part)
        if values:
            raise ValueError(f"{type(self).__name__} has no field(s) {', '.join(sorted(values))}")
        self._check_parts()

    def _check_parts(self) -> None:
        """Checks that need two parts (each part checks its own fields)."""

    @classmethod
    def field_names(cls) -> list[str]:
        """Every part's field names, part by part: the names a run is built with."""
        return [name for f in dataclasses.fields(cls)
                for name in _names(type(f.default_factory()))]

    def flat(self) -> dict[str, object]:
        """``{field name: value}`` over every part, part by part."""
        return {name: getattr(getattr(self, f.name), name)
                for f in dataclasses.fields(self) for name in _names(type(getattr(self, f.name)))}

    # what the trainer reads (flows_src.training): the training part's fields
    n_points = _training("n_points")
    n_val = _training("n_val")
    epochs = _training("epochs")
    batch_size = _training("batch_size")
    lr = _training("lr")
    seed = _training("seed")
    max_grad_norm = _training("max_grad_norm")
    compile = _training("compile")


def _names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


@dataclass(frozen=True, init=False)
class NFConfig(_Run):
    """A normalizing-flow run (Sec. 3.3): its ``model`` (:class:`FlowConfig`) and
    ``training``.

    Example:
        >>> config = NFConfig(hidden=32, epochs=3)
        >>> config.model.hidden, config.training.epochs, config.epochs
        (32, 3, 3)
    """

    model: FlowConfig = field(default_factory=FlowConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)


@dataclass(frozen=True, init=False)
class FMConfig(_Run):
    """A flow-matching run (Sec. 4.3), unconditional or class-conditional: its ``model``
    (:class:`VelocityConfig`), ``objective`` (:class:`ObjectiveConfig`), ``training`` and
    ``sampler`` (:class:`~flows_src.sampler.ODESampler`).

    Example:
        >>> config = FMConfig(n_classes=5, coupling="ot", dt=0.01)
        >>> config.model.n_classes, config.objective.coupling, config.sampler.dt
        (5, 'ot', 0.01)
    """

    model: VelocityConfig = field(default_factory=VelocityConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    sampler: ODESampler = field(default_factory=ODESampler)

    def _check_parts(self) -> None:
        if self.objective.class_dropout and self.model.n_classes is None:
            raise ValueError("class_dropout needs a class-conditional model (n_classes set)")
        if self.sampler.guidance and not self.objective.class_dropout:
            raise ValueError("guidance needs a model trained with dropped labels "
                             "(class_dropout > 0)")


def config_from_dict(cls: type, values: dict) -> NFConfig | FMConfig | TrainingConfig:
    """Rebuild a config saved with ``dataclasses.asdict`` (a run's parts nested); unknown
    fields are an error."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {', '.join(unknown)}")
    if not issubclass(cls, _Run):
        return cls(**values)
    return cls(**{f.name: config_from_dict(type(f.default_factory()), values[f.name])
                  for f in dataclasses.fields(cls) if f.name in values})
