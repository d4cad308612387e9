"""make sweep's summary: every metric per seed, mean and sample std, missing runs marked; the
report includes the rows of its own presets."""

import dataclasses
import math

import report_merge
import sweep
from flows_src import registry
from flows_src.runs import BeyondRecord, ModelRecord, load_record, run_dir, write_json


def _runs(root, values):
    for seed, (nll, strong_gap) in values.items():
        write_json(run_dir("normalizing_flow", seed, root) / "metrics.json",
                   {"nll": nll, "gap": nll - 1.5})
        if strong_gap is not None:
            write_json(run_dir("normalizing_flow", seed, root, "strong") / "metrics.json",
                       {"gap": strong_gap})


def test_summary_is_mean_and_sample_std_per_metric_with_missing_runs_marked(tmp_path):
    _runs(tmp_path, {0: (2.0, 0.2), 1: (2.2, None), 2: (2.4, 0.4)})
    assert sweep.main(["--seeds", "0", "1", "2", "--runs-root", str(tmp_path)]) == 0
    rows = {r["metric"]: r for r in sweep.collect(tmp_path, [0, 1, 2])}
    nll = rows["NF held-out NLL (nats)"]
    assert nll["values"] == [2.0, 2.2, 2.4] and nll["preset"] == "spec"
    mean, std = sweep.mean_std(nll["values"])
    assert math.isclose(mean, 2.2) and math.isclose(std, 0.2)
    strong = rows["strong NF gap NLL - H (nats)"]
    assert strong["values"] == [0.2, None, 0.4] and strong["preset"] == "strong"
    table = (tmp_path / "sweep" / "summary.md").read_text()
    assert "| NF held-out NLL (nats) | 2.000 | 2.200 | 2.400 | 2.200 ± 0.200 |" in table
    assert "| strong NF gap NLL - H (nats) | 0.2000 | — | 0.4000 | 0.3000 ± 0.1414 |" in table
    # a row's values to the same decimals, its largest to 4 significant digits
    assert sweep.decimals([1.96, 1.866]) == 3 and sweep.decimals([51.66, 150.6]) == 1
    assert sweep.decimals([0.003, 0.0031]) == 6 and sweep.decimals([10, 20.0]) == 0


def test_report_shows_the_sweep_of_its_presets_only(tmp_path):
    assert report_merge.sweep_section(tmp_path, handin=True) is None  # no sweep yet
    _runs(tmp_path, {0: (2.0, 0.2), 1: (2.2, 0.3)})
    write_json(run_dir("beyond", 0, tmp_path) / "metrics.json", {"targets_met": True})
    sweep.main(["--seeds", "0", "1", "--runs-root", str(tmp_path)])
    handin = report_merge.sweep_section(tmp_path, handin=True)
    assert "seeds 0, 1" in handin and "NF held-out NLL" in handin
    assert "strong" not in handin and "targets met" not in handin
    assert "FM held-out" not in handin  # no run of it: no row of dashes
    beyond = report_merge.sweep_section(tmp_path, handin=False)
    assert "strong NF gap" in beyond and "targets met" in beyond


def test_every_metric_is_a_field_of_its_notebooks_run_record():
    for metric in sweep.METRICS:
        registry.get(metric.notebook)
        assert metric.field in {f.name for f in dataclasses.fields(metric.record)}, metric


def test_a_run_record_reads_metrics_json(tmp_path):
    write_json(run_dir("beyond", 0, tmp_path) / "metrics.json", {
        "targets_met": True, "aim": {"nfe": 24}, "nll": [{"solver": "euler"}],
        "ot": {"paths": {"OT coupling": {"straightness": 0.1},
                         "independent coupling": {"straightness": 0.4}}}})
    assert load_record(BeyondRecord, "beyond", 0, tmp_path) == BeyondRecord(True, 24, 0.1, 0.4)
    write_json(run_dir("flow_matching", 0, tmp_path) / "metrics.json",
               {"nll": 2.0, "gap": 0.4, "in_band": 0.8, "config": {"lr": 1e-3}})
    record = load_record(ModelRecord, "flow_matching", 0, tmp_path)
    assert record == ModelRecord(nll=2.0, gap=0.4, in_band=0.8)
    assert load_record(ModelRecord, "flow_matching", 1, tmp_path) is None


def test_targets_are_tabled_per_seed_with_how_many_seeds_met_them(tmp_path):
    for seed, (in_band, gap) in enumerate([(0.98, 0.04), (0.96, 0.05)]):
        write_json(run_dir("normalizing_flow", seed, tmp_path, "spline") / "metrics.json",
                   {"in_band": in_band, "gap": gap, "train_seconds": 250.0})
    assert sweep.main(["--seeds", "0", "1", "2", "--runs-root", str(tmp_path)]) == 0
    rows = {r["metric"]: r for r in sweep.targets(tmp_path, [0, 1, 2])}
    in_band = rows["spline NF in_band >= 0.97"]
    assert in_band["values"] == [0.98, 0.96, None] and in_band["met"] == [True, False, None]
    assert rows["spline NF gap <= 0.06"]["met"] == [True, True, None]
    table = (tmp_path / "sweep" / "summary.md").read_text()
    assert ("| spline NF in_band >= 0.97 | 0.9800 yes | 0.9600 NO | — | 0.9700 ± 0.0141 "
            "| 1 of 3 |" in table)
    # a time, with the share of its budget used; one seed's value alone, no "± nan"
    assert ("| spline NF train_seconds <= 300 | 250 yes (83%) | 250 yes (83%) | — | 250.0 ± 0.0 "
            "| 2 of 3 |" in table)
    assert "| strong NF gap NLL - H (nats) | — | — | — | — |" in table and "nan" not in table
    assert sweep.main(["--seeds", "0", "--runs-root", str(tmp_path), "--seconds", "600"]) == 0
    table = (tmp_path / "sweep" / "summary.md").read_text()
    assert table.startswith("The notebooks of seeds 0 took 10 min")
    assert "| spline NF gap <= 0.06 | 0.04000 yes | 0.04000 | 1 of 1 |" in table


def test_report_leaves_out_seeds_without_runs_and_a_sweep_of_one_seed(tmp_path):
    _runs(tmp_path, {0: (2.0, 0.2), 2: (2.4, None)})
    sweep.main(["--seeds", "0", "1", "2", "--runs-root", str(tmp_path)])
    handin = report_merge.sweep_section(tmp_path, handin=True)
    assert "seeds 0, 2 " in handin and "seed 1" not in handin and "make sweep" not in handin
    _runs(tmp_path / "one", {0: (2.0, 0.2)})
    sweep.main(["--seeds", "0", "1", "--runs-root", str(tmp_path / "one")])
    assert report_merge.sweep_section(tmp_path / "one", handin=True) is None
