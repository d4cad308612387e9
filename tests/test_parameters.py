"""Every parameter of every notebook is checked before the notebook makes anything: by the
model's config, or by flows_src.parameters in the notebook's first code cell."""

import ast

import pytest
from conftest import ROOT

import notebooks as tool
from flows_src import experiments, registry
from flows_src.parameters import RANGES, Range, check_parameters

#: Parameters whose type is all there is to check (the tool and the scripts check types).
TYPED = {"preset", "compile_model", "force", "runs_root"}
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.py"))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_parameter_is_checked_by_the_config_or_by_the_notebook(name):
    source = (ROOT / "notebooks" / f"{name}.py").read_text()
    _, defaults = tool.parameters_cell(tool.jupytext.reads(source, fmt="py:percent"))
    family = registry.family_of(name)
    fields = (set(experiments.FAMILIES[family].config_class.field_names()) if family
              else set())
    calls = [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)
             and getattr(node.func, "id", None) == "check_parameters"]
    assert len(calls) == 1, "the first code cell checks the parameters once"
    checked = {keyword.arg for keyword in calls[0].keywords}
    assert checked == set(defaults) - fields - TYPED
    assert checked <= set(RANGES)
    # before the run folder is made
    assert source.index("check_parameters(") < source.index("out = run_dir(")
    if family:
        assert source.index("experiments.config(") < source.index("out = run_dir(")


def test_ranges_name_the_parameter_and_the_allowed_values():
    check_parameters(seed=0, n_points=2, bonus_class=4, grid_resolution=1, nll_dt=1e-3)
    for values, message in [
        ({"n_eval": 0}, "n_eval must be an integer >= 1, got 0"),
        ({"n_eval": 2.0}, "n_eval must be an integer >= 1, got 2.0"),
        ({"n_eval": True}, "n_eval must be an integer >= 1, got True"),
        ({"bonus_class": 5}, "bonus_class must be an integer in 0..4, got 5"),
        ({"nll_dt": 0.0}, r"nll_dt must be a number in \(0, 1\], got 0.0"),
        ({"nll_dt": float("nan")}, r"nll_dt must be a number in \(0, 1\], got nan"),
        ({"grid_resolution": -0.1}, r"grid_resolution must be a number in \(0, 1\]"),
        ({"n_points": 1}, "n_points must be an integer >= 2, got 1"),
    ]:
        with pytest.raises(ValueError, match=f"^{message}"):
            check_parameters(**values)
    with pytest.raises(TypeError, match="no range is known for unheard_of"):
        check_parameters(unheard_of=1)
    assert str(Range(1)) == "an integer >= 1"
