"""Command-line options for the exported scripts, made from a notebook's parameters cell.

``make export`` turns the cell tagged ``parameters`` into a call of :func:`parse_parameters`
with the cell's values as defaults and its comments as help, so ``python
exported/normalizing_flow.py --seed 3 --epochs 7`` runs what ``make run NB=normalizing_flow
ARGS="-p seed 3 -p epochs 7"`` would. A parameter whose default is ``None`` (e.g. "the
preset's value") takes a number or ``None``.

An unknown option, a value of the wrong type, or a ``ValueError`` raised by the script (a
parameter out of range, an unreadable checkpoint) ends the script with one line on stderr
and exit status 2; so does an ``OSError`` (a folder that cannot be written, a missing
result of another script). Ctrl-C ends it with one line saying what was kept, status 130.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["parse_parameters"]


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print the whole usage first
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _number(text: str) -> float:
    return float(text)


def _number_or_none(text: str) -> int | float | None:
    """``None``, or the number ``text`` spells (an int when it is one)."""
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or None, got {text!r}") from None


def _type_of(default: object):
    if default is None:
        return _number_or_none, "NUMBER"
    if isinstance(default, bool):
        return _boolean, "BOOL"
    if isinstance(default, int):
        return int, "INT"
    if isinstance(default, float):
        return _number, "FLOAT"
    return str, "TEXT"


def _excepthook(kind, value, trace):
    if issubclass(kind, KeyboardInterrupt):
        said = f": {value}" if str(value) else ""
        sys.stderr.write(f"\n{sys.argv[0]}: interrupted{said}\n")
        raise SystemExit(130)
    if issubclass(kind, (ValueError, OSError)):
        sys.stderr.write(f"{sys.argv[0]}: error: {value}\n")
        raise SystemExit(2)
    sys.__excepthook__(kind, value, trace)


def parse_parameters(description: str, argv: list[str] | None = None, *,
                     notes: dict[str, str] | None = None, **defaults):
    """Parse ``--name value`` options whose names, types and defaults are ``defaults``
    (``notes``: a help text per name, e.g. the parameters cell's comments).

    Returns the values in the order of ``defaults`` (one value alone when there is one).
    Also makes a ``ValueError``, an ``OSError`` or Ctrl-C anywhere later in the script a
    one-line message.
    """
    notes = notes or {}
    parser = _OneLineParser(description=description)
    for name, default in defaults.items():
        kind, metavar = _type_of(default)
        flags = dict.fromkeys([f"--{name}", f"--{name.replace('_', '-')}"])
        note = f"{notes[name]} " if name in notes else ""
        parser.add_argument(*flags, dest=name, type=kind,
                            default=default, metavar=metavar,
                            help=f"{note}(default: {default!r})".replace("%", "%%"))
    values = vars(parser.parse_args(argv))
    sys.excepthook = _excepthook
    result = tuple(values[name] for name in defaults)
    return result[0] if len(result) == 1 else result
