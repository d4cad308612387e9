"""Command-line options for the exported scripts, made from a notebook's parameters cell.

``make export`` turns the cell tagged ``parameters`` into a call of :func:`parse_parameters`
with the cell's values as defaults, so ``python exported/normalizing_flow.py --seed 3
--epochs 7`` runs what ``papermill -p seed 3 -p epochs 7`` would. An unknown option, a value
of the wrong type, or a ``ValueError`` raised by the script (a parameter out of range)
ends the script with one line on stderr and exit status 2.
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


def _type_of(default: object):
    if isinstance(default, bool):
        return _boolean, "BOOL"
    if isinstance(default, int):
        return int, "INT"
    if isinstance(default, float):
        return _number, "FLOAT"
    return str, "TEXT"


def _excepthook(kind, value, trace):
    if issubclass(kind, ValueError):
        sys.stderr.write(f"{sys.argv[0]}: error: {value}\n")
        raise SystemExit(2)
    sys.__excepthook__(kind, value, trace)


def parse_parameters(description: str, argv: list[str] | None = None, **defaults):
    """Parse ``--name value`` options whose names, types and defaults are ``defaults``.

    Returns the values in the order of ``defaults`` (one value alone when there is one).
    Also makes a ``ValueError`` anywhere later in the script a one-line error.
    """
    parser = _OneLineParser(description=description)
    for name, default in defaults.items():
        kind, metavar = _type_of(default)
        flags = dict.fromkeys([f"--{name}", f"--{name.replace('_', '-')}"])
        parser.add_argument(*flags, dest=name, type=kind,
                            default=default, metavar=metavar,
                            help=f"default: {default!r}")
    values = vars(parser.parse_args(argv))
    sys.excepthook = _excepthook
    result = tuple(values[name] for name in defaults)
    return result[0] if len(result) == 1 else result
