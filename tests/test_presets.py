"""Named configurations: the exercise's stays the default, the strong one is its ladder
(plain data, checked literally), targets are checked in their direction."""

import dataclasses

import pytest

from flows_src import presets
from flows_src.config import FMConfig, NFConfig


def test_spec_is_the_config_defaults():
    assert presets.config("nf") == NFConfig()
    assert presets.config("fm") == FMConfig()
    assert presets.config("cfm") == FMConfig(n_classes=5)


def test_none_keeps_the_presets_value_zero_is_an_error_and_seed_is_always_taken():
    strong = presets.config("fm", "strong")
    again = presets.config("fm", "strong", epochs=None, lr=None, batch_size=None, seed=0)
    assert again == strong
    assert presets.config("fm", "strong", epochs=3, seed=5).epochs == 3
    assert presets.config("nf", "spec", seed=5).seed == 5
    assert presets.config("nf", "spec", compile=False).compile is False
    # 0 is a value like any other, not "the preset's": Delta t = 0 is refused, not replaced
    for field, range_ in (("dt", r"a number in \(0, 1\]"), ("epochs", "an integer >= 1"),
                          ("lr", r"a number in \(0, 1\)")):
        with pytest.raises(ValueError, match=f"^{field} must be {range_}, got 0"):
            presets.config("fm", "spec", **{field: 0})
    with pytest.raises(ValueError, match="^seed must be"):
        presets.config("nf", "spec", seed=None)


def test_unknown_family_or_preset_is_one_line():
    with pytest.raises(ValueError, match="preset must be one of 'spec', 'strong'"):
        presets.config("nf", "huge")
    with pytest.raises(ValueError, match="family must be one of"):
        presets.config("gan")


@pytest.mark.parametrize("family", ["nf", "fm", "cfm"])
def test_the_ladder_climbs_from_spec_to_strong(family):
    steps = presets.ladder(family, epochs=3, seed=1)
    assert steps[0][1] == presets.config(family, "spec", epochs=3, seed=1)
    # each step changes what its label says and keeps the steps before it
    for (_, before), (label, after), (_, change) in zip(steps, steps[1:],
                                                        presets.LADDERS[family]):
        assert label.startswith("+ ")
        assert dataclasses.replace(before, **change) == after
    # the last step is the strong preset at the ladder's length
    assert steps[-1][1] == presets.config(family, "strong", epochs=3, seed=1)


@pytest.mark.parametrize("family", ["nf", "fm", "cfm"])
def test_each_ladder_ends_at_its_strong_preset(family):
    # the data itself, not the configs it makes: spec, every step of the ladder in order,
    # then the length of training, is the strong preset field for field
    fields = dict(presets.PRESETS["spec"][family])
    for _, step in presets.LADDERS[family]:
        fields.update(step)
    fields.update(presets.TRAINING[family])
    assert fields == presets.PRESETS["strong"][family]


@pytest.mark.parametrize("family", ["nf", "fm", "cfm"])
def test_strong_is_bigger_and_conditional_stays_conditional(family):
    spec, strong = presets.config(family), presets.config(family, "strong")
    assert strong.model.hidden > spec.model.hidden
    assert strong.n_points == spec.n_points and strong.n_val == spec.n_val
    if family == "cfm":
        assert strong.model.n_classes == spec.model.n_classes == 5


def test_a_preset_s_flat_fields_land_in_their_parts():
    config = presets.config("cfm", "strong", dt=0.01)
    fields = presets.PRESETS["strong"]["cfm"]
    assert config.model == FMConfig().model.__class__(
        hidden=fields["hidden"], time_features=fields["time_features"], n_classes=5)
    assert config.objective.time_power == fields["time_power"] and config.sampler.dt == 0.01
    assert (config.training.batch_size, config.training.lr, config.training.epochs) == (
        fields["batch_size"], fields["lr"], fields["epochs"])
    assert set(FMConfig.field_names()) >= {"hidden", "coupling", "epochs", "dt"}
    with pytest.raises(ValueError, match="^NFConfig has no field"):
        presets.config("nf", dt=0.01)


def test_targets_are_checked_in_their_direction():
    checks = presets.check_targets("fm", "strong",
                                   {"in_band": 0.96, "gap": 0.2, "train_seconds": 299})
    assert [(c["measure"], c["target"], c["met"]) for c in checks] == [
        ("in_band", ">= 0.96", True), ("gap", "<= 0.1", False),
        ("train_seconds", "<= 300", True)]
    assert [c["met"] for c in presets.check_targets(
        "cfm", "strong", {"accuracy": 0.984, "train_seconds": 301})] == [False, False]
    assert presets.check_targets("nf", "spec", {}) == []  # the exercise's preset has none
    with pytest.raises(KeyError):  # a run without the measure is an error, not a pass
        presets.check_targets("nf", "spline", {"in_band": 0.99})
    for family, preset in presets.TARGETS:
        assert family in presets.PRESETS[preset], (family, preset)
