"""The hand-in zip (Sec. 5.2.3): report, code, README with the author's name and username.

    python tools/submission.py [--seed S] [--runs-root DIR] [--author NAME] [--username USER]
                               [--out ZIP] [--draft]

Writes ``<runs_root>/submission/<username>-ex2.zip`` (atomically) holding, at its root:
``README.md`` (generated: author, contents, how to re-run), ``report.pdf`` (the report of
seed S, built by ``tools/report.py``), ``AI_USE.md``, ``requirements.txt`` (the pins of the
shipped libraries only), ``create_data.py``, ``flows_src/`` and ``exported/`` -- no notebook.
Entries are sorted and time-stamped alike, so the same inputs give the same zip. It stops with
one line when the report is missing, stale, too long or names another author, when an
executed notebook it was made from holds an error or is unfinished, when ``exported/`` is out
of date with the notebooks, or when ``author.toml`` or ``AI_USE.md`` still holds its
placeholder (``--draft`` builds the zip anyway, with a warning).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import zipfile
from pathlib import Path

import handin
import notebooks as tool
from flows_src import registry
from flows_src.runs import atomic_write, root_dir
from handin import ROOT, Author, ReportError
from report import MAX_PAGES, report_path
from report_merge import executed_notebook, load_executed

#: Libraries the course allows the handed-in code to use (Sec. 5.1): their pins are shipped.
ALLOWED = {"torch", "numpy", "matplotlib", "tqdm", "pandas", "plotly", "tensorboard", "wandb"}
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # zip's earliest date: the archive does not depend on mtimes


def zip_name(author: Author) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", author.username) + "-ex2.zip"


def submission_path(runs_root: str | os.PathLike, author: Author) -> Path:
    return root_dir(runs_root) / "submission" / zip_name(author)


def shipped_requirements(path: Path = ROOT / "requirements.txt") -> str:
    """The pinned lines of ``requirements.txt`` that name an allowed library."""
    pins = []
    for line in path.read_text().splitlines():
        spec = line.split("#")[0].strip()
        name = re.split(r"[<>=!~\[ ;]", spec, maxsplit=1)[0].lower()
        if name in ALLOWED:
            pins.append(spec)
    return ("# What the handed-in code needs: only libraries the course allows (Sec. 5.1).\n"
            + "\n".join(pins) + "\n")


def script_title(path: Path) -> str:
    """An exported script's title (the first argument of its ``parse_parameters`` call)."""
    match = re.search(r"parse_parameters\(\s*(['\"])(.*?)\1", path.read_text())
    return match.group(2) if match else path.stem


def readme(author: Author, seed: int, scripts: list[Path], markers: list) -> str:
    rows = "\n".join(f"| &nbsp;&nbsp;`exported/{s.name}` | {script_title(s)} |" for s in scripts)
    runs = "\n".join(f"python exported/{s.name}" for s in scripts)
    marked = (f"{len(markers)} part(s) are marked; the report's last section lists them."
              if markers else "No part of the code is marked.")
    return f"""# Exercise 2 — Flow Models: hand-in

- **Name:** {author.name}
- **CSE username:** {author.username}

## What is inside

| path | what |
| --- | --- |
| `report.pdf` | the report: every question of Sec. 3.3 and 4.3 under its heading, with its \
figures and answer (made with seed {seed}) |
| `create_data.py` | the course's data functions (`create_unconditional_olympic_rings`, \
`create_olympic_rings`), vectorized and seeded |
| `flows_src/` | the library: ring geometry and data, the normalizing flow, flow matching, \
ODE solvers and likelihood, training, metrics, plots |
| `exported/` | one script per part of the exercise (generated from the notebooks the report \
was made from; no notebooks are handed in): |
{rows}
| `requirements.txt` | the libraries the code needs, all on the course's list |
| `AI_USE.md` | the use of automatic tools (Copilot, ChatGPT...) |

## Re-running the experiments

Tested with Python 3.11:

```bash
python3 -m venv .venv && . .venv/bin/activate
pip install -r requirements.txt
python exported/data.py --help          # every script's options are its parameters
```

Run the scripts in this order (a later script may read an earlier one's results):

```bash
{runs}
```

The defaults are the exercise's hyper-parameters; options change them, e.g.
`python exported/normalizing_flow.py --seed 3 --epochs 7`. Each script writes its
figures (PNG, the question in the file name), `metrics.json` and checkpoints to
`runs/<script>/seed-<seed>/` beside this README. A script run without a display saves its
figures without showing them.

## Automatic tools

Code written by automatic tools is marked in the code itself with a comment
`# AI-ASSISTED: <what and how>` on the line before it (Sec. 5.1.1); `AI_USE.md` and the
report's last section describe how the tools were used. {marked}
"""


