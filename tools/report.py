"""The PDF report: the executed notebooks of one seed, merged, with the code hidden.

    python tools/report.py [--seed S] [--runs-root DIR] [--notebooks NB ...] [--out PDF]
                           [--author NAME] [--username USER]

Reads ``<runs_root>/<nb>/seed-<S>/<nb>.ipynb`` for every notebook (``notebooks/*.py`` in
:data:`ORDER`, less :data:`NOT_IN_REPORT`) and merges them into one notebook: a title page
(author and username from ``author.toml``, the course, the date of the runs, the seed, the
settings that differ from the exercise's, the contents), then each notebook's cells with the
code, the parameters cells, stderr (progress bars, kernel warnings) and bare return values
hidden, then the section on the use of automatic tools: ``AI_USE.md`` verbatim and the
``# AI-ASSISTED:`` markers found in the handed-in code. nbconvert's webpdf exporter prints it
through Debian's Chromium with a local MathJax (nothing is fetched from the network); a
layout that fits the course's 12 pages is chosen, or the build fails. Writes
``<runs_root>/report/seed-<S>/report.pdf`` atomically, with the merged ``report.ipynb`` and
``report.html`` beside it for debugging.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import base64
import concurrent.futures
import copy
import datetime
import html
import io
import os
import re
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
AUTHOR_FILE = ROOT / "author.toml"
AI_USE_FILE = ROOT / "AI_USE.md"

#: The order of the report's sections (and of a full run: a notebook reads the results of
#: those before it). Notebooks not named here follow, alphabetically.
ORDER = ["data", "normalizing_flow", "flow_matching", "conditional_flow_matching", "beyond"]
#: Notebooks a default report leaves out: the data's overview and "Beyond the exercise"
#: answer no question of the exercise.
NOT_IN_REPORT = {"data", "beyond"}
#: The notebooks that answer the exercise with its own settings: a report of these shows
#: the seeds' summary of the exercise's settings only.
HANDIN = {"data", "normalizing_flow", "flow_matching", "conditional_flow_matching"}
MAX_PAGES = 12
TITLE = "Exercise 2 — Flow Models"
BEYOND_TITLE = "Flow models beyond the exercise"
COURSE = "67912 Advanced Course in Machine Learning, The Hebrew University of Jerusalem"
PLACEHOLDER_AUTHOR = {"name": "Your Name", "username": "your-cse-username"}
PLACEHOLDER_AI_USE = "[TO BE WRITTEN BY THE AUTHOR]"
#: Chromium: $FLOWS_CHROMIUM, else the first of these that exists (Debian's package).
CHROMIUM_CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser",
                       "/usr/bin/google-chrome"]
#: MathJax 2.7: $FLOWS_MATHJAX, else Debian's libjs-mathjax.
MATHJAX_JS = Path("/usr/share/javascript/mathjax/MathJax.js")
MATHJAX_CONFIG = "?config=TeX-AMS_CHTML-full,Safe"
#: A marker of code written by an automatic tool: at the start of a line or after code.
AI_MARKER = re.compile(r"(?:^|\s)#\s*AI-ASSISTED:\s*(.*)$")
#: The title page's last sentence: the report proper follows it.
TITLE_PAGE_END = "Every number in an answer is printed by the code of the run shown."
QUESTION_HEADING = re.compile(r"^##\s+((?:Q\d+|Bonus)\b.*?)\s*$", re.MULTILINE)

CSS = """
@page { size: A4; margin: 12mm 13mm 13mm 13mm; }
:root {
  --jp-content-font-size1: 9.5pt; --jp-content-font-size2: 11pt;
  --jp-content-font-size3: 12.5pt; --jp-content-font-size4: 15pt;
  --jp-content-font-size5: 18pt; --jp-code-font-size: 7.4pt;
  --jp-content-line-height: 1.35; --jp-code-line-height: 1.22; --jp-cell-padding: 0;
  --jp-content-heading-margin-top: 0.6em; --jp-content-heading-margin-bottom: 0.25em;
}
body, main, .jp-Notebook { padding: 0 !important; margin: 0 !important; }
.jp-Cell { padding: 0 !important; margin: 0 !important; }
.jp-InputPrompt, .jp-OutputPrompt, .jp-Collapser { display: none !important; }
.jp-RenderedHTMLCommon { padding-left: 0 !important; padding-right: 0 !important; }
.jp-RenderedHTMLCommon p, .jp-RenderedHTMLCommon ul { margin: 0 0 0.35em 0; }
.jp-RenderedHTMLCommon h1 { margin-top: 0; border-bottom: 1px solid #888; }
.jp-RenderedHTMLCommon h1, .jp-RenderedHTMLCommon h2, .jp-RenderedHTMLCommon h3 {
  break-after: avoid; page-break-after: avoid; }
.jp-RenderedHTMLCommon h2 { margin-top: 0.55em; color: #123c69; }
.jp-OutputArea-output pre, .jp-RenderedText pre {
  white-space: pre-wrap; word-break: normal; overflow-wrap: break-word;
  overflow: hidden; margin: 0.15em 0 0.3em 0;
  font-size: var(--jp-code-font-size); line-height: var(--jp-code-line-height); }
.jp-OutputArea-output { padding: 0 !important; }
.jp-RenderedImage { text-align: center; }
.jp-RenderedImage img { max-width: 100%; max-height: 13.5cm; height: auto; margin: 0.2em auto; }
.jp-OutputArea-child, .jp-RenderedImage, pre { break-inside: avoid; page-break-inside: avoid; }
/* a heading stays with what follows it (the next cell: a figure, a table) */
.jp-MarkdownCell:has(h1, h2, h3) { break-after: avoid; page-break-after: avoid; }
.report-title { text-align: center; }
.report-title h1 { border: none !important; font-size: 22pt; margin-bottom: 0.2em; }
.report-title .sub { font-size: 12pt; color: #333; margin: 0.2em 0 1.4em 0;
  text-align: center !important; }
.report-title table { margin: 0 auto 1.4em auto; font-size: 11pt; border: none; }
.report-title td { text-align: left !important; padding: 2px 10px !important; border: none; }
.report-title td:first-child { color: #555; }
.report-contents { max-width: 15cm; margin: 0 auto; text-align: left; font-size: 9.5pt; }
.report-contents li { margin-bottom: 0.25em; }
.report-note { font-size: 8.5pt; color: #444; }
"""

#: Page layouts, tried in turn until the report fits in MAX_PAGES: a title page, then the
#: sections running on one after another (a page break only where a figure or table would
#: not fit: no half-empty pages between sections); then the title as a header on the first
#: page.
LAYOUTS = {
    "title page": ".report-title { margin-top: 3cm; }\n.celltag_report-after-title "
                  "{ break-before: page; page-break-before: always; }",
    "compact": ".report-title { margin-top: 0; }",
}
#: A figure's pixels (matplotlib's 100 dpi, flows_src.plotting.PRINT_STYLE) -> CSS pixels
#: (96 to the inch): every figure prints at its own size, as flows_src.plotting drew and
#: checked it (fonts of at least 7 pt, at most the page's width).
FIGURE_SCALE = 0.96

TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{#- no require.js (it would come from a CDN): nothing in the report needs it -#}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_css -%}<style type="text/css">{{ resources.report_css }}</style>
{%- endblock html_head_css -%}
"""


class ReportError(Exception):
    """A problem the user can fix (a missing run, a missing package): one line."""


# --- who wrote it, and with which tools -------------------------------------------------

@dataclass(frozen=True)
class Author:
    name: str
    username: str

    @property
    def is_placeholder(self) -> bool:
        return (self.name == PLACEHOLDER_AUTHOR["name"]
                or self.username == PLACEHOLDER_AUTHOR["username"])


def load_author(path: Path = AUTHOR_FILE, name: str | None = None,
                username: str | None = None) -> Author:
    """``author.toml``'s ``name`` and ``username``; a non-empty argument overrides each."""
    values = dict(PLACEHOLDER_AUTHOR)
    if path.is_file():
        try:
            values.update(tomllib.loads(path.read_text()))
        except tomllib.TOMLDecodeError as error:
            raise ReportError(f"{path}: not valid TOML ({error})") from None
    values.update({k: v for k, v in (("name", name), ("username", username)) if v})
    author = Author(str(values["name"]).strip(), str(values["username"]).strip())
    if not author.name or not author.username:
        raise ReportError(f"author name and username must not be empty (set them in {path})")
    return author


def ai_statement(path: Path = AI_USE_FILE) -> str:
    """The author's statement on automatic tools, verbatim (markdown)."""
    if not path.is_file():
        raise ReportError(f"{path} is missing: the report needs the author's statement on "
                          "automatic tools (Sec. 5.1.1)")
    return path.read_text()


def shipped_files(root: Path = ROOT) -> list[Path]:
    """The handed-in code: ``create_data.py``, ``flows_src/`` and ``exported/`` (sorted)."""
    files = [root / "create_data.py"]
    files += sorted(p for p in (root / "flows_src").rglob("*.py") if "__pycache__" not in p.parts)
    files += sorted((root / "exported").glob("*.py"))
    return [f for f in files if f.is_file()]


def ai_markers(files: list[Path], base: Path = ROOT) -> list[tuple[str, int, str]]:
    """``(path relative to base, line number, what)`` of every ``# AI-ASSISTED:`` marker."""
    found = []
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = AI_MARKER.search(line)
            if match:
                found.append((path.relative_to(base).as_posix(), number,
                              match.group(1).strip()))
    return found


def placeholder_warnings(author: Author, statement: str) -> list[str]:
    warnings = []
    if author.is_placeholder:
        warnings.append(f"author.toml still holds the placeholder author ({author.name!r}, "
                        f"{author.username!r}): set name and username, or AUTHOR=/USERNAME=")
    if PLACEHOLDER_AI_USE in statement:
        warnings.append(f"AI_USE.md still holds the placeholder {PLACEHOLDER_AI_USE}: "
                        "write your own statement on automatic tools")
    return warnings


# --- which notebooks, and where their runs are ------------------------------------------

def notebook_order(names: list[str] | None = None) -> list[str]:
    """``names`` (default: every ``notebooks/*.py``) in :data:`ORDER`, others after."""
    names = names if names is not None else [p.stem for p in NOTEBOOKS.glob("*.py")]
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(dict.fromkeys(names), key=lambda n: (rank.get(n, len(ORDER)), n))


def question_headings(source: Path) -> list[str]:
    """The ``## Q...`` and ``## Bonus`` headings of a ``py:percent`` notebook's markdown."""
    text = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#")
                     for line in source.read_text().splitlines() if line.startswith("#"))
    return QUESTION_HEADING.findall(text)


def resolve_root(runs_root: str | os.PathLike) -> Path:
    """A relative runs root is taken from the project root, as ``flows_src.runs`` does."""
    root = Path(runs_root)
    return root if root.is_absolute() else ROOT / root


def executed_notebook(runs_root: Path, name: str, seed: int) -> Path:
    path = runs_root / name / f"seed-{seed}" / f"{name}.ipynb"
    if not path.is_file():
        raise ReportError(f"{path} is missing: run the {name} notebook with seed {seed} first "
                          f"(make run NB={name} ARGS='-p seed {seed}')")
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


def load_executed(runs_root: Path, name: str, seed: int):
    """The executed notebook of ``name``'s run with ``seed``; one that papermill did not
    finish, or that holds an error, is refused with one line naming it."""
    path = executed_notebook(runs_root, name, seed)
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same answer
        raise ReportError(f"{path} is not a readable notebook ({type(error).__name__}): run "
                          f"the {name} notebook again (make run NB={name} ARGS='-p seed "
                          f"{seed}')") from None
    problem = unfinished(nb)
    if problem:
        raise ReportError(f"{path} {problem}: run the {name} notebook again (make run "
                          f"NB={name} ARGS='-p seed {seed}')")
    return nb


def report_path(runs_root: str | os.PathLike, seed: int) -> Path:
    return resolve_root(runs_root) / "report" / f"seed-{seed}" / "report.pdf"


# --- the merged notebook ----------------------------------------------------------------

#: Cells the report leaves out: the parameters, and what a notebook tags ``report-skip``
#: (its set-up, training and result dumps: in the notebook, not what a question asks).
HIDDEN_TAGS = {"parameters", "injected-parameters", "report-skip"}
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


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
    return (f'<div class="report-title">\n<h1>{e(title)}</h1>\n'
            f'<p class="sub">{e(sub)}</p>\n<table>{table}</table>\n'
            f'<div class="report-contents"><p><b>Contents</b> (one section per notebook; '
            f'each question under its heading as in the exercise)</p>\n<ul>{"".join(contents)}'
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
    import json

    from sweep import markdown

    summary = json.loads(path.read_text())
    rows = [row for row in summary["rows"] if any(v is not None for v in row["values"])
            and (not handin or (row.get("preset", "spec") == "spec"
                                and row["notebook"] in HANDIN))]
    if not rows:
        return None
    seeds = summary["seeds"]
    return ("## Seeds: mean ± standard deviation\n\n"
            f"Every metric of the runs with seeds {', '.join(map(str, seeds))} "
            "(`make sweep`; the sections above are one seed's run), with the sample standard "
            "deviation over the seeds.\n\n" + markdown(rows, seeds))


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


# --- printing ---------------------------------------------------------------------------

def find_chromium() -> str:
    configured = os.environ.get("FLOWS_CHROMIUM")
    if configured:
        if not Path(configured).is_file():
            raise ReportError(f"FLOWS_CHROMIUM={configured} does not exist")
        return configured
    for candidate in CHROMIUM_CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    raise ReportError("no Chromium found (looked for " + ", ".join(CHROMIUM_CANDIDATES)
                      + "): run `sudo tools/setup_system.sh` (Debian: apt-get install "
                      "chromium), or set FLOWS_CHROMIUM to a Chromium executable")


def mathjax_url() -> str:
    """The local MathJax 2.7: $FLOWS_MATHJAX (a MathJax.js), else Debian's libjs-mathjax."""
    path = Path(os.environ.get("FLOWS_MATHJAX") or MATHJAX_JS)
    if not path.is_file():
        raise ReportError(f"{path} is missing: the report renders math with a local "
                          "MathJax; run `sudo tools/setup_system.sh` (Debian: apt-get install "
                          "libjs-mathjax), or set FLOWS_MATHJAX to a MathJax 2.7 MathJax.js")
    return path.resolve().as_uri() + MATHJAX_CONFIG


FOOTER = ('<div style="font-size:7pt;color:#666;width:100%;text-align:center;'
          'font-family:sans-serif;"><span class="pageNumber"></span> / '
          '<span class="totalPages"></span></div>')

# After MathJax has typeset the page: did it load, and how many formulas failed?
MATHJAX_DONE = """async () => {
  if (!window.MathJax || !window.MathJax.Hub) { return {loaded: false}; }
  await new Promise(resolve => MathJax.Hub.Queue(resolve));
  await document.fonts.ready;
  return {loaded: true,
          rendered: document.querySelectorAll('.mjx-chtml, .MathJax_CHTML').length,
          errors: document.querySelectorAll('.mjx-merror, .MathJax_Error, merror').length};
}"""


# A printed table a little wider than the page is set in a smaller font until it fits (down
# to 6 pt); a longer line (a sentence) is wrapped at the usual size instead. The viewport has
# the printed width, so widths measured here are the printed ones.
FIT_TABLES = """() => {
  for (const pre of document.querySelectorAll('.jp-OutputArea-output pre')) {
    pre.style.whiteSpace = 'pre';
    const normal = parseFloat(getComputedStyle(pre).fontSize);
    let size = normal;
    while (pre.scrollWidth > pre.clientWidth + 1 && size > 8) {
      size -= 0.2;
      pre.style.fontSize = size + 'px';
    }
    if (pre.scrollWidth > pre.clientWidth + 1) {
      pre.style.fontSize = normal + 'px';
      pre.style.whiteSpace = 'pre-wrap';
    }
  }
}"""
#: The printed width of an A4 page less the margins of CSS's @page, in CSS pixels.
PRINT_WIDTH_PX = round((210 - 26) / 25.4 * 96)


def _chromium_pdf_exporter():
    from nbconvert.exporters import WebPDFExporter
    from traitlets import Unicode

    class ChromiumPDFExporter(WebPDFExporter):
        """nbconvert's webpdf through a given Chromium (nbconvert 7.17 has no option for
        the executable), offline: any request that is not a local file is refused."""

        executable_path = Unicode("/usr/bin/chromium").tag(config=True)

        def run_playwright(self, html_text):
            self.html = html_text
            self.math = {}
            self.blocked = []

            async def main(path):
                from playwright.async_api import async_playwright

                async with async_playwright() as playwright:
                    # --no-sandbox: Chromium's sandbox fails as root and in most containers;
                    # the page is our own notebook and the network is closed to it.
                    browser = await playwright.chromium.launch(
                        executable_path=self.executable_path, args=["--no-sandbox"],
                        handle_sigint=False, handle_sigterm=False, handle_sighup=False)
                    try:
                        page = await browser.new_page(
                            viewport={"width": PRINT_WIDTH_PX, "height": 1000})

                        async def offline(route):
                            url = route.request.url
                            if url.startswith(("file:", "data:")):
                                await route.continue_()
                            else:
                                self.blocked.append(url)
                                await route.abort()

                        await page.route("**/*", offline)
                        await page.emulate_media(media="print")
                        await page.goto(path.as_uri(), wait_until="load")
                        self.math = await page.evaluate(MATHJAX_DONE)
                        await page.evaluate(FIT_TABLES)
                        await page.wait_for_timeout(self.page_render_timeout)
                        return await page.pdf(
                            print_background=True, prefer_css_page_size=True,
                            display_header_footer=True, header_template="<span></span>",
                            footer_template=FOOTER)
                    finally:
                        await browser.close()

            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "report.html"
                path.write_text(html_text, encoding="utf-8")
                with concurrent.futures.ThreadPoolExecutor(1) as pool:  # own event loop
                    return pool.submit(asyncio.run, main(path)).result()

    return ChromiumPDFExporter


def render(nb, chromium: str, css: str = CSS) -> tuple[str, bytes, dict]:
    """``(html, pdf, mathjax status)`` of the merged notebook, styled by ``css``."""
    from jinja2 import DictLoader

    exporter = _chromium_pdf_exporter()(
        executable_path=chromium, exclude_input=True, exclude_input_prompt=True,
        exclude_output_prompt=True, mathjax_url=mathjax_url(), page_render_timeout=200,
        extra_loaders=[DictLoader({"report.html.j2": TEMPLATE})],
        template_file="report.html.j2")
    try:
        pdf, _ = exporter.from_notebook_node(nb, resources={"report_css": css})
    except Exception as error:  # playwright's errors are many lines: keep the first
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ReportError(f"Chromium ({chromium}) could not print the report: "
                          f"{type(error).__name__}: {first}") from None
    return exporter.html, pdf, {**exporter.math, "blocked": exporter.blocked}


def page_count(pdf: bytes) -> int:
    from pypdf import PdfReader

    return len(PdfReader(io.BytesIO(pdf)).pages)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the report from other users
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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
    root = resolve_root(runs_root)
    names = notebook_order(notebooks) if notebooks else [
        n for n in notebook_order() if n not in NOT_IN_REPORT]
    if not names:
        raise ReportError("no notebooks to report on")
    executed = {n: load_executed(root, n, seed) for n in names}
    author = author or load_author()
    statement = ai_statement()
    if not quiet:
        for warning in placeholder_warnings(author, statement):
            print(f"warning: {warning}", file=sys.stderr)
    handin = set(names) <= HANDIN
    merged = merge(executed, author, seed, statement, ai_markers(shipped_files()),
                   sweep_section(root, handin=handin), handin=handin)
    out = Path(out) if out is not None else report_path(runs_root, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(out.with_suffix(".ipynb"), nbformat.writes(merged).encode())

    chromium = find_chromium()
    for layout in LAYOUTS:
        html_text, pdf, math = render(merged, chromium, CSS + LAYOUTS[layout])
        _write_atomic(out.with_suffix(".html"), html_text.encode())
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
        _write_atomic(long, pdf)
        raise ReportError(f"the report has {pages} pages even in its compact layout, the "
                          f"course allows at most {max_pages}: shorten the notebooks' output "
                          f"(kept as {long})")
    _write_atomic(out, pdf)
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
              load_author(name=args.author, username=args.username), args.max_pages)
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
