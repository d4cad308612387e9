"""The fingerprint of a trained model: a hash of everything that decides its weights.

:func:`flows_src.training.train` stores it in the checkpoint and
:func:`flows_src.training.train_or_load` reuses a checkpoint while it is unchanged. It covers
the config and the code (:func:`code_modules`) as syntax trees, so an edit of a docstring or
a comment never forces a retrain, and any edit of what runs does.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib.util
import json
from pathlib import Path

from torch import nn

from flows_src.config import TrainingConfig

__all__ = ["fingerprint", "code_modules"]


def fingerprint(model: nn.Module, config: TrainingConfig) -> str:
    """A hash of what decides the trained weights: the config (less ``compile``, which
    changes speed, not the model, and a flow-matching model's sampler, which integrates the
    trained field and never touches its training) and the code (:func:`code_modules`: the
    model's modules, the trainer, the data samplers and every module of the package they
    import), as syntax trees without docstrings or comments, so an edit of the documentation
    never retrains."""
    values = dataclasses.asdict(config)
    values.get("training", values).pop("compile")  # a run's config holds a training part
    values.pop("sampler", None)
    parts = [type(model).__qualname__, json.dumps(values, sort_keys=True)]
    for name in code_modules(model):
        parts += [name, _code(name)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def code_modules(model: nn.Module) -> list[str]:
    """The modules whose code decides ``model``'s trained weights, sorted: those defining its
    layers, the trainer (``training``) and the data samplers (``rings``), and, within their
    package, every module these import, directly or not (so also the
    :class:`~flows_src.history.History` the trainer fills and saves)."""
    package = __name__.partition(".")[0]
    todo = [type(m).__module__ for m in model.modules()
            if type(m).__module__.partition(".")[0] == package]
    todo += [f"{package}.training", f"{package}.rings"]
    found: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += _imported(name, package)
    return sorted(found)


def _imported(name: str, package: str) -> list[str]:
    """The modules of ``package`` that module ``name`` imports (anywhere in its code)."""
    found = []
    for node in ast.walk(ast.parse(_source(name))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = (importlib.util.resolve_name("." * node.level + (node.module or ""),
                                                name.rpartition(".")[0])
                    if node.level else node.module)
            found.append(base)
            found += [f"{base}.{alias.name}" for alias in node.names]
    return [m for m in found if m.partition(".")[0] == package and _file(m) is not None]


def _file(name: str) -> Path | None:
    """The source file of module ``name`` of this package (``None``: not a module, e.g. a
    class imported from one)."""
    path = Path(__file__).parent.joinpath(*name.split(".")[1:])
    return next((p for p in (path.with_suffix(".py"), path / "__init__.py")
                 if "." in name and p.is_file()), None)


def _source(name: str) -> str:
    return _file(name).read_text()


def _code(name: str) -> str:
    """Module ``name``'s syntax tree (what runs) without its docstrings, as text: comments
    never reach the tree, and layout is not part of it."""

    class NoDocstrings(ast.NodeTransformer):
        def visit_Expr(self, node: ast.Expr) -> ast.Expr | None:
            text = isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            return None if text else node

    return ast.dump(NoDocstrings().visit(ast.parse(_source(name))))
