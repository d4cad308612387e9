"""A trained model is reused while its fingerprint holds: the fingerprint follows the code that
decides the weights (every module the model's code imports), never its documentation."""

import pytest

from flows_src import fingerprints
from flows_src.config import FMConfig, NFConfig
from flows_src.fingerprints import code_modules, fingerprint
from flows_src.flow_matching import VelocityField
from flows_src.normalizing_flow import NormalizingFlow

MODELS = {"nf": (NormalizingFlow, NFConfig(n_couplings=2, hidden=4, n_linear=2)),
          "fm": (VelocityField, FMConfig(hidden=8, n_linear=2))}


def test_the_code_is_every_module_the_model_and_its_training_import():
    nf = set(code_modules(NormalizingFlow(MODELS["nf"][1])))
    fm = set(code_modules(VelocityField(MODELS["fm"][1])))
    shared = {"flows_src.training", "flows_src.history", "flows_src.rings", "flows_src.config"}
    assert shared | {"flows_src.normalizing_flow", "flows_src.couplings"} <= nf
    assert shared | {"flows_src.flow_matching", "flows_src.ode", "flows_src.ot"} <= fm
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