def entries(author: Author, seed: int, pdf: Path) -> dict[str, bytes]:
    """``name in the zip -> content``, in the zip's order."""
    files = handin.shipped_files()
    scripts = [path for path in files if path.parent.name == "exported"]
    markers = handin.ai_markers(files)
    content = {
        "README.md": readme(author, seed, scripts, markers).encode(),
        "report.pdf": pdf.read_bytes(),
        "AI_USE.md": handin.AI_USE_FILE.read_bytes(),
        "requirements.txt": shipped_requirements().encode(),
    }
    for path in files:
        content[path.relative_to(ROOT).as_posix()] = path.read_bytes()
    notebooks = [n for n in content if n.endswith(".ipynb") or "__pycache__" in n]
    if notebooks:  # cannot happen with shipped_files(); the course would ignore them
        raise ReportError(f"the hand-in must hold no notebook: {', '.join(notebooks)}")
    return content


def check_report(pdf: Path, author: Author, runs_root: Path, seed: int) -> None:
    """The report exists, fits the limit, names this username (a name in another script may
    not survive text extraction) and is newer than its inputs."""
    if not pdf.is_file():
        raise ReportError(f"{pdf} is missing: build the report first (make report)")
    from pypdf import PdfReader

    reader = PdfReader(pdf)
    if len(reader.pages) > MAX_PAGES:
        raise ReportError(f"{pdf} has {len(reader.pages)} pages, more than {MAX_PAGES}")
    first = " ".join(reader.pages[0].extract_text().split())
    if author.username not in first:
        raise ReportError(f"{pdf} names another author: rebuild it (make report with the same "
                          "AUTHOR= and USERNAME=)")
    names = registry.names(report=True)
    for name in names:  # a run that failed or is unfinished is no answer to hand in
        load_executed(runs_root, name, seed)
    inputs = [handin.AI_USE_FILE] + [executed_notebook(runs_root, n, seed) for n in names]
    newer = [p for p in inputs if p.stat().st_mtime > pdf.stat().st_mtime]
    if newer:
        raise ReportError(f"{pdf} is older than {newer[0]}: rebuild it (make report)")


def check_exported(exported: Path = ROOT / "exported") -> None:
    """``exported`` holds what ``make export`` writes from the notebooks now."""
    with tempfile.TemporaryDirectory() as tmp:
        tool.export(Path(tmp))
        fresh = {p.name: p.read_text() for p in Path(tmp).glob("*.py")}
    shipped = {p.name: p.read_text() for p in exported.glob("*.py")}
    if fresh != shipped:
        stale = sorted(set(fresh) ^ set(shipped) | {n for n in fresh if
                                                      fresh[n] != shipped.get(n)})
        raise ReportError(f"exported/ is out of date ({', '.join(stale)}): run make export")


def check_placeholders(author: Author, draft: bool, quiet: bool) -> list[str]:
    """Refuse the placeholder author or AI statement, unless a ``draft`` is asked for;
    return what is still a placeholder."""
    problems = handin.placeholder_warnings(author, handin.ai_statement())
    if problems and not draft:
        raise ReportError(f"not ready to hand in: {'; '.join(problems)} (a draft zip anyway: "
                          "make submission DRAFT=1, or --draft)")
    if not quiet:
        for problem in problems:
            print(f"warning (draft): {problem}", file=sys.stderr)
    return problems


def build(runs_root: str | os.PathLike = "runs", seed: int = 0, author: Author | None = None,
          out: str | os.PathLike | None = None, quiet: bool = False,
          check_scripts: bool = True, draft: bool = False) -> Path:
    """Check the report, its executed notebooks and (unless ``check_scripts`` is false) that
    ``exported/`` is up to date, and that no placeholder is left (unless ``draft``), then
    write the zip; return its path."""
    author = author or handin.load_author()
    root = root_dir(runs_root)
    pdf = report_path(runs_root, seed)
    check_report(pdf, author, root, seed)
    if check_scripts:
        check_exported()
    problems = check_placeholders(author, draft, quiet)
    if out is None:
        out = submission_path(runs_root, author)
        if problems:  # a draft's name says so: it is never handed in by mistake
            out = out.with_name(f"{out.stem}-DRAFT{out.suffix}")
    content = entries(author, seed, pdf)

    def write(file) -> None:
        with zipfile.ZipFile(file, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            for name, data in content.items():
                info = zipfile.ZipInfo(name, ZIP_TIME)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, data)

    out = atomic_write(out, write)
    if not quiet:
        with zipfile.ZipFile(out) as archive:
            count = len(archive.namelist())
        print(f"submission: {count} files, {out.stat().st_size / 1e6:.1f} MB -> {out}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="the seed of the report to ship")
    parser.add_argument("--runs-root", default="runs")
    parser.add_argument("--author", help="overrides author.toml's name")
    parser.add_argument("--username", help="overrides author.toml's username")
    parser.add_argument("--out", type=Path, help="default: RUNS_ROOT/submission/USERNAME-ex2.zip")
    parser.add_argument("--draft", action="store_true",
                        help="build the zip even with the placeholder author or AI statement")
    args = parser.parse_args(argv)
    try:
        build(args.runs_root, args.seed,
              handin.load_author(name=args.author, username=args.username), args.out,
              draft=args.draft)
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
