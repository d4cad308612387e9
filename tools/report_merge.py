"""The report's notebook: the executed notebooks of one seed merged into one, with a title
page, the code and what no question asks hidden, the seeds' summary and the section on
automatic tools. Which notebooks and in which order comes from :mod:`flows_src.registry`.
"""

from __future__ import annotations

import ast
import base64
import copy
import datetime
import html
import json
import os
import re
from pathlib import Path

import nbformat

from flows_src import registry
from flows_src.plotting import PRINT_STYLE
from flows_src.runs import run_dir
from handin import Author, ReportError
from sweep import markdown

TITLE = "Exercise 2 — Flow Models"
BEYOND_TITLE = "Flow models beyond the exercise"
COURSE = "67912 Advanced Course in Machine Learning, The Hebrew University of Jerusalem"
#: The title page's last sentence: the report proper follows it.
TITLE_PAGE_END = "Every number in an answer is printed by the code of the run shown."
QUESTION_HEADING = re.compile(r"^##\s+((?:Q\d+|Bonus)\b.*?)\s*$", re.MULTILINE)
#: A figure's pixels (at flows_src.plotting.PRINT_STYLE's dpi) -> CSS pixels (96 to the
#: inch): every figure prints at its own size, as flows_src.plotting drew and checked it
#: (fonts of at least 7 pt, at most the page's width), and sharp (150 dpi on paper).
FIGURE_SCALE = 96 / PRINT_STYLE["figure.dpi"]

#: Cells the report leaves out: the parameters, and what a notebook tags ``report-skip``
#: (its set-up, training and result dumps: in the notebook, not what a question asks).
HIDDEN_TAGS = {"parameters", "injected-parameters", "report-skip"}
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def notebook_order(names: list[str] | None = None) -> list[str]:
    """``names`` (default: every notebook of :mod:`flows_src.registry`) in the registry's
    order (a full run's), others after, alphabetically."""
    order = registry.names()
    names = names if names is not None else order
    rank = {name: i for i, name in enumerate(order)}
    return sorted(dict.fromkeys(names), key=lambda n: (rank.get(n, len(order)), n))


def question_headings(source: Path) -> list[str]:
    """The ``## Q...`` and ``## Bonus`` headings of a ``py:percent`` notebook's markdown."""
    text = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#")
                     for line in source.read_text().splitlines() if line.startswith("#"))
    return QUESTION_HEADING.findall(text)


def _run_command(name: str, seed: int, preset: str) -> str:
    args = f"-p seed {seed}" + ("" if preset == "spec" else f" -p preset {preset}")
    return f"make run NB={name} ARGS='{args}'"


def executed_notebook(runs_root: str | os.PathLike, name: str, seed: int,
                      preset: str = "spec") -> Path:
    """The executed notebook of ``name``'s finished run (:func:`flows_src.runs.run_dir`)."""
    path = run_dir(name, seed, runs_root, preset, create=False) / f"{name}.ipynb"
    if not path.is_file():
        raise ReportError(f"{path} is missing: run the {name} notebook with seed {seed} first "
                          f"({_run_command(name, seed, preset)})")
    return path


def unfinished(nb) -> str | None:
    """Why executed notebook ``nb`` is not a finished run (papermill ran every cell, none
    raised), or ``None`` when it is one."""
    run = nb.metadata.get("papermill")
    if not run:
        return "was not executed by papermill"
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                first = (str(output.get("evalue", "")).strip().splitlines() or [""])[0]
                return (f"holds an error in cell {cell.get('execution_count')}: "
                        f"{output.get('ename')}: {first}")
        status = cell.metadata.get("papermill", {}).get("status")
        if status != "completed":
            return f"is unfinished (a cell is {status or 'not run'})"
    if run.get("exception") or not run.get("end_time"):
        return "is unfinished (papermill recorded no successful end)"
    return None


def load_executed(runs_root: str | os.PathLike, name: str, seed: int, preset: str = "spec"):
    """The executed notebook of ``name``'s run with ``seed`` (and ``preset``); one that
    papermill did not finish, or that holds an error, is refused with one line naming it."""
    path = executed_notebook(runs_root, name, seed, preset)
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same answer
        raise ReportError(f"{path} is not a readable notebook ({type(error).__name__}): run "
                          f"the {name} notebook again ({_run_command(name, seed, preset)})"
                          ) from None
    problem = unfinished(nb)
    if problem:
        raise ReportError(f"{path} {problem}: run the {name} notebook again "
                          f"({_run_command(name, seed, preset)})")
    return nb


