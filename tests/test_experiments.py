"""The model families and building, loading and evaluating a run (flows_src/experiments.py):
a family's config under a preset (the exercise's stays the default, ``None`` keeps a
preset's value, the ladder climbs to the strong preset), a new family needs no preset data,
a run's model comes back from disk as it was trained, both families are scored alike, a
conditional model is scored on seeded samples of each class, a config is described."""

import dataclasses

import pytest
import torch

from create_data import create_unconditional_olympic_rings
from flows_src import experiments, presets, registry, rings
from flows_src.config import FMConfig, NFConfig
from flows_src.flow_matching import FlowMatching
from flows_src.normalizing_flow import NormalizingFlow
from flows_src.runs import run_dir, write_json
from flows_src.training import train


def test_spec_is_the_config_defaults():
    assert experiments.config("nf") == NFConfig()
    assert experiments.config("fm") == FMConfig()
    assert experiments.config("cfm") == FMConfig(n_classes=5)


def test_none_keeps_the_presets_value_zero_is_an_error_and_seed_is_always_taken():
    strong = experiments.config("fm", "strong")
    again = experiments.config("fm", "strong", epochs=None, lr=None, batch_size=None, seed=0)
    assert again == strong
    assert experiments.config("fm", "strong", epochs=3, seed=5).epochs == 3
    assert experiments.config("nf", "spec", seed=5).seed == 5
    assert experiments.config("nf", "spec", compile=False).compile is False
    # 0 is a value like any other, not "the preset's": Delta t = 0 is refused, not replaced
    for field, range_ in (("dt", r"a number in \(0, 1\]"), ("epochs", "an integer >= 1"),
                          ("lr", r"a number in \(0, 1\)")):
        with pytest.raises(ValueError, match=f"^{field} must be {range_}, got 0"):
            experiments.config("fm", "spec", **{field: 0})
    with pytest.raises(ValueError, match="^seed must be"):
        experiments.config("nf", "spec", seed=None)


def test_unknown_family_or_preset_is_one_line():
    with pytest.raises(ValueError, match="preset must be one of 'spec', 'strong'"):
        experiments.config("nf", "huge")
    with pytest.raises(ValueError, match="family must be one of"):
        experiments.config("gan")
    # a preset another family has names the presets this one has
    with pytest.raises(ValueError, match="^family 'fm' has no preset 'spline'; its presets: "
                                         "'spec', 'strong'$"):
        experiments.config("fm", "spline")


@pytest.mark.parametrize("family", ["nf", "fm", "cfm"])
def test_the_ladder_climbs_from_spec_to_strong(family):
    steps = experiments.ladder(family, epochs=3, seed=1)
    assert steps[0][1] == experiments.config(family, "spec", epochs=3, seed=1)
    # each step changes what its label says and keeps the steps before it
    for (_, before), (label, after), (_, change) in zip(steps, steps[1:],
                                                        presets.LADDERS[family]):
        assert label.startswith("+ ")
        assert dataclasses.replace(before, **change) == after
    # the last step is the strong preset at the ladder's length
    assert steps[-1][1] == experiments.config(family, "strong", epochs=3, seed=1)


def test_a_preset_s_flat_fields_land_in_their_parts():
    config = experiments.config("cfm", "strong", dt=0.01)
    fields = presets.PRESETS["strong"]["cfm"]
    assert config.model == FMConfig().model.__class__(
        hidden=fields["hidden"], time_features=fields["time_features"],
        space_features=fields["space_features"], n_classes=5)
    assert config.objective.time_power == fields["time_power"] and config.sampler.dt == 0.01
    assert (config.training.batch_size, config.training.lr, config.training.epochs) == (
        fields["batch_size"], fields["lr"], fields["epochs"])
    assert set(FMConfig.field_names()) >= {"hidden", "coupling", "epochs", "dt"}
    with pytest.raises(ValueError, match="^NFConfig has no field"):
        experiments.config("nf", dt=0.01)


def test_a_new_family_is_one_row_and_runs_at_its_config_defaults(monkeypatch):
    # a family without preset data: the exercise's preset is its config class's defaults,
    # its ladder is that alone, and no other preset has it
    monkeypatch.setitem(experiments.FAMILIES, "nf2", NormalizingFlow)
    assert experiments.config("nf2", seed=4, n_couplings=3) == NFConfig(seed=4, n_couplings=3)
    assert experiments.ladder("nf2", epochs=2) == [("spec (the exercise)", NFConfig(epochs=2))]
    assert isinstance(experiments.build(experiments.config("nf2")), NormalizingFlow)
    with pytest.raises(ValueError, match="^family 'nf2' has no preset 'strong'; its presets: "
                                         "'spec'$"):
        experiments.config("nf2", "strong")


