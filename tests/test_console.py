"""The ``weightzoo`` command: every tool a subcommand, the same options and exit codes as ``python -m``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from weightzoo.__main__ import COMMANDS, main


def test_usage_lists_every_tool(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)
    assert main([]) == 2  # no command: usage on standard error, a usage error's code
    assert main(["train"]) == 2
    assert "unknown command 'train'; expected one of: generate, reproduce" in capsys.readouterr().err


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_subcommand_is_its_tool(name, capsys):
    with pytest.raises(SystemExit) as done:
        main([name, "--help"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: weightzoo {name}")


def test_console_script_is_installed_and_exits_with_the_tools_code(tmp_path):
    script = shutil.which("weightzoo", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the weightzoo console script is not installed (pip install -e . installs it)")
    done = subprocess.run([script, "baselines", str(tmp_path / "missing")], capture_output=True, text=True)
    assert done.returncode == 2 and "error:" in done.stderr


def test_python_m_weightzoo_is_the_weightzoo_command(tmp_path):
    """``python -m weightzoo`` and ``python -m builder`` run the same dispatcher as the console script."""
    root = str(Path(__file__).resolve().parents[1])
    for module in ("weightzoo", "builder"):
        done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=root)
        assert done.returncode == 0 and "commands:" in done.stdout and "generate" in done.stdout, done.stderr
    done = subprocess.run([sys.executable, "-m", "weightzoo", "baselines", str(tmp_path / "missing")],
                          capture_output=True, text=True, cwd=root)  # fmt: skip
    assert done.returncode == 2 and done.stderr.startswith("error:") and "Traceback" not in done.stderr


def test_generate_help_shows_the_defaults_the_environment_sets(tmp_path, monkeypatch, capsys):
    from builder.generate import main

    monkeypatch.setenv("WEIGHTZOO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WEIGHTZOO_CACHE", str(tmp_path / "images"))
    with pytest.raises(SystemExit):
        main(["--help"])
    text = "".join(capsys.readouterr().out.split())  # argparse wraps long paths, even inside them
    assert str(tmp_path / "home") in text and str(tmp_path / "images") in text and "~/.cache" not in text