def _report_outputs(outputs: list) -> list:
    """What a reader should see of a cell's outputs: stdout (merged), figures (once each),
    rich results; not stderr, widgets, or the bare return value of a cell's last call (its
    ``text/plain`` repr: the notebooks print what they mean to show)."""
    kept, images = [], set()
    for output in outputs:
        kind = output["output_type"]
        if kind == "stream":
            if output["name"] != "stdout":
                continue
            if kept and kept[-1]["output_type"] == "stream":
                kept[-1]["text"] += output["text"]
                continue
        elif kind in ("display_data", "execute_result"):
            data = {k: v for k, v in output["data"].items() if k != WIDGET_MIME}
            if set(data) <= {"text/plain"} and (kind == "execute_result" or WIDGET_MIME
                                                 in output["data"]):
                continue
            image = data.get("image/png")
            if image is not None:
                # a cell ending in a call that returns the figure shows it twice (plt.show,
                # then its repr), and a re-rendered PNG need not be byte-identical
                again = (kind == "execute_result" and images
                         and str(data.get("text/plain", "")).startswith("<Figure"))
                if image in images or again:
                    continue
                images.add(image)
            output = copy.deepcopy(output)
            output["data"] = data
            if image is not None:
                width = round(_png_width(image) * FIGURE_SCALE)
                output.setdefault("metadata", {})["image/png"] = {"width": width}
        kept.append(copy.deepcopy(output))
    return kept


def _png_width(image: str) -> int:
    """The width in pixels of a base64 PNG (from its IHDR chunk)."""
    return int.from_bytes(base64.b64decode(image[:48])[16:20], "big")


def _first_heading(nb, level: int = 1) -> str | None:
    prefix = "#" * level + " "
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith(prefix):
                    return line[len(prefix):].strip()
    return None


def _run_settings(nb) -> dict:
    """The parameters papermill injected that differ from the notebook's defaults (its cell
    tagged ``parameters``), less where the outputs went."""
    defaults = {}
    for cell in nb.cells:
        if "parameters" in cell.metadata.get("tags", []):
            for node in ast.parse(cell.source).body:
                if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                    try:
                        defaults[node.targets[0].id] = ast.literal_eval(node.value)
                    except ValueError:
                        pass
    injected = nb.metadata.get("papermill", {}).get("parameters", {})
    return {k: v for k, v in injected.items()
            if k != "runs_root" and (k not in defaults or defaults[k] != v)}


def _run_date(notebooks: dict) -> str:
    ends = [nb.metadata.get("papermill", {}).get("end_time") for nb in notebooks.values()]
    ends = [e for e in ends if e]
    if not ends:
        return datetime.date.today().isoformat()
    return max(ends)[:10]


def title_page(author: Author, seed: int, notebooks: dict, handin: bool = True) -> str:
    """The title page, as HTML inside a markdown cell: the hand-in report's, or (``handin``
    false) that of a document beyond the exercise, which says it is not the hand-in."""
    e = html.escape
    rows = [("Author", e(author.name)), ("CSE username", e(author.username)),
            ("Date", e(_run_date(notebooks))), ("Seed", str(seed))]
    settings = []
    for name, nb in notebooks.items():
        values = _run_settings(nb)
        values.pop("seed", None)
        if values:
            settings.append(f"<code>{e(name)}</code>: " + ", ".join(
                f"{e(k)}&nbsp;=&nbsp;{e(repr(v))}" for k, v in values.items()))
    run_note = ("Each model's section opens with its architecture and training settings, "
                "and every way they differ from the exercise's (Sec. 3.3, 4.3)."
                if handin else "Each model's settings are printed where it is used.")
    if settings:
        run_note += (" These runs were started with parameters other than the notebooks' "
                     "defaults: " + "; ".join(settings) + ".")
    contents = []
    for name, nb in notebooks.items():
        heading = _first_heading(nb) or name
        questions = [h for c in nb.cells if c.cell_type == "markdown"
                     for h in QUESTION_HEADING.findall(c.source)]
        line = f"<b>{e(heading)}</b>"
        if questions:
            line += " — " + " · ".join(e(q) for q in questions)
        contents.append(f"<li>{line}</li>")
    if handin:
        contents.append("<li><b>Use of automatic tools</b> (Sec. 5.1.1)</li>")
        code_note = ("The code is hidden here; it is handed in beside this report as "
                     "<code>create_data.py</code>, <code>flows_src/</code> and "
                     "<code>exported/</code>.")
        title, sub = TITLE, f"Report — {COURSE}"
    else:
        code_note = ("This document goes beyond the exercise's questions and is not part "
                     "of the hand-in report; the code is hidden.")
        title, sub = BEYOND_TITLE, f"Beside {TITLE} — {COURSE}"
    table = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in rows)
    per = ("one section per script of <code>exported/</code>, with its output" if handin
           else "one section per notebook")
    return (f'<div class="report-title">\n<h1>{e(title)}</h1>\n'
            f'<p class="sub">{e(sub)}</p>\n<table>{table}</table>\n'
            f'<div class="report-contents"><p><b>Contents</b> ({per}; each question under '
            f'its heading as in the exercise)</p>\n<ul>{"".join(contents)}'
            f'</ul>\n<p class="report-note">{run_note} {code_note} {TITLE_PAGE_END}</p>'
            f'</div>\n</div>')


