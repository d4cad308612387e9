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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows_src.runs import read_json, run_dir, write_json  # noqa: E402

#: (notebook, preset, key path in metrics.json, label) of every metric the summary reports.
METRICS = [
    ("normalizing_flow", "spec", ("nll",), "NF held-out NLL (nats)"),
    ("normalizing_flow", "spec", ("gap",), "NF gap NLL - H (nats)"),
    ("normalizing_flow", "spec", ("in_band",), "NF in-band fraction"),
    ("normalizing_flow", "spec", ("train_seconds",), "NF training time (s)"),
    ("flow_matching", "spec", ("nll",), "FM held-out NLL (nats)"),
    ("flow_matching", "spec", ("gap",), "FM gap NLL - H (nats)"),
    ("flow_matching", "spec", ("in_band",), "FM in-band fraction (dt = 1/1000)"),
    ("flow_matching", "spec", ("train_seconds",), "FM training time (s)"),
    ("conditional_flow_matching", "spec", ("accuracy",), "CFM conditional accuracy"),
    ("conditional_flow_matching", "spec", ("in_band",), "CFM in-band fraction"),
    ("conditional_flow_matching", "spec", ("train_seconds",), "CFM training time (s)"),
    ("normalizing_flow", "strong", ("gap",), "strong NF gap NLL - H (nats)"),
    ("normalizing_flow", "strong", ("in_band",), "strong NF in-band fraction"),
    ("normalizing_flow", "strong", ("train_seconds",), "strong NF training time (s)"),
    ("flow_matching", "strong", ("gap",), "strong FM gap NLL - H (nats)"),
    ("flow_matching", "strong", ("in_band",), "strong FM in-band fraction"),
    ("flow_matching", "strong", ("train_seconds",), "strong FM training time (s)"),
    ("conditional_flow_matching", "strong", ("accuracy",), "strong CFM conditional accuracy"),
    ("conditional_flow_matching", "strong", ("train_seconds",),
     "strong CFM training time (s)"),
    ("beyond", "spec", ("targets_met",), "strong presets: all targets met (1 = yes)"),
    ("beyond", "spec", ("aim", "nfe"), "fewest NFE within 0.01 of Euler-1000 (spec FM)"),
    ("beyond", "spec", ("ot", "paths", "OT coupling", "straightness"),
     "OT-CFM straightness S"),
    ("beyond", "spec", ("ot", "paths", "independent coupling", "straightness"),
     "independent-coupling straightness S"),
]


def collect(runs_root: Path, seeds: list[int]) -> list[dict]:
    """One row per metric: its value per seed (None where the run is missing)."""
    rows = []
    for notebook, preset, keys, label in METRICS:
        values = []
        for seed in seeds:
            path = run_dir(notebook, seed, runs_root, preset, create=False) / "metrics.json"
            value = read_json(path) if path.is_file() else None
            for key in keys:
                value = value.get(key) if isinstance(value, dict) else None
            values.append(value)
        rows.append({"notebook": notebook, "preset": preset, "metric": label,
                     "values": values})
    return rows


def mean_std(values: list[float | None]) -> tuple[float, float]:
    present = [v for v in values if v is not None]
    if not present:
        return math.nan, math.nan
    mean = sum(present) / len(present)
    if len(present) < 2:
        return mean, math.nan
    return mean, math.sqrt(sum((v - mean) ** 2 for v in present) / (len(present) - 1))


def markdown(rows: list[dict], seeds: list[int]) -> str:
    head = ["metric", *(f"seed {s}" for s in seeds), "mean ± std"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        mean, std = mean_std(row["values"])
        cells = ["—" if v is None else f"{v:.4g}" for v in row["values"]]
        lines.append("| " + " | ".join([row["metric"], *cells, f"{mean:.4g} ± {std:.2g}"])
                     + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--runs-root", type=Path, default=ROOT / "runs")
    args = parser.parse_args(argv)
    rows = collect(args.runs_root, args.seeds)
    missing = [(r["metric"], s) for r in rows for s, v in zip(args.seeds, r["values"])
               if v is None]
    out = args.runs_root / "sweep"
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(rows, args.seeds)
    (out / "summary.md").write_text(table)
    write_json(out / "summary.json", {"seeds": args.seeds, "rows": rows})
    print(table)
    print(f"summary: {out / 'summary.md'}")
    if missing:
        print(f"warning: {len(missing)} value(s) missing (runs not done?), e.g. {missing[0]}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
