"""Configs, composed: each part checks its own fields; a run routes flat names to its parts,
is saved and rebuilt nested, and shows the trainer its training part."""

import dataclasses

import pytest

from flows_src.config import (
    FlowConfig,
    FMConfig,
    NFConfig,
    ObjectiveConfig,
    ODESampler,
    TrainingConfig,
    VelocityConfig,
    config_from_dict,
)


def test_the_defaults_are_the_exercise():
    fm, nf = FMConfig(), NFConfig()
    assert (fm.model.hidden, fm.model.n_linear, fm.sampler.dt, fm.objective.coupling) == (
        64, 5, 1e-3, "independent")
    assert (nf.model.n_couplings, nf.model.hidden, nf.model.n_linear) == (15, 8, 5)
    assert (nf.training.lr, nf.training.epochs, nf.training.batch_size) == (1e-3, 20, 128)
    assert nf.training == fm.training == TrainingConfig()


def test_flat_names_go_to_their_parts():
    config = FMConfig(hidden=32, coupling="ot", epochs=3, dt=0.01, n_classes=5)
    assert config.model == VelocityConfig(hidden=32, n_classes=5)
    assert config.objective == ObjectiveConfig(coupling="ot")
    assert config.training == TrainingConfig(epochs=3) and config.sampler == ODESampler(dt=0.01)
    assert FMConfig(training=TrainingConfig(lr=0.01), epochs=2).training == TrainingConfig(
        lr=0.01, epochs=2)
    # dataclasses.replace takes flat names too
    assert dataclasses.replace(config, epochs=5, hidden=8) == FMConfig(
        hidden=8, coupling="ot", epochs=5, dt=0.01, n_classes=5)
    assert NFConfig.field_names() == [f.name for f in dataclasses.fields(FlowConfig)] + [
        f.name for f in dataclasses.fields(TrainingConfig)]
    assert set(FMConfig(dt=0.5).flat().items()) >= {("dt", 0.5), ("hidden", 64)}


def test_the_trainer_reads_the_training_part():
    config = NFConfig(epochs=3, batch_size=64, lr=0.01, seed=2, max_grad_norm=1.0)
    assert (config.epochs, config.batch_size, config.lr, config.seed, config.max_grad_norm,
            config.compile, config.n_points) == (3, 64, 0.01, 2, 1.0, False, 250_000)


def test_a_saved_run_comes_back_whole():
    config = FMConfig(hidden=32, coupling="ot", epochs=3, dt=0.01, n_classes=5)
    assert config_from_dict(FMConfig, dataclasses.asdict(config)) == config
    with pytest.raises(ValueError, match="^FMConfig has no field"):
        config_from_dict(FMConfig, {"hidden": 32})  # a flat (older) checkpoint's config


@pytest.mark.parametrize("cls, fields, message", [
    (FMConfig, {"coupling": "sinkhorn"},
     r"^coupling must be one of 'independent', 'ot', got 'sinkhorn'$"),
    (FMConfig, {"time_features": -1}, "^time_features must be an integer >= 0"),
    (FMConfig, {"space_features": -1}, "^space_features must be an integer >= 0"),
    (FMConfig, {"time_power": 0}, r"^time_power must be a number in \(0, 10\]"),
    (FMConfig, {"class_dropout": 1}, r"^class_dropout must be a number in \[0, 1\), got 1$"),
    (FMConfig, {"guidance": -1}, r"^guidance must be a number in \[0, 20\], got -1$"),
    (FMConfig, {"guidance": 0.5, "n_classes": 5},
     r"^guidance needs a model trained with dropped labels \(class_dropout > 0\)$"),
    (FMConfig, {"class_dropout": 0.1}, r"^class_dropout needs a class-conditional model"),
    (FMConfig, {"dt": 0}, r"^dt must be a number in \(0, 1\], got 0$"),
    (FMConfig, {"method": "heun"}, "^method must be one of 'euler', 'midpoint', 'rk4'"),
    (FMConfig, {"batch_size": 10, "n_points": 5}, r"^batch_size must be <= n_points \(5\)"),
    (NFConfig, {"init": "xavier"}, "^init must be one of 'uniform', 'he'"),
    (NFConfig, {"bins": 1}, r"^bins must be an integer in \[2, 256\]"),
    (NFConfig, {"dt": 0.1}, r"^NFConfig has no field\(s\) dt$"),
])
def test_a_bad_value_is_one_line_naming_the_field(cls, fields, message):
    with pytest.raises(ValueError, match=message):
        cls(**fields)