def ai_section(statement: str, markers: list[tuple[str, int, str]]) -> str:
    """AI_USE.md verbatim (its first heading is the section's), then the markers found."""
    lines = ["", "**Parts of the handed-in code marked `# AI-ASSISTED:`** "
             f"({len(markers)} found when this report was built):", ""]
    if markers:
        lines += [f"- `{path}:{number}` — {html.escape(what) or '(no description)'}"
                  for path, number, what in markers]
    else:
        lines += ["- none."]
    return statement.rstrip() + "\n" + "\n".join(lines) + "\n"


def sweep_section(root: Path, handin: bool) -> str | None:
    """The seeds' summary of ``make sweep`` (``<root>/sweep/summary.json``) as a markdown
    section: for the hand-in report the rows of the exercise's notebooks at its settings,
    else every row; rows with no value at all are left out. ``None`` when no sweep has run."""
    path = root / "sweep" / "summary.json"
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    rows = [row for row in summary["rows"] if any(v is not None for v in row["values"])
            and (not handin or (row.get("preset", "spec") == "spec"
                                and row["notebook"] in registry.names(handin=True)))]
    # only the seeds these rows were run with: a column of dashes says nothing
    keep = [i for i in range(len(summary["seeds"])) if any(r["values"][i] is not None
                                                          for r in rows)]
    if len(keep) < 2:  # one seed's numbers are the sections above
        return None
    seeds = [summary["seeds"][i] for i in keep]
    rows = [{**r, "values": [r["values"][i] for i in keep]} for r in rows]
    runs = ("each value from a run of this code with that seed: `python exported/<name>.py "
            "--seed N` runs the same cells" if handin
            else "the same notebooks run with each seed")
    return ("## Seeds: mean ± standard deviation\n\n"
            f"Every metric of the runs with seeds {', '.join(map(str, seeds))} ({runs}; "
            "the sections above are one seed's run), with the sample standard deviation over "
            "the seeds.\n\n" + markdown(rows, seeds))


def merge(notebooks: dict, author: Author, seed: int, statement: str,
          markers: list[tuple[str, int, str]], extra: str | None = None,
          handin: bool = True):
    """One notebook for the report: title page, each notebook's cells, ``extra`` markdown
    (the seeds' summary), and for the hand-in (``handin``) the AI-use section."""
    first = next(iter(notebooks.values()))
    merged = nbformat.v4.new_notebook(metadata={
        "kernelspec": first.metadata.get("kernelspec", {}),
        "language_info": first.metadata.get("language_info", {}),
        "title": f"{TITLE} — {author.name}"})
    merged.cells.append(nbformat.v4.new_markdown_cell(
        title_page(author, seed, notebooks, handin), id="report-title"))
    for number, (name, nb) in enumerate(notebooks.items()):
        start = True
        for index, cell in enumerate(nb.cells):
            tags = set(cell.metadata.get("tags", []))
            if tags & HIDDEN_TAGS:
                continue
            cell_id = f"{name[:40]}-{index}".replace("_", "-")
            if cell.cell_type == "markdown":
                new = nbformat.v4.new_markdown_cell(cell.source, id=cell_id)
            elif cell.cell_type == "code":
                outputs = _report_outputs(cell.get("outputs", []))
                if not outputs:
                    continue
                new = nbformat.v4.new_code_cell(cell.source, id=cell_id, outputs=outputs,
                                                execution_count=cell.get("execution_count"))
            else:
                continue
            if start:
                new.metadata["tags"] = ["report-section"] + (["report-after-title"]
                                                              if number == 0 else [])
                start = False
            merged.cells.append(new)
    if extra:
        merged.cells.append(nbformat.v4.new_markdown_cell(
            extra, id="report-extra", metadata={"tags": ["report-section"]}))
    if handin:
        merged.cells.append(nbformat.v4.new_markdown_cell(
            ai_section(statement, markers), id="report-ai-use",
            metadata={"tags": ["report-section"]}))
    return merged

