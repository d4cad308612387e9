"""A notebook run is published whole or not at all: killing it, interrupting it or a cell that
fails changes no file of the finished run of its seed, and the report still builds from that
run; a finished run of other settings is not replaced without being asked; a bad parameter
stops in one line before any folder is made."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, TINY

import notebooks as tool
import report
import report_merge
from flows_src.runs import STAGING_ENV, run_dir, staging_dir

NF = "normalizing_flow"


def digest(folder):
    """``file name -> sha256`` of every file in ``folder``."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


def pairs(name, root, **more):
    params = {**TINY[name], **more, "runs_root": root}
    return [item for k, v in params.items() for item in ("-p", k, str(v))]


def start_training(root):
    """``make run`` of a long retraining of the finished tiny run in ``root`` (seed 0), as a
    process of its own; returns once its first epoch is on disk, i.e. mid-training."""
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "tools" / "notebooks.py"), "run", NF,
         *pairs(NF, root, epochs=400, force=True), "--quiet"],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    epoch = staging_dir(run_dir(NF, 0, root, create=False)) / "model.in-progress.pt"
    started, deadline = time.time(), time.monotonic() + 300
    while not (epoch.exists() and epoch.stat().st_mtime >= started):  # not a killed run's
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run never finished an epoch"
        time.sleep(0.2)
    return process


@pytest.mark.parametrize("how", ["kill", "ctrl-c"])
def test_a_killed_or_interrupted_training_changes_nothing_finished(how, papermill_runs,
                                                                  tmp_path):
    finished = run_dir(NF, 0, papermill_runs, create=False)
    before = digest(finished)
    assert {"normalizing_flow.ipynb", "metrics.json", "model.pt"} <= set(before)
    process = start_training(papermill_runs)
    process.send_signal(signal.SIGKILL if how == "kill" else signal.SIGINT)
    _, err = process.communicate(timeout=120)
    time.sleep(2)  # a killed run's kernel notices its parent is gone within a second
    assert digest(finished) == before
    assert not finished.with_name("seed-0.replaced").exists()
    if how == "ctrl-c":
        assert process.returncode == 130
        assert err.strip().splitlines() == [
            f"interrupted: {NF} was not published; the finished run {finished} is unchanged"]
        assert not staging_dir(finished).exists()
    else:  # the report still builds from the finished runs
        pdf = report.build(papermill_runs, seed=0, out=tmp_path / "report.pdf",
                           author=report.Author("Ada Lovelace", "ada-test"), max_pages=40,
                           quiet=True)
        assert pdf.read_bytes().startswith(b"%PDF-")