def test_build_makes_the_family_of_its_config():
    for family, model in experiments.FAMILIES.items():
        config = experiments.config(family)
        assert type(config) is model.config_class
        assert type(experiments.build(config)) is model
    assert experiments.FAMILIES["nf"] is NormalizingFlow
    assert experiments.FAMILIES["fm"] is experiments.FAMILIES["cfm"] is FlowMatching
    assert experiments.NOTEBOOKS == {f: registry.notebook_of(f) for f in experiments.FAMILIES}


def test_load_run_rebuilds_the_saved_architecture(tmp_path):
    config = experiments.config("fm", "strong", n_points=1024, n_val=64, epochs=1, seed=2)
    torch.manual_seed(0)
    trained = experiments.build(config)
    assert isinstance(trained, FlowMatching) and trained.config.model.hidden == config.model.hidden
    out = run_dir("flow_matching", 2, tmp_path, "strong")
    train(trained, (torch.randn(1024, 2),), config, checkpoint=out / "model.pt",
          progress=False)
    write_json(out / "metrics.json", {"in_band": 0.5})
    loaded, history, result = experiments.load_run("fm", 2, tmp_path, "strong")
    assert loaded.config == config and not loaded.training
    assert result == {"in_band": 0.5} and len(history.epochs) == 2
    y = torch.randn(4, 2)
    torch.testing.assert_close(loaded.net(y, 0.5), trained.eval().net(y, 0.5))
    with pytest.raises(FileNotFoundError, match="-p preset strong"):
        experiments.load_run("nf", 2, tmp_path, "strong")


def test_evaluate_scores_both_families_alike():
    points, standardizer = create_unconditional_olympic_rings(
        600, verbose=False, seed=0, return_standardizer=True)
    x_val = torch.as_tensor(points, dtype=torch.float32)
    for model in (NormalizingFlow(NFConfig(n_couplings=2)), FlowMatching(FMConfig(hidden=8))):
        scores = experiments.evaluate(model.eval(), x_val, standardizer, n_samples=200,
                                      n_nll=50, steps=5)
        assert set(scores) == {"nll", "gap", "in_band"}
        assert scores["gap"] == pytest.approx(scores["nll"] - rings.data_entropy())
        assert 0 <= scores["in_band"] <= 1 and scores["gap"] > 0  # untrained: far from H


def test_evaluate_conditional_samples_each_class_from_seeded_noise():
    _, standardizer = create_unconditional_olympic_rings(
        600, verbose=False, seed=0, return_standardizer=True)
    torch.manual_seed(0)
    model = FlowMatching(FMConfig(hidden=8, n_classes=5, dt=0.25)).eval()
    scores = experiments.evaluate_conditional(model, standardizer, n_per_class=40, seed=3)
    assert torch.equal(scores["classes"], torch.arange(5).repeat_interleave(40))
    expected = model.sample(200, torch.Generator().manual_seed(3), c=scores["classes"])
    assert torch.equal(scores["samples"], expected)
    again = experiments.evaluate_conditional(model, standardizer, n_per_class=40, seed=4)
    assert not torch.equal(again["samples"], scores["samples"])
    # equal counts per class: overall = mean of the classes; own band is one of the bands
    assert scores["accuracy"] == pytest.approx(scores["per_class"].mean())
    assert 0 <= scores["accuracy"] <= scores["in_band"] <= 1
    raw = standardizer.inverse(scores["samples"].numpy())
    own = rings.in_ring(raw)[range(200), scores["classes"].numpy()]
    assert scores["accuracy"] == pytest.approx(own.mean())


def test_describe_names_every_setting_that_differs_from_the_exercise():
    def text(family, preset="spec"):  # one line: describe wraps at 96 characters
        return " ".join(experiments.describe(experiments.config(family, preset)).split())

    assert text("nf").endswith("Every other setting is the exercise's.")
    assert "Settings that differ from the exercise's:" in text("fm", "strong")
    hidden = presets.PRESETS["strong"]["fm"]["hidden"]
    assert f"hidden width {hidden} (exercise: 64)" in text("fm", "strong")
    assert "gradient-norm clip 100 (exercise: none)" in text("nf", "strong")
    assert "_" not in text("nf", "strong").split("differ")[1]  # words, not field names
    assert "rational-quadratic spline" in text("nf", "spline")
    wrapped = experiments.describe(experiments.config("cfm")).split("\n")
    assert all(len(line) <= 96 for line in wrapped)
