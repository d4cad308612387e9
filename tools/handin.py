"""Who wrote the hand-in and with which tools: ``author.toml``, ``AI_USE.md``, the
``# AI-ASSISTED:`` markers in the handed-in code, and the placeholders that must not be handed
in. Read by the report (its title page and last section) and by the hand-in zip.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from flows_src import registry

ROOT = Path(__file__).resolve().parents[1]
AUTHOR_FILE = ROOT / "author.toml"
AI_USE_FILE = ROOT / "AI_USE.md"
PLACEHOLDER_AUTHOR = {"name": "Your Name", "username": "your-cse-username"}
PLACEHOLDER_AI_USE = "[TO BE WRITTEN BY THE AUTHOR]"
#: A marker of code written by an automatic tool: at the start of a line or after code.
AI_MARKER = re.compile(r"(?:^|\s)#\s*AI-ASSISTED:\s*(.*)$")


class ReportError(Exception):
    """A problem the user can fix (a missing run, a missing package): one line."""


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
    """The handed-in code: ``create_data.py``, ``flows_src/`` and the scripts in
    ``exported/`` of the notebooks that answer the exercise (the registry's ``handin``; the
    beyond notebook goes past the exercise and leans on tooling the zip does not hold)."""
    files = [root / "create_data.py"]
    files += sorted(p for p in (root / "flows_src").rglob("*.py") if "__pycache__" not in p.parts)
    files += [root / "exported" / f"{name}.py" for name in registry.names(handin=True)]
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