def test_a_failing_cell_changes_nothing_finished_and_names_the_file(papermill_runs, tmp_path,
                                                                    capsys):
    finished = run_dir(NF, 0, tmp_path, create=False)
    shutil.copytree(run_dir(NF, 0, papermill_runs, create=False), finished)
    checkpoint = finished / "model.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:2000])  # `truncate -s 2000 model.pt`
    before = digest(finished)
    code = tool.main(["run", NF, *pairs(NF, tmp_path), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert f"checkpoint {checkpoint} cannot be read" in err  # the file, not its copy
    assert "-p force True" in err and "weights_only" not in err
    assert f"the finished run {finished} is unchanged" in err
    failed = finished.with_name("seed-0.failed") / f"{NF}.ipynb"
    assert f"(failed notebook: {failed})" in err and failed.is_file()
    assert digest(finished) == before and not staging_dir(finished).exists()
    assert os.environ.get(STAGING_ENV) is None


def test_other_settings_do_not_replace_a_finished_run_unless_asked(papermill_runs, tmp_path,
                                                                   capsys):
    finished = run_dir(NF, 0, tmp_path, create=False)
    shutil.copytree(run_dir(NF, 0, papermill_runs, create=False), finished)
    before = digest(finished)
    code = tool.main(["run", NF, *pairs(NF, tmp_path, epochs=2, n_eval=400), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "epochs: 1 there, 2 here; n_eval: 500 there, 400 here" in err
    assert "--replace" in err and digest(finished) == before


def test_the_published_notebook_records_its_settings_and_names_its_final_folder(
        papermill_runs):
    finished = run_dir(NF, 0, papermill_runs, create=False)
    text = (finished / f"{NF}.ipynb").read_text()
    assert ".in-progress" not in text
    recorded = json.loads(text)["metadata"]["flows_lab"]["parameters"]
    assert recorded["epochs"] == 1 and recorded["lr"] is None  # None: the preset's
    nb = json.loads(text, object_hook=report_merge.nbformat.NotebookNode)
    assert report_merge.unfinished(nb) is None


@pytest.mark.parametrize("name, more, needle", [
    (NF, {"lr": -1}, "lr must be a number in (0, 1), got -1"),
    (NF, {"epochs": 0}, "epochs must be an integer >= 1, got 0"),
    (NF, {"grid_resolution": 0}, "grid_resolution must be a number in (0, 1], got 0.0"),
    (NF, {"grid_resolution": -0.1}, "grid_resolution must be a number in (0, 1], got -0.1"),
    (NF, {"preset": "bogus"}, "preset must be one of 'spec', 'strong'"),
    (NF, {"seed": -1}, "seed must be an integer >= 0, got -1"),
    (NF, {"epochs": "x"}, "parameter epochs must be a number or None"),
    (NF, {"batch_size": 5000}, "batch_size must be <= n_points (2000), got 5000"),
    ("flow_matching", {"dt": 0}, "dt must be a number in (0, 1], got 0.0"),
    ("flow_matching", {"n_eval": 0}, "n_eval must be an integer >= 1, got 0"),
    ("conditional_flow_matching", {"dt": 0}, "dt must be a number in (0, 1], got 0.0"),
    ("conditional_flow_matching", {"bonus_class": 5}, "bonus_class must be an integer in 0..4"),
    ("data", {"n_points": 1}, "n_points must be an integer >= 2, got 1"),
])
def test_a_bad_parameter_is_one_line_before_anything_is_made(name, more, needle, tmp_path,
                                                             capsys):
    root = tmp_path / "runs"
    code = tool.main(["run", name, *pairs(name, root, **more)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and needle in err, err
    assert not root.exists()


def test_an_empty_or_unwritable_runs_root_is_one_line(tmp_path, capsys):
    before = sorted(p.name for p in ROOT.iterdir())
    assert tool.main(["run", "data", "-p", "runs_root", ""]) == 2
    assert "runs_root must name a folder" in capsys.readouterr().err
    assert sorted(p.name for p in ROOT.iterdir()) == before  # nothing in the project root
    blocked = tmp_path / "file"  # what mkdir meets in a read-only runs root: an OSError
    blocked.write_text("")
    assert tool.main(["run", "data", "-p", "runs_root", str(blocked)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: data: cannot write its run")


def test_an_interrupted_publication_is_completed_or_undone(tmp_path):
    final = run_dir("data", 0, tmp_path)
    (final / "metrics.json").write_text("{}")
    aside = final.with_name("seed-0.replaced")
    os.rename(final, aside)  # cut between the two renames: the old run set aside
    tool._recover(final)
    assert (final / "metrics.json").is_file() and not aside.exists()
    aside.mkdir()  # cut after the new run was put in place
    tool._recover(final)
    assert final.is_dir() and not aside.exists()


def test_two_runs_side_by_side_both_start_their_kernels_and_leave_no_socket_behind(tmp_path):
    """make -j2 runs two notebooks at once: their kernels' IPC sockets must not collide (they
    did when both were named kernel-ipc-N in the working folder), nor stay behind."""
    work = tmp_path / "work"
    work.mkdir()
    runs = [subprocess.Popen(
        [sys.executable, str(ROOT / "tools" / "notebooks.py"), "run", "data",
         *pairs("data", tmp_path / f"runs-{i}"), "--quiet"],
        cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(2)]
    seen = set()  # while the kernels run, their sockets live in a folder of their own
    while any(process.poll() is None for process in runs):
        seen |= {p.name for p in [*work.iterdir(), *ROOT.glob("kernel-ipc-*")]}
        time.sleep(0.2)
    assert not seen, f"sockets in a shared folder: {sorted(seen)}"
    for process in runs:
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output[-2000:]
    for i in range(2):
        assert (run_dir("data", 0, tmp_path / f"runs-{i}", create=False) / "data.ipynb").is_file()
    assert not list(work.iterdir()) and not list(ROOT.glob("kernel-ipc-*"))
