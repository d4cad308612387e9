"""The course's library rule (SPEC.md): handed-in code imports only what the course allows."""

import ast
import sys

from conftest import ROOT

ALLOWED = {"numpy", "torch", "matplotlib", "tqdm", "pandas", "plotly", "tensorboard", "wandb",
           "flows_src", "create_data"}


def shipped_files():
    return [ROOT / "create_data.py", *sorted((ROOT / "flows_src").rglob("*.py")),
            *sorted((ROOT / "exported").rglob("*.py"))]


def imported_roots(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from ((a.name.split(".")[0], node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split(".")[0], node.lineno


def test_shipped_code_imports_only_allowed_libraries():
    files = shipped_files()
    assert len(files) > 5  # the scan sees the library and the exported scripts
    bad = [f"{path.relative_to(ROOT)}:{line}: {name}"
           for path in files for name, line in imported_roots(path)
           if name not in ALLOWED and name not in sys.stdlib_module_names]
    assert not bad, "imports outside the course's list:\n" + "\n".join(bad)


def test_the_scan_catches_a_forbidden_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import numpy\nfrom scipy import stats\nimport jupytext.cli\n")
    names = {name for name, _ in imported_roots(bad)}
    assert names - ALLOWED - set(sys.stdlib_module_names) == {"scipy", "jupytext"}
