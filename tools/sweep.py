"""Summarize the runs of several seeds: every headline metric as mean ± std over seeds.

    python tools/sweep.py --seeds 0 1 2 [--runs-root runs]

Reads ``<runs_root>/<notebook>/[<preset>/]seed-<s>/metrics.json`` (written by the notebooks,
with the exercise's settings and with the strong preset) and writes
``<runs_root>/sweep/summary.md`` and ``summary.json``: one row per metric, one column per
seed, then the mean and the sample standard deviation. ``make sweep SEEDS="0 1 2"`` runs the
notebooks for each seed first, then rebuilds the report, which includes the table.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import NamedTuple

from flows_src import presets, registry
from flows_src.runs import BeyondRecord, ModelRecord, load_record, root_dir, write_json

NF, FM, CFM = (registry.notebook_of(family) for family in ("nf", "fm", "cfm"))
BEYOND = registry.get("beyond").name


class Metric(NamedTuple):
    """One row of the summary: a field of the notebook's run record
    (:class:`~flows_src.runs.ModelRecord`, or :class:`~flows_src.runs.BeyondRecord` for the
    beyond notebook), with the preset of the runs it is read from."""

    notebook: str
    preset: str
    field: str
    label: str

    @property
    def record(self) -> type[ModelRecord] | type[BeyondRecord]:
        return BeyondRecord if self.notebook == BEYOND else ModelRecord


#: Every metric the summary reports, in its order.
METRICS = [
    Metric(NF, "spec", "nll", "NF held-out NLL (nats)"),
    Metric(NF, "spec", "gap", "NF gap NLL - H (nats)"),
    Metric(NF, "spec", "in_band", "NF in-band fraction"),
    Metric(NF, "spec", "train_seconds", "NF training time (s)"),
    Metric(FM, "spec", "nll", "FM held-out NLL (nats)"),
    Metric(FM, "spec", "gap", "FM gap NLL - H (nats)"),
    Metric(FM, "spec", "in_band", "FM in-band fraction (dt = 1/1000)"),
    Metric(FM, "spec", "train_seconds", "FM training time (s)"),
    Metric(CFM, "spec", "accuracy", "CFM conditional accuracy"),
    Metric(CFM, "spec", "in_band", "CFM in-band fraction"),
    Metric(CFM, "spec", "train_seconds", "CFM training time (s)"),
    Metric(NF, "strong", "gap", "strong NF gap NLL - H (nats)"),
    Metric(NF, "strong", "in_band", "strong NF in-band fraction"),
    Metric(NF, "strong", "train_seconds", "strong NF training time (s)"),
    Metric(FM, "strong", "gap", "strong FM gap NLL - H (nats)"),
    Metric(FM, "strong", "in_band", "strong FM in-band fraction"),
    Metric(FM, "strong", "train_seconds", "strong FM training time (s)"),
    Metric(CFM, "strong", "accuracy", "strong CFM conditional accuracy"),
    Metric(CFM, "strong", "train_seconds", "strong CFM training time (s)"),
    Metric(NF, "spline", "gap", "spline NF gap NLL - H (nats)"),
    Metric(NF, "spline", "in_band", "spline NF in-band fraction"),
    Metric(NF, "spline", "train_seconds", "spline NF training time (s)"),
    Metric(BEYOND, "spec", "targets_met", "strong presets: all targets met (1 = yes)"),
    Metric(BEYOND, "spec", "aim_nfe", "fewest NFE within 0.01 of Euler-1000 (spec FM)"),
    Metric(BEYOND, "spec", "ot_straightness", "OT-CFM straightness S"),
    Metric(BEYOND, "spec", "independent_straightness", "independent-coupling straightness S"),
]


def collect(runs_root: Path, seeds: list[int]) -> list[dict]:
    """One row per metric: its value per seed (None where the run is missing)."""
    rows = []
    for metric in METRICS:
        values = []
        for seed in seeds:
            record = load_record(metric.record, metric.notebook, seed, runs_root,
                                 metric.preset)
            values.append(None if record is None else getattr(record, metric.field))
        rows.append({"notebook": metric.notebook, "preset": metric.preset,
                     "metric": metric.label, "values": values})
    return rows


def targets(runs_root: Path, seeds: list[int]) -> list[dict]:
    """One row per target of :data:`flows_src.presets.TARGETS`: the measured value per seed
    (None where the run is missing) and whether it met the target."""
    rows = []
    for (family, preset), checks in presets.TARGETS.items():
        notebook = registry.notebook_of(family)
        records = [load_record(ModelRecord, notebook, seed, runs_root, preset) for seed in seeds]
        for measure, sense, bound in checks:
            values = [None if r is None else getattr(r, measure) for r in records]
            met = [None if v is None else presets.meets(v, sense, bound) for v in values]
            rows.append({"notebook": notebook, "preset": preset, "measure": measure,
                         "bound": bound,
                         "metric": f"{preset} {family.upper()} {measure} {sense} {bound:g}",
                         "values": values, "met": met})
    return rows


def targets_markdown(rows: list[dict], seeds: list[int]) -> str:
    """The targets per seed (each value marked met or not; a time with the share of its
    budget it used) and over the seeds."""
    head = ["target", *(f"seed {s}" for s in seeds), "mean ± std", "met on"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        budget = row["bound"] if row["measure"] == "train_seconds" else None
        places = decimals(row["values"])
        cells = ["—" if v is None else f"{v:.{places}f} {'yes' if m else 'NO'}"
                 + ("" if budget is None else f" ({v / budget:.0%})")
                 for v, m in zip(row["values"], row["met"])]
        met_on = sum(bool(m) for m in row["met"])
        lines.append("| " + " | ".join([row["metric"], *cells, spread(row["values"]),
                                        f"{met_on} of {len(seeds)}"]) + " |")
    return "\n".join(lines) + "\n"


def mean_std(values: list[float | None]) -> tuple[float, float]:
    present = [v for v in values if v is not None]
    if not present:
        return math.nan, math.nan
    mean = sum(present) / len(present)
    if len(present) < 2:
        return mean, math.nan
    return mean, math.sqrt(sum((v - mean) ** 2 for v in present) / (len(present) - 1))


def decimals(values: list[float | None]) -> int:
    """The decimals of a row: its largest value to 4 significant digits, every value of the
    row to the same decimals (so they line up); none for whole numbers."""
    present = [abs(v) for v in values if v is not None and math.isfinite(v)]
    if not present or all(float(v).is_integer() for v in present):
        return 0
    return min(6, max(0, 3 - math.floor(math.log10(max(present) or 1.0))))


def spread(values: list[float | None]) -> str:
    """``mean ± std`` of the values present, to the row's :func:`decimals` (one more for
    whole numbers); the value alone for one, a dash for none."""
    mean, std = mean_std(values)
    if math.isnan(mean):
        return "—"
    places = decimals(values) or 1
    return (f"{mean:.{places}f}" if math.isnan(std)
            else f"{mean:.{places}f} ± {std:.{places}f}")


def markdown(rows: list[dict], seeds: list[int]) -> str:
    head = ["metric", *(f"seed {s}" for s in seeds), "mean ± std"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        places = decimals(row["values"])
        cells = ["—" if v is None else f"{v:.{places}f}" for v in row["values"]]
        lines.append("| " + " | ".join([row["metric"], *cells, spread(row["values"])]) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--runs-root", type=root_dir, default=root_dir("runs"))
    parser.add_argument("--seconds", type=float,
                        help="how long the seeds' notebooks took (wall clock), for the record")
    args = parser.parse_args(argv)
    rows = collect(args.runs_root, args.seeds)
    missing = [(r["metric"], s) for r in rows for s, v in zip(args.seeds, r["values"])
               if v is None]
    out = args.runs_root / "sweep"
    out.mkdir(parents=True, exist_ok=True)
    goals = targets(args.runs_root, args.seeds)
    took = ("" if args.seconds is None else
            f"The notebooks of seeds {', '.join(map(str, args.seeds))} took "
            f"{args.seconds / 60:.0f} min (wall clock, two notebooks at a time).\n\n")
    table = (took + markdown(rows, args.seeds) + "\n**Targets** (flows_src.presets.TARGETS; "
             "a training time with the share of its budget it used)\n\n"
             + targets_markdown(goals, args.seeds))
    (out / "summary.md").write_text(table)
    write_json(out / "summary.json", {"seeds": args.seeds, "seconds": args.seconds,
                                      "rows": rows, "targets": goals})
    print(table)
    print(f"summary: {out / 'summary.md'}")
    if missing:
        print(f"warning: {len(missing)} value(s) missing (runs not done?), e.g. {missing[0]}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
