"""tools/study.py: Optuna studies of quality against training seconds. Two worker processes
share one local storage; the report marks the best trade-offs (the Pareto front)."""

import json

import numpy as np
import optuna
import pytest

import study as tool

#: A study small enough for seconds: 1,000 points, one epoch (a budget far below one epoch's
#: time), a few hundred samples scored.
TINY = ["--budget-seconds", "0.001", "--n-points", "1000", "--n-val", "200", "--n-eval", "200"]


def test_two_workers_share_one_local_storage_and_the_report_marks_the_front(tmp_path):
    args = ["--name", "nf-affine", "--runs-root", str(tmp_path), "--sampler-seed", "0", *TINY]
    assert tool.main([*args, "--trials", "4", "--workers", "2"]) == 0

    out = tmp_path / "studies" / "nf-affine"
    study = optuna.load_study(study_name="nf-affine",
                              storage=tool.storage_of(None, tmp_path, "nf-affine"))
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(study.trials) == len(trials) == 4
    per_worker = {}
    for t in trials:
        per_worker.setdefault(t.user_attrs["worker"], []).append(t.number)
        assert t.user_attrs["epochs"] == 1 and t.user_attrs["config"]["training"]["epochs"] == 1
        assert t.values[1] == t.user_attrs["train_seconds"] > 0
        assert t.values[0] == pytest.approx(1 - t.user_attrs["in_band"] + t.user_attrs["gap"])
    assert sorted(map(len, per_worker.values())) == [2, 2]  # two processes, two trials each

    rows = json.loads((out / "trials.json").read_text())["rows"]
    assert sorted(r["trial"] for r in rows) == [0, 1, 2, 3]
    assert {r["trial"] for r in rows if r["pareto"]} == {t.number for t in study.best_trials}
    table = (out / "table.md").read_text()
    assert table.count("\n| ") == 1 + 4  # the header and one line per trial
    assert (out / "pareto.png").stat().st_size > 10_000

    # a later command adds to the same study; --trials 0 only rebuilds the report
    assert tool.main([*args, "--trials", "1"]) == 0
    assert tool.main([*args, "--trials", "0"]) == 0
    assert len(json.loads((out / "trials.json").read_text())["rows"]) == 5


def test_pareto_front_marks_the_best_trade_offs():
    # (shortfall, seconds), both minimized
    points = [(1.0, 10), (0.5, 20), (0.8, 15), (0.9, 30), (0.5, 20), (0.2, 100), (0.3, 100),
              (0.2, 120)]
    front = tool.pareto_front(points)
    # (0.9, 30) loses to (0.5, 20); (0.3, 100) and (0.2, 120) to (0.2, 100); equal points
    # are both on the front
    assert front.tolist() == [True, True, True, False, True, True, False, False]
    assert tool.pareto_front([(3.0, 1.0)]).tolist() == [True]
    # against the definition, on random points
    rng = np.random.default_rng(0)
    p = rng.integers(0, 6, size=(60, 2)).astype(float)
    dominated = [any((q <= x).all() and (q < x).any() for q in p) for x in p]
    assert tool.pareto_front(p).tolist() == [not d for d in dominated]


def test_budget_sets_the_epochs_and_bad_input_stops_in_one_line(capsys):
    assert tool.plan_epochs(10.0, 0.01, 100) == 10  # 1 s per epoch
    assert tool.plan_epochs(10.0, 0.01, 300) == 3  # whole epochs only, within the budget
    assert tool.plan_epochs(0.001, 0.01, 100) == 1  # at least one
    assert tool.split(5, 2) == [3, 2] and tool.split(1, 3) == [1, 0, 0]
    assert tool.Study("nf", "x", fixed={"no_such_field": 1}).missing_fields() == [
        "no_such_field"]
    assert tool.main(["--name", "nope"]) == 2
    assert tool.main(["--name", "fm", "--workers", "0"]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2 and "--name must be one of nf-affine" in errors[0]
    assert "--workers must be an integer >= 1" in errors[1]


def test_candidates_fit_their_space_and_run_first(tmp_path, monkeypatch):
    for name, definition in tool.STUDIES.items():
        assert definition.outside_space() == [], name
    assert tool.Study("nf", "x", space={"hidden": [16, 32], "lr": ("log", 1e-4, 1e-3)},
                      candidates=[{"hidden": 64, "lr": 1e-2, "bins": 8}]).outside_space() == [
        "candidate 0: hidden=64", "candidate 0: lr=0.01", "candidate 0: bins=8"]

    candidate = {"n_couplings": 8, "hidden": 16, "n_linear": 3, "log_s_bound": 2.0,
                 "batch_size": 128, "lr": 1e-3, tool.SHARE: 1.0}
    monkeypatch.setitem(tool.STUDIES, "tiny", tool.Study(
        "nf", "a candidate, then the sampler", fixed={"init": "he"},
        space=tool.STUDIES["nf-affine"].space, candidates=[candidate]))
    args = ["--name", "tiny", "--runs-root", str(tmp_path), "--sampler-seed", "0", *TINY]
    assert tool.main([*args, "--trials", "2"]) == 0
    assert tool.main([*args, "--trials", "1"]) == 0  # enqueued once per study, not per command
    study = optuna.load_study(study_name="tiny", storage=tool.storage_of(None, tmp_path, "tiny"))
    params = [t.params for t in study.trials]
    assert params[0] == candidate and candidate not in params[1:]


def test_a_field_the_space_gained_later_shows_what_the_older_trials_ran_with():
    definition = tool.Study("cfm", "x", space={"hidden": [16], "class_dropout": [0.0, 0.1],
                                               "guidance": [0.0, 0.5]})
    config = {"model": {"hidden": 16}, "objective": {"class_dropout": 0.0}}
    rows = [{"trial": 0, "pareto": True, "shortfall": 0.1, "train_seconds": 1.0,
             "accuracy": 0.9, "in_band": 0.95, "epochs": 1, "params": {"hidden": 16},
             "config": config},
            {"trial": 1, "pareto": True, "shortfall": 0.05, "train_seconds": 2.0,
             "accuracy": 0.95, "in_band": 0.97, "epochs": 2,
             "params": {"hidden": 16, "class_dropout": 0.1},
             "config": {**config, "objective": {"class_dropout": 0.1}}}]
    lines = tool.markdown(rows, definition, "x").splitlines()
    # trial 0's config had no guidance yet (the field came later): the default, 0
    assert lines[-2].endswith("| 1 | 16 | 0 | 0 |")
    assert lines[-1].endswith("| 2 | 16 | 0.1 | 0 |")


def test_a_point_no_config_allows_is_pruned_before_training(tmp_path, monkeypatch):
    # guidance without dropped labels: nothing to guide with; the worker goes on
    trained = []
    monkeypatch.setattr(tool, "train", lambda *a, **k: trained.append(1))
    args = tool.parser().parse_args(["--name", "cfm", "--runs-root", str(tmp_path), *TINY])
    objective = tool.make_objective(tool.STUDIES["cfm"], args)
    study = optuna.create_study(directions=["minimize", "minimize"])
    point = {**tool.STUDIES["cfm"].candidates[-1], "class_dropout": 0.0, "guidance": 0.5}
    study.enqueue_trial(point)
    study.optimize(objective, n_trials=1)
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED and not trained
    assert trial.user_attrs["error"].startswith("guidance needs a model trained with dropped")
