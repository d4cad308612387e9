"""The report and the hand-in zip, built from every notebook run with tiny parameters: the
PDF fits the course's 12 pages and holds every question's heading, in order, and the
statement on automatic tools; the zip holds the PDF and no notebook, and its scripts run from
the unpacked zip alone."""

import os
import re
import subprocess
import sys
import sysconfig
import unicodedata
import zipfile

import nbformat
import pytest
from conftest import ROOT, RUNS, TINY
from pypdf import PdfReader

import handin
import notebooks as tool
import report
import report_merge
import submission
from flows_src import registry

#: The questions of the exercise (Sec. 3.3 and 4.3), per notebook.
KNOWN = {
    "normalizing_flow": ["Q1", "Q2", "Q3", "Q4", "Q5"],
    "flow_matching": ["Q1", "Q2", "Q3", "Q4", "Q5"],
    "conditional_flow_matching": ["Q1", "Q2", "Q3", "Bonus"],
}
AUTHOR = handin.Author("Ada Lovelace", "ada-test")


def _plain(text):
    """Text as extracted from a PDF, comparable: NFKC (ligatures), single spaces."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def _words(text):
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())


@pytest.fixture(scope="module")
def built(request, tmp_path_factory):
    """Every notebook run with tiny parameters into one runs folder (a session-wide
    ``papermill_runs`` fixture's when conftest.py has one), then the report and the zip."""
    try:
        root = request.getfixturevalue("papermill_runs")
    except pytest.FixtureLookupError:
        root = tmp_path_factory.mktemp("report-runs")
        for name, params in RUNS:
            pairs = [[k, str(v)] for k, v in params.items()] + [["runs_root", str(root)]]
            tool.run(name, pairs, quiet=True)
    pdf = report.build(root, seed=0, author=AUTHOR, quiet=True)
    # exported/'s freshness has its own tests (here and in test_notebooks.py)
    # AI_USE.md holds the author's placeholder until they write it: a draft
    archive = submission.build(root, seed=0, author=AUTHOR, quiet=True, check_scripts=False,
                               draft=True)
    return root, pdf, archive


@pytest.fixture(scope="module")
def pages(built):
    return [_plain(page.extract_text()) for page in PdfReader(built[1]).pages]


def test_report_is_a_pdf_within_the_course_limit(built, pages):
    root, pdf, _ = built
    assert pdf == root / "report" / "seed-0" / "report.pdf"
    assert pdf.read_bytes().startswith(b"%PDF-")
    assert 1 <= len(pages) <= report.MAX_PAGES
    assert (pdf.parent / "report.html").is_file() and (pdf.parent / "report.ipynb").is_file()


def test_the_notebooks_hold_the_exercises_questions():
    names = report_merge.notebook_order()
    assert {"normalizing_flow", "flow_matching"} <= set(names)
    for name in KNOWN:
        if name in names:
            headings = report_merge.question_headings(ROOT / "notebooks" / f"{name}.py")
            assert [h.split(":")[0].strip() for h in headings] == KNOWN[name], name


def test_report_holds_every_question_heading_in_order(pages):
    text = " ".join(pages)
    title_end = text.find(_plain(report_merge.TITLE_PAGE_END))
    assert title_end >= 0, "the title page is missing"
    cursor = title_end
    for name in registry.names(report=True):
        headings = report_merge.question_headings(ROOT / "notebooks" / f"{name}.py")
        assert headings or name not in KNOWN, f"{name} has no question headings"
        for heading in headings:
            words = _plain(heading.split("$")[0])  # math does not survive text extraction
            found = text.find(words, cursor)
            assert found >= 0, f"{name}: {heading!r} is not in the report (after the last one)"
            cursor = found + len(words)


def test_report_has_a_title_page_and_the_ai_use_section(pages):
    assert AUTHOR.name in pages[0] and AUTHOR.username in pages[0]
    statement = handin.ai_statement()
    heading = next(line[2:] for line in statement.splitlines() if line.startswith("# "))
    body = re.sub(r"<!--.*?-->", "", statement, flags=re.DOTALL).split("\n\n")
    paragraph = next(p for p in body if p.strip() and not p.startswith("#"))
    last = _words(" ".join(pages[-2:]))
    assert _words(heading) in last
    assert " ".join(_words(paragraph).split()[:10]) in last
    assert _words("Parts of the handed-in code marked") in last


def test_zip_holds_the_report_the_code_and_no_notebook(built):
    _, pdf, archive = built
    # AI_USE.md still holds its placeholder: the default name marks the zip a draft
    assert archive.name == "ada-test-ex2-DRAFT.zip"
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
        readme = z.read("README.md").decode()
        requirements = z.read("requirements.txt").decode()
        assert z.read("report.pdf") == pdf.read_bytes()
    assert not [n for n in names if n.endswith(".ipynb") or "__pycache__" in n or
                n.startswith(("notebooks/", "tests/", "tools/", "runs/"))]
    expected = {"README.md", "report.pdf", "AI_USE.md", "requirements.txt", "create_data.py",
                "flows_src/__init__.py"}
    expected |= {f"exported/{n}.py" for n in registry.names(handin=True)}
    assert expected <= set(names)
    assert "exported/beyond.py" not in names  # past the exercise, and it leans on tooling
    assert AUTHOR.name in readme and AUTHOR.username in readme
    pins = [line for line in requirements.splitlines() if line and not line.startswith("#")]
    assert "torch==2.13.0" in pins
    assert {re.split("[=<>]", p)[0] for p in pins} <= submission.ALLOWED


def test_zip_is_deterministic(built, tmp_path):
    root, _, archive = built
    again = submission.build(root, seed=0, author=AUTHOR, out=tmp_path / "again.zip",
                             quiet=True, check_scripts=False, draft=True)
    assert again.read_bytes() == archive.read_bytes()


def test_exported_scripts_run_from_the_unpacked_zip(built, tmp_path):
    _, _, archive = built
    unpacked, work = tmp_path / "unpacked", tmp_path / "work"
    work.mkdir()
    with zipfile.ZipFile(archive) as z:
        z.extractall(unpacked)
    # -S: no site processing, so no .pth file puts the project on the path; the installed
    # libraries come from PYTHONPATH alone, and the scripts find the unpacked code themselves
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", str(tmp_path)),
           "MPLBACKEND": "Agg",
           "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    python = [sys.executable, "-S"]
    probe = subprocess.run([*python, "-c", "import flows_src"], cwd=work, env=env,
                           capture_output=True, text=True)
    assert probe.returncode != 0, "the project is on the path: the check would prove nothing"
    runs = [("data", ["--n-points", "500"]),
            ("normalizing_flow", [f"--{k}={v}" for k, v in TINY["normalizing_flow"].items()])]
    for name, args in runs:
        result = subprocess.run([*python, str(unpacked / "exported" / f"{name}.py"), *args],
                                cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        out = unpacked / "runs" / name / "seed-0"  # beside the unpacked code, not the repo's
        assert (out / "metrics.json").is_file() and list(out.glob("*.png")), name
    assert not list(work.iterdir()), "a script wrote into the working directory"


def test_submission_refuses_stale_scripts(tmp_path):
    tool.export(tmp_path)
    submission.check_exported(tmp_path)
    stale = tmp_path / "data.py"
    stale.write_text(stale.read_text() + "# edited by hand\n")
    with pytest.raises(handin.ReportError, match=r"exported/ is out of date \(data.py\)"):
        submission.check_exported(tmp_path)


def test_submission_refuses_a_missing_or_foreign_report(built, tmp_path):
    root, _, _ = built
    with pytest.raises(handin.ReportError, match="report.pdf is missing"):
        submission.build(tmp_path, author=AUTHOR, quiet=True, check_scripts=False)
    with pytest.raises(handin.ReportError, match="names another author"):
        submission.build(root, author=handin.Author("Someone Else", "else"), quiet=True,
                         out=tmp_path / "else.zip", check_scripts=False)


def test_report_fails_in_one_line_without_a_run(tmp_path, capsys):
    code = report.main(["--runs-root", str(tmp_path), "--notebooks", "flow_matching"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "flow_matching.ipynb is missing: run the flow_matching notebook" in err


def test_author_comes_from_the_config_file_and_make_variables(tmp_path):
    config = tmp_path / "author.toml"
    config.write_text('name = "Grace Hopper"\nusername = "grace"\n')
    assert handin.load_author(config) == handin.Author("Grace Hopper", "grace")
    assert handin.load_author(config, username="gh") == handin.Author("Grace Hopper", "gh")
    assert handin.load_author(tmp_path / "none.toml").is_placeholder
    assert submission.zip_name(handin.Author("A B", "a/b c")) == "a_b_c-ex2.zip"


def test_ai_markers_are_found_in_the_code_and_not_in_the_exported_header(tmp_path):
    code = tmp_path / "x.py"
    code.write_text(tool.export_text("data") + "# AI-ASSISTED: ChatGPT wrote f; tested\n"
                    "def f():\n    return 1  # AI-ASSISTED: Copilot completed this line\n")
    found = handin.ai_markers([code], tmp_path)
    assert [(n, what) for _, n, what in found] == [
        (len(code.read_text().splitlines()) - 2, "ChatGPT wrote f; tested"),
        (len(code.read_text().splitlines()), "Copilot completed this line")]


def test_beyond_has_its_own_pdf_outside_the_hand_in(built, pages, tmp_path):
    root, _, _ = built
    pdf = report.build(root, seed=0, notebooks=["beyond"], out=tmp_path / "beyond.pdf",
                       author=AUTHOR, max_pages=40, quiet=True)
    text = _words(" ".join(_plain(p.extract_text()) for p in PdfReader(pdf).pages))
    for heading in ("Spec against strong", "What each change bought", "Solvers",
                    "Straighter paths"):
        assert _words(heading) in text, heading
    assert "spec against strong" not in _words(" ".join(pages))  # not in the hand-in


def test_report_text_names_no_local_path_and_no_variable(built, pages):
    root, _, _ = built
    text = " ".join(pages)
    for path in {str(ROOT), str(root), "/tmp/", "/home/", "/work/", "/root/"}:
        assert path not in text, f"the report shows a local path ({path})"
    # a markdown cell cannot see a variable: a parameter's name in the text is an unfilled
    # value (the notebooks print computed values from code instead)
    names = {name for nb in registry.names(report=True)
             for name in tool.parameters_cell(tool.jupytext.read(
                 ROOT / "notebooks" / f"{nb}.py"))[1] if "_" in name}
    # (the title page lists the parameters these tiny runs were started with, by name: that
    # is where a reader learns the runs' settings; the answers come after it)
    answers = text[text.find(_plain(report_merge.TITLE_PAGE_END)):]
    found = sorted(n for n in names if re.search(rf"\b{n}\b", answers))
    assert not found, f"the report names variables: {found}"
    assert re.search(r"\bn_points\b", text), "the title page names the tiny runs' settings"
    # set-up, training logs and result dumps stay in the notebooks (tagged report-skip)
    merged = nbformat.read(root / "report" / "seed-0" / "report.ipynb", as_version=4)
    headings = [line for cell in merged.cells if cell.cell_type == "markdown"
                for line in cell.source.splitlines() if line.startswith("## ")]
    assert not [h for h in headings if h.split()[1] in ("Training", "Results")], headings
    assert "FMConfig(" not in text and "NFConfig(" not in text and "preset '" not in text


def test_beyond_pdf_has_its_own_title_page_and_no_hand_in_sections(built, tmp_path):
    root, _, _ = built
    pdf = report.build(root, seed=0, notebooks=["beyond"], out=tmp_path / "beyond.pdf",
                       author=AUTHOR, max_pages=40, quiet=True)
    pages = [_plain(p.extract_text()) for p in PdfReader(pdf).pages]
    assert _words(report_merge.BEYOND_TITLE) in _words(pages[0])
    assert "not part of the hand-in report" in pages[0]
    assert _words("Parts of the handed-in code marked") not in _words(" ".join(pages))


def _copy_runs(root, target):
    """The executed notebooks of ``root``'s seed-0 runs of the hand-in's notebooks, and its
    report, copied under ``target``."""
    for name in registry.names(handin=True):
        folder = target / name / "seed-0"
        folder.mkdir(parents=True)
        source = root / name / "seed-0" / f"{name}.ipynb"
        (folder / source.name).write_bytes(source.read_bytes())
    (target / "report" / "seed-0").mkdir(parents=True)
    pdf = root / "report" / "seed-0" / "report.pdf"
    (target / "report" / "seed-0" / "report.pdf").write_bytes(pdf.read_bytes())
    return target


@pytest.mark.parametrize("fault, needle", [
    ("error", r"holds an error in cell \d+: ValueError: lr must be a number in \(0, 1\)"),
    ("unfinished", r"is unfinished \(a cell is pending\)"),
    ("not papermill", r"was not executed by papermill"),
])
def test_report_and_submission_refuse_a_notebook_holding_an_error(fault, needle, built,
                                                                  tmp_path):
    runs = _copy_runs(built[0], tmp_path / "runs")
    path = runs / "normalizing_flow" / "seed-0" / "normalizing_flow.ipynb"
    nb = nbformat.read(path, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    if fault == "error":  # what papermill leaves when a cell raises
        code[3].outputs.append(nbformat.v4.new_output(
            "error", ename="ValueError", evalue="lr must be a number in (0, 1), got -1.0",
            traceback=["Traceback ..."]))
    elif fault == "unfinished":  # what papermill has written while a run is under way
        code[-1].metadata["papermill"]["status"] = "pending"
    else:
        del nb.metadata["papermill"]
    nbformat.write(nb, path)
    expected = re.escape(str(path)) + " " + needle
    with pytest.raises(handin.ReportError, match=expected):
        report.build(runs, seed=0, author=AUTHOR, quiet=True)
    assert not (runs / "report" / "seed-0" / "report.html").exists()  # refused before rendering
    with pytest.raises(handin.ReportError, match=expected):
        submission.build(runs, seed=0, author=AUTHOR, quiet=True, check_scripts=False,
                         draft=True)
    assert not (runs / "submission").exists()


def test_submission_refuses_placeholders_unless_a_draft_is_asked_for(built, tmp_path,
                                                                     monkeypatch, capsys):
    root = built[0]
    monkeypatch.setattr(handin, "ai_statement", lambda: f"# Use\n{handin.PLACEHOLDER_AI_USE}\n")
    with pytest.raises(handin.ReportError, match=r"^not ready to hand in: AI_USE.md still "
                       r"holds the placeholder .*make submission DRAFT=1, or --draft\)$"):
        submission.build(root, seed=0, author=AUTHOR, out=tmp_path / "x.zip",
                         check_scripts=False)
    assert not (tmp_path / "x.zip").exists()
    placeholder = handin.Author(**handin.PLACEHOLDER_AUTHOR)
    with pytest.raises(handin.ReportError, match="placeholder author"):
        submission.check_placeholders(placeholder, draft=False, quiet=True)
    submission.build(root, seed=0, author=AUTHOR, out=tmp_path / "x.zip",
                     check_scripts=False, draft=True)
    assert (tmp_path / "x.zip").is_file()
    assert "warning (draft): AI_USE.md still holds" in capsys.readouterr().err
    monkeypatch.setattr(handin, "ai_statement", lambda: "# Use\nI used no tool.\n")
    submission.check_placeholders(AUTHOR, draft=False, quiet=True)  # a real statement passes
