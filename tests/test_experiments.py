"""Building, loading and evaluating a run (flows_src/experiments.py): a run's model comes back
from disk as it was trained, both families are scored alike, a config is described."""

import pytest
import torch

from create_data import create_unconditional_olympic_rings
from flows_src import experiments, presets, registry, rings
from flows_src.config import FMConfig, NFConfig
from flows_src.flow_matching import FlowMatching
from flows_src.normalizing_flow import NormalizingFlow
from flows_src.runs import run_dir, write_json
from flows_src.training import train


def test_build_makes_the_family_of_its_config():
    assert isinstance(experiments.build(presets.config("nf")), NormalizingFlow)
    assert isinstance(experiments.build(presets.config("fm")), FlowMatching)
    assert isinstance(experiments.build(presets.config("cfm")), FlowMatching)
    assert experiments.NOTEBOOKS == {f: registry.notebook_of(f) for f in presets.FAMILIES}


def test_load_run_rebuilds_the_saved_architecture(tmp_path):
    config = presets.config("fm", "strong", n_points=1024, n_val=64, epochs=1, seed=2)
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


def test_describe_names_every_setting_that_differs_from_the_exercise():
    def text(family, preset="spec"):  # one line: describe wraps at 96 characters
        return " ".join(experiments.describe(presets.config(family, preset)).split())

    assert text("nf").endswith("Every other setting is the exercise's.")
    assert "Settings that differ from the exercise's:" in text("fm", "strong")
    hidden = presets.PRESETS["strong"]["fm"]["hidden"]
    assert f"hidden width {hidden} (exercise: 64)" in text("fm", "strong")
    assert "gradient-norm clip 100 (exercise: none)" in text("nf", "strong")
    assert "_" not in text("nf", "strong").split("differ")[1]  # words, not field names
    assert "rational-quadratic spline" in text("nf", "spline")
    assert all(len(line) <= 96 for line in experiments.describe(presets.config("cfm")).split("\n"))
