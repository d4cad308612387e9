"""The library's floors (flows_src/__init__.py's docstring): every module sits on one, and
imports only from its own floor and those below; none imports the tooling."""

import ast
import re

from conftest import ROOT

import flows_src

PACKAGE = ROOT / "flows_src"


def floors(doc: str) -> dict[str, int]:
    """``module -> floor`` from lines ``<floor>. <what>: <module>, <module>, ...``, which
    may go on over indented lines."""
    return {name.strip(): int(number)
            for number, names in re.findall(r"^(\d)\. [^:\n]+: (.+(?:\n +\S.*)*)$", doc,
                                            re.MULTILINE)
            for name in names.split(",")}


def imports(path) -> set[str]:
    """The top-level names and ``flows_src`` modules that the module at ``path`` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module)
            if node.module == "flows_src":
                found |= {f"flows_src.{alias.name}" for alias in node.names}
    return found


def test_every_module_is_on_a_floor():
    placed = floors(flows_src.__doc__)
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert modules == set(placed), (
        f"not on a floor: {sorted(modules - set(placed))}; gone: {sorted(set(placed) - modules)}"
        " (flows_src/__init__.py)")


def test_no_module_imports_one_on_a_higher_floor_or_the_tooling():
    placed = floors(flows_src.__doc__)
    tooling = {p.stem for p in (ROOT / "tools").glob("*.py")} | {"tools", "bench"}
    wrong = []
    for name, floor in placed.items():
        for module in imports(PACKAGE / f"{name}.py"):
            other = module.partition("flows_src.")[2].partition(".")[0]
            if other in placed and placed[other] > floor:
                wrong.append(f"{name} (floor {floor}) imports {other} (floor {placed[other]})")
            if module.partition(".")[0] in tooling:
                wrong.append(f"{name} imports the tooling ({module})")
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_a_module_reaching_up(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from flows_src import presets\nimport flows_src.training\n")
    assert {"flows_src.presets", "flows_src.training"} <= imports(bad)
    assert floors("1. a: x, y\n2. b: z\n") == {"x": 1, "y": 1, "z": 2}
    assert floors("1. a: x,\n   y\n\nNot a floor: w\n") == {"x": 1, "y": 1}
