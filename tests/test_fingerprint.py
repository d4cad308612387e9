"""A trained model is reused while its fingerprint holds: the fingerprint follows the code that
decides the weights (every module the model's code imports), never its documentation."""

import pytest

from flows_src import fingerprints
from flows_src.config import FMConfig, NFConfig
from flows_src.fingerprints import code_modules, fingerprint
from flows_src.flow_matching import FlowMatching
from flows_src.normalizing_flow import NormalizingFlow

MODELS = {"nf": (NormalizingFlow, NFConfig(n_couplings=2, hidden=4, n_linear=2)),
          "fm": (FlowMatching, FMConfig(hidden=8, n_linear=2))}


def test_the_code_is_every_module_the_model_and_its_training_import():
    nf = set(code_modules(NormalizingFlow(MODELS["nf"][1])))
    fm = set(code_modules(FlowMatching(MODELS["fm"][1])))
    shared = {"flows_src.training", "flows_src.history", "flows_src.rings", "flows_src.config"}
    assert shared | {"flows_src.normalizing_flow", "flows_src.couplings"} <= nf
    assert shared | {"flows_src.flow_matching", "flows_src.velocity", "flows_src.fm_loss",
                     "flows_src.paths", "flows_src.ot", "flows_src.sampler",
                     "flows_src.ode"} <= fm
    assert "flows_src.plotting" not in nf | fm and "flows_src.presets" not in nf | fm


@pytest.mark.parametrize("family", MODELS)
def test_documentation_never_changes_the_fingerprint_and_code_always_does(family,
                                                                           monkeypatch):
    build, config = MODELS[family]
    model = build(config)
    before = fingerprint(model, config)
    source = fingerprints._source

    def edited(module, change):
        monkeypatch.setattr(fingerprints, "_source", lambda name: change(source(name))
                            if name == module else source(name))
        return fingerprint(model, config)

    def document(text):  # a reworded docstring, a comment, other line breaks
        return text.replace('"""', '"""Reworded. ', 1).replace("\n\n\n", "\n\n\n\n") + "# x\n"

    for module in code_modules(model):
        assert edited(module, document) == before, module
        assert edited(module, lambda text: text + "\nEDITED = 1\n") != before, module


def test_the_sampler_never_changes_the_fingerprint_and_training_always_does():
    from flows_src import experiments

    config = experiments.config("fm", "spec", hidden=8, n_linear=2)
    model = FlowMatching(config)
    same = [experiments.config("fm", "spec", hidden=8, n_linear=2, dt=0.01),
            experiments.config("fm", "spec", hidden=8, n_linear=2, compile=True)]
    other = [experiments.config("fm", "spec", hidden=8, n_linear=2, lr=2e-3),
             experiments.config("fm", "spec", hidden=8, n_linear=2, time_power=2.0)]
    assert all(fingerprint(model, c) == fingerprint(model, config) for c in same)
    assert all(fingerprint(model, c) != fingerprint(model, config) for c in other)
