"""The table of notebooks (flows_src/registry.py) is consistent, and the Makefile reads it with a
bare Python: no venv, no torch."""

import subprocess
import sys

from conftest import ROOT

from flows_src import experiments, registry


def test_the_table_is_consistent():
    names = registry.names()
    assert len(names) == len(set(names))
    for nb in registry.NOTEBOOKS:
        assert not nb.report or nb.handin, f"{nb.name}: in the report but not the hand-in"
        assert not nb.preset or nb.family, f"{nb.name}: a preset needs a model family"
    families = [nb.family for nb in registry.NOTEBOOKS if nb.family]
    assert sorted(families) == sorted(experiments.FAMILIES)
    assert all(registry.notebook_of(f) == experiments.NOTEBOOKS[f] for f in families)


def test_the_makefile_reads_the_table_without_the_venv():
    # -S: no site-packages (no torch, not the installed project), as before `make setup`
    for flag, names in (("--handin", registry.names(handin=True)),
                        ("--preset", registry.names(preset=True))):
        result = subprocess.run([sys.executable, "-S", "-m", "flows_src.registry", flag],
                                cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == names
