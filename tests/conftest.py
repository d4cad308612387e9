"""Shared test settings: the project root on the path, and the tiny parameters with which
every notebook (and its exported script) is run by the tests."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: Per notebook: parameters small enough to run the whole notebook in seconds.
TINY = {
    "data": {"n_points": 2000},
    "normalizing_flow": {"n_points": 2000, "n_val": 500, "epochs": 1, "compile_model": False,
                         "n_eval": 500, "grid_resolution": 0.2},
    "flow_matching": {"n_points": 2000, "n_val": 500, "epochs": 1, "n_eval": 500,
                      "n_nll": 50, "nll_dt": 0.1, "dt": 0.01},
    "beyond": {"n_points": 2000, "n_val": 500, "n_eval": 300, "n_nll": 30, "n_show": 200,
               "grid_resolution": 0.5, "ladder_epochs": 1, "ot_epochs": 1},
    "conditional_flow_matching": {"n_points": 2000, "n_val": 500, "epochs": 1, "dt": 0.01,
                                  "n_per_class": 100, "n_nearest": 500},
}
#: The order notebooks run in: a notebook reads the results of those before it.
ORDER = ["data", "normalizing_flow", "flow_matching", "conditional_flow_matching", "beyond"]
#: The notebooks that take a preset; beyond loads their runs of both presets.
PRESET_NOTEBOOKS = ["normalizing_flow", "flow_matching", "conditional_flow_matching"]
#: Every run the tests make, in order: (notebook, tiny parameters).
RUNS = ([(name, TINY[name]) for name in ORDER if name != "beyond"]
        + [(name, {**TINY[name], "preset": "strong"}) for name in PRESET_NOTEBOOKS]
        + [("beyond", TINY["beyond"])])


@pytest.fixture(scope="session")
def papermill_runs(tmp_path_factory):
    """Every notebook run once under papermill with tiny parameters (RUNS), into one runs
    folder (a notebook reads the results of the ones before it); shared by the notebook and
    report tests."""
    sys.path.insert(0, str(ROOT / "tools"))
    import notebooks as tool

    root = tmp_path_factory.mktemp("papermill")
    for name, params in RUNS:
        pairs = [[k, str(v)] for k, v in params.items()] + [["runs_root", str(root)]]
        tool.run(name, pairs, quiet=True)
    return root
