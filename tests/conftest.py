"""Shared test settings: the tiny parameters with which every notebook (and its exported
script) is run by the tests. The project is installed (``pip install -e .``) and pytest puts
``tools/`` on the path (pyproject.toml), so tests import both as the tools themselves do."""

from pathlib import Path

import pytest

from flows_src import registry

ROOT = Path(__file__).resolve().parents[1]

#: Per notebook: parameters small enough to run the whole notebook in seconds (a notebook
#: not named here runs with its defaults).
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
ORDER = registry.names()
#: The notebooks that take a preset; beyond loads their runs of both presets.
PRESET_NOTEBOOKS = registry.names(preset=True)
#: Every run the tests make, in order: (notebook, tiny parameters); those that read every
#: preset's runs (after the last notebook taking a preset) come after the strong runs.
_AFTER = ORDER.index(PRESET_NOTEBOOKS[-1]) + 1
RUNS = ([(name, TINY.get(name, {})) for name in ORDER[:_AFTER]]
        + [(name, {**TINY.get(name, {}), "preset": "strong"}) for name in PRESET_NOTEBOOKS]
        + [("normalizing_flow", {**TINY["normalizing_flow"], "preset": "spline"})]
        + [(name, TINY.get(name, {})) for name in ORDER[_AFTER:]])


@pytest.fixture(scope="session")
def papermill_runs(tmp_path_factory):
    """Every notebook run once under papermill with tiny parameters (RUNS), into one runs
    folder (a notebook reads the results of the ones before it); shared by the notebook and
    report tests."""
    import notebooks as tool

    root = tmp_path_factory.mktemp("papermill")
    for name, params in RUNS:
        pairs = [[k, str(v)] for k, v in params.items()] + [["runs_root", str(root)]]
        tool.run(name, pairs, quiet=True)
    return root
