"""The exported scripts' options: types from the defaults (a ``None`` default takes a number
or None), help from the parameters cell's comments, and one line, not a traceback, for a bad
value, an unwritable folder or Ctrl-C."""

import subprocess
import sys
import textwrap

import pytest

from flows_src.cli import parse_parameters


def test_a_none_default_takes_a_number_or_none():
    def parse(*argv):
        return parse_parameters("t", list(argv), epochs=None, lr=None, seed=0)

    assert parse() == (None, None, 0)
    assert parse("--epochs", "3", "--lr", "1e-3") == (3, 1e-3, 0)
    assert isinstance(parse("--epochs", "3")[0], int)
    assert parse("--epochs", "None", "--lr", "none") == (None, None, 0)
    with pytest.raises(SystemExit) as error:
        parse("--epochs", "many")
    assert error.value.code == 2


def test_help_shows_each_parameters_comment_and_default(capsys):
    with pytest.raises(SystemExit):
        parse_parameters("t", ["--help"], notes={"epochs": "None: the preset's (spec: 20)"},
                         epochs=None, grid_resolution=0.03)
    text = " ".join(capsys.readouterr().out.split())
    assert "--epochs NUMBER None: the preset's (spec: 20) (default: None)" in text
    assert "--grid_resolution FLOAT, --grid-resolution FLOAT (default: 0.03)" in text


@pytest.mark.parametrize("raised, code, line", [
    ("ValueError('dt must be a number in (0, 1], got 0.0')", 2,
     "script.py: error: dt must be a number in (0, 1], got 0.0"),
    ("PermissionError(13, 'Permission denied', '/runs/x')", 2,
     "script.py: error: [Errno 13] Permission denied: '/runs/x'"),
    ("KeyboardInterrupt('training stopped in epoch 2 of 20: runs/m.pt is unchanged')", 130,
     "script.py: interrupted: training stopped in epoch 2 of 20: runs/m.pt is unchanged"),
])
def test_a_script_ends_in_one_line(raised, code, line, tmp_path):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(f"""\
        from flows_src.cli import parse_parameters
        seed = parse_parameters("t", seed=0)
        raise {raised}
        """))
    result = subprocess.run([sys.executable, "script.py"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == code
    assert result.stderr.strip().splitlines() == [line]
