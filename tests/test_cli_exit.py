"""Command-line tools exit with their own code, also on a busy machine (weightzoo.cli.run_main)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.zoos import write_synthetic_zoo
from weightzoo.cli import exit_code
from weightzoo.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def _python(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_exit_code_maps_like_the_interpreter(capsys):
    assert exit_code(lambda argv: 0) == 0
    assert exit_code(lambda argv: None) == 0
    assert exit_code(lambda argv: 1) == 1

    def usage(argv):
        raise SystemExit(2)

    def config(argv):
        raise ConfigError("bad option")

    def bug(argv):
        raise RuntimeError("boom")

    assert exit_code(usage) == 2
    assert exit_code(config) == 2
    assert "error: bad option" in capsys.readouterr().err
    assert exit_code(bug) == 1
    assert "RuntimeError: boom" in capsys.readouterr().err


def test_run_main_runs_atexit_handlers_and_flushes():
    script = textwrap.dedent(
        """
        import atexit, sys
        from weightzoo.cli import run_main
        atexit.register(lambda: print("atexit ran", flush=True))
        def main(argv):
            sys.stdout.write("unflushed output")
            return 3
        run_main(main)
        """
    )
    r = _python("-c", script)
    assert r.returncode == 3, r.stderr
    assert "unflushed output" in r.stdout and "atexit ran" in r.stdout


@pytest.mark.slow
def test_codes_survive_cpu_load(tmp_path):
    """A failing and a succeeding command, each 6 times in parallel with CPU burners: every code is its own."""
    zoo = tmp_path / "zoo"
    write_synthetic_zoo(zoo)
    read = textwrap.dedent(
        f"""
        import torch, pyarrow.parquet as pq
        from weightzoo.cli import run_main
        run_main(lambda argv: 0 if pq.read_table({str(zoo / "index.parquet")!r}).num_rows else 1)
        """
    )
    failing = ["-m", "weightzoo.baselines", "--data-dir", str(zoo), "--target", "no_such_target"]
    commands = [(failing, 2), (["-c", read], 0)] * 6
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda c: _python(*c[0]), commands))
    finally:
        for b in burners:
            b.kill()
            b.wait()
    pairs = list(zip(results, commands, strict=True))
    bad = [(r.returncode, expected, r.stderr[-300:]) for r, (_, expected) in pairs if r.returncode != expected]
    assert not bad, f"{len(bad)} of {len(pairs)} runs exited with another code (got, expected, stderr): {bad}"
    assert all("error: unknown target 'no_such_target'" in r.stderr for r, (c, _) in pairs if c is failing)


def test_misspelt_names_get_a_did_you_mean_in_one_line(capsys, tmp_path):
    """Targets, models, presets, choices and option names: one line, exit 2, the closest valid name suggested."""
    from builder.generate import main as generate_main
    from weightzoo.baselines.__main__ import main as baselines_main

    zoo = tmp_path / "zoo"
    write_synthetic_zoo(zoo, n=3)
    cases = [
        (baselines_main, [str(zoo), "--target", "initialisation"], "did you mean 'initialization'?"),
        (baselines_main, [str(zoo), "--model", "stat"], "did you mean 'stats'?"),
        (generate_main, ["--preset", "dem", "--out", str(tmp_path / "g")], "did you mean 'demo'?"),
        (generate_main, ["--max-epohcs", "3"], "did you mean '--max-epochs'?"),
        (generate_main, ["--trainer", "pak"], "did you mean 'pack'?"),
    ]
    from weightzoo.__main__ import main as weightzoo_main

    assert exit_code(weightzoo_main, ["genrate"]) == 2
    assert "did you mean 'generate'?" in capsys.readouterr().err
    for main, argv, hint in cases:
        assert exit_code(main, argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert hint in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "g").exists()
