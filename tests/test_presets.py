"""Named configurations as plain data: the strong preset is its ladder (checked literally),
targets are checked in their direction. The configs they make: tests/test_experiments.py."""

import pytest

from flows_src import experiments, presets


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
    spec, strong = experiments.config(family), experiments.config(family, "strong")
    assert strong.model.hidden > spec.model.hidden
    assert strong.n_points == spec.n_points and strong.n_val == spec.n_val
    if family == "cfm":
        assert strong.model.n_classes == spec.model.n_classes == 5


def test_presets_name_only_known_families():
    for preset, families in presets.PRESETS.items():
        assert set(families) <= set(experiments.FAMILIES), preset
    assert set(presets.LADDERS) <= set(presets.PRESETS["strong"])


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
