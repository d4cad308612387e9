"""Shared test settings: the project root on the path, and the tiny parameters with which
every notebook (and its exported script) is run by the tests."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: Per notebook: parameters small enough to run the whole notebook in seconds.
TINY = {
    "data": {"n_points": 2000},
}
