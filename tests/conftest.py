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
    "beyond": {"n_points": 2000, "n_val": 500, "n_eval": 300, "n_nll": 30, "ot_epochs": 1},
    "conditional_flow_matching": {"n_points": 2000, "n_val": 500, "epochs": 1, "dt": 0.01,
                                  "n_per_class": 100, "n_nearest": 500},
}
#: The order notebooks run in: a notebook reads the results of those before it.
ORDER = ["data", "normalizing_flow", "flow_matching", "beyond", "conditional_flow_matching"]


@pytest.fixture(scope="session")
def papermill_runs(tmp_path_factory):
    """Every notebook run once under papermill with tiny parameters, in ORDER, into one runs
    folder (a notebook reads the results of the ones before it); shared by the notebook and
    report tests."""
    sys.path.insert(0, str(ROOT / "tools"))
    import notebooks as tool

    root = tmp_path_factory.mktemp("papermill")
    for name in ORDER:
        pairs = [[k, str(v)] for k, v in TINY[name].items()] + [["runs_root", str(root)]]
        tool.run(name, pairs, quiet=True)
    return root
