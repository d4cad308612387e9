"""The PDF report: the executed notebooks of one seed, merged, with the code hidden.

    python tools/report.py [--seed S] [--runs-root DIR] [--notebooks NB ...] [--out PDF]
                           [--author NAME] [--username USER]

Reads ``<runs_root>/<nb>/seed-<S>/<nb>.ipynb`` for every notebook of the hand-in report
(:mod:`flows_src.registry`, in its order) and merges them into one notebook: a title page
(author and username from ``author.toml``, the course, the date of the runs, the seed, the
settings that differ from the exercise's, the contents), then each notebook's cells with the
code, the parameters cells, stderr (progress bars, kernel warnings) and bare return values
hidden, then the section on the use of automatic tools: ``AI_USE.md`` verbatim and the
``# AI-ASSISTED:`` markers found in the handed-in code. nbconvert's webpdf exporter prints it
through Debian's Chromium with a local MathJax (nothing is fetched from the network); a
layout that fits the course's 12 pages is chosen, or the build fails. Writes
``<runs_root>/report/seed-<S>/report.pdf`` atomically, with the merged ``report.ipynb`` and
``report.html`` beside it for debugging.

Modules: :mod:`handin` (author, statement on automatic tools, markers, placeholders),
:mod:`report_merge` (the merged notebook and its title page), :mod:`report_pdf` (the HTML
template, CSS and the Chromium driver); this one builds and checks the PDF.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat

import handin
from flows_src import registry
from flows_src.runs import atomic_write, root_dir, run_dir
from handin import Author, ReportError
from report_merge import load_executed, merge, notebook_order, sweep_section
from report_pdf import CSS, LAYOUTS, find_chromium, mathjax_url, page_count, render

MAX_PAGES = 12


def report_path(runs_root: str | os.PathLike, seed: int) -> Path:
    """``<runs_root>/report/seed-<seed>/report.pdf``: the report's run folder is laid out as
    a notebook's (:func:`flows_src.runs.run_dir`)."""
    return run_dir("report", seed, runs_root, create=False) / "report.pdf"


def _write(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def build(runs_root: str | os.PathLike = "runs", seed: int = 0,
          notebooks: list[str] | None = None, out: str | os.PathLike | None = None,
          author: Author | None = None, max_pages: int = MAX_PAGES,
          quiet: bool = False) -> Path:
    """Build the report of one seed's runs; return the PDF's path.

    Raises :class:`ReportError` when a run is missing, Chromium or MathJax is missing or
    fails, or the PDF has more than ``max_pages`` pages (the PDF is then kept beside the
    target as ``*.too-long.pdf``, and an earlier report is left in place).
    """
    start = time.perf_counter()
    root = root_dir(runs_root)
    names = notebook_order(notebooks) if notebooks else registry.names(report=True)
    if not names:
        raise ReportError("no notebooks to report on")
    executed = {n: load_executed(root, n, seed) for n in names}
    author = author or handin.load_author()
    statement = handin.ai_statement()
    if not quiet:
        for warning in handin.placeholder_warnings(author, statement):
            print(f"warning: {warning}", file=sys.stderr)
    exercise = set(names) <= set(registry.names(handin=True))  # the hand-in's report
    merged = merge(executed, author, seed, statement, handin.ai_markers(handin.shipped_files()),
                   sweep_section(root, handin=exercise), handin=exercise)
    out = Path(out) if out is not None else report_path(runs_root, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write(out.with_suffix(".ipynb"), nbformat.writes(merged).encode())

    chromium = find_chromium()
    for layout in LAYOUTS:
        html_text, pdf, math = render(merged, chromium, CSS + LAYOUTS[layout])
        _write(out.with_suffix(".html"), html_text.encode())
        if not math.get("loaded"):
            raise ReportError(f"MathJax did not load from {mathjax_url()}: the math would "
                              "print as raw TeX")
        if math.get("errors"):
            raise ReportError(f"MathJax could not typeset {math['errors']} formula(s): see "
                              f"the red formulas in {out.with_suffix('.html')}")
        pages = page_count(pdf)
        if pages <= max_pages:
            break
    if pages > max_pages:
        long = out.with_suffix(".too-long.pdf")
        _write(long, pdf)
        raise ReportError(f"the report has {pages} pages even in its compact layout, the "
                          f"course allows at most {max_pages}: shorten the notebooks' output "
                          f"(kept as {long})")
    _write(out, pdf)
    out.with_suffix(".too-long.pdf").unlink(missing_ok=True)
    if not quiet:
        note = f"; blocked {len(math['blocked'])} network request(s)" if math["blocked"] else ""
        print(f"report: {pages} pages ({layout} layout), {math.get('rendered', 0)} formulas, "
              f"{time.perf_counter() - start:.0f} s{note} -> {out}")
    return out



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs-root", default="runs")
    parser.add_argument("--notebooks", nargs="+", metavar="NB",
                        help="default: every notebooks/*.py but data and beyond, in the "
                        "order of a full run")
    parser.add_argument("--out", type=Path, help="default: RUNS_ROOT/report/seed-S/report.pdf")
    parser.add_argument("--author", help="overrides author.toml's name")
    parser.add_argument("--username", help="overrides author.toml's username")
    parser.add_argument("--max-pages", type=int, default=MAX_PAGES)
    args = parser.parse_args(argv)
    try:
        build(args.runs_root, args.seed, args.notebooks, args.out,
              handin.load_author(name=args.author, username=args.username), args.max_pages)
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0



if __name__ == "__main__":
    sys.exit(main())
