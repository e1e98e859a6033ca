"""The README's and the docs pages' commands run as written, scaled down: every shell and Python block of README.md
and docs/*.md is either run here or skipped for a stated reason (a new block must be classified, or this test
fails).

Scaling: generate runs get ``--num-networks``/``--max-epochs``/``--train-images``/``--test-images`` appended, the
baselines ``--max-iter 5`` and the DMC ``--epochs 1`` (argparse keeps the last value), so a block's own options
are all exercised but small. The ``hf://`` lines read a zoo from the suite's local stand-in for the Hub.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA
from tests.zoos import write_synthetic_zoo

ROOT = Path(__file__).resolve().parents[1]

#: Blocks not run here, by a pattern of their text, and why.
SKIP: dict[str, str] = {
    "pip install": "installs packages (CI installs the package itself with the README's test command)",
    "--device cuda": "needs a GPU",
    "/data/": "needs the authors' release or image files at a machine-specific path",
    "builder.push": "uploads to the Hugging Face Hub",
    "pytest -q": "is this test suite",
    "<zoo>/": "a folder listing, not a command",
    "@inproceedings": "a citation",
    "weightzoo convert --format": "needs the Small CNN Zoo or Model Zoos files (no download here); the converters "
    "run on fakes in the release formats in tests/test_convert_smallcnnzoo.py and tests/test_convert_modelzoos.py",
    "benchmarks/probe_vs_stats.py runs/mnist120": "a 5-minute benchmark on the 120-network zoo (the probe and the "
    "benchmark are tested in tests/test_baselines_probe.py and tests/test_benchmark.py)",
    "--num-networks 120": "the 120-network study: the commands of the runs/mnist24 blocks with DMC options, at a size "
    "CI cannot train (its options are tested in tests/test_baselines*.py)",
}
#: Blocks not run here, by their language, and why.
SKIP_LANGUAGES: dict[str, str] = {"mermaid": "a diagram (docs/architecture.md), not a command"}
#: Blocks run here (by a pattern of their text), in this order: later ones read what earlier ones wrote.
RUN: tuple[str, ...] = (
    "--num-networks 16 --max-epochs 2 --out first-look",
    'zoo = weightzoo.open_zoo("first-look")',
    "python -m builder.generate --executor process --workers 2   # demo zoo",
    "zoo = weightzoo.open_zoo()",
    "python -m builder.reproduce --networks 0 3",
    "--num-networks 24 --max-epochs 3 --out runs/mnist24",
    'fit("runs/mnist24"',
    "python -m weightzoo.baselines runs/mnist24",
    'ds = load_dataset("weightzoo")',
)
SCALE_GENERATE = ["--max-epochs", "1", "--train-images", "200", "--test-images", "100"]
SCALE_DEMO = ["--num-networks", "12", "--max-epochs", "1"]


#: The documents whose blocks must run: the README and the documentation pages.
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks() -> list[tuple[str, str, str]]:
    """(file:line, language, text) of every fenced block of the README and the documentation pages."""
    found = []
    for doc in DOCUMENTS:
        lang, start, lines = None, 0, []
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            if line.startswith("```"):
                if lang is None:
                    lang, start, lines = line[3:].strip() or "text", number, []
                else:
                    found.append((f"{doc.relative_to(ROOT)}:{start}", lang, "\n".join(lines)))
                    lang = None
            elif lang is not None:
                lines.append(line)
    return found


def _all_text() -> str:
    return "\n".join(doc.read_text() for doc in DOCUMENTS)


def test_every_block_is_run_or_skipped_for_a_reason():
    unclassified = [
        where
        for where, lang, text in blocks()
        if not any(p in text for p in RUN) and not any(p in text for p in SKIP) and lang not in SKIP_LANGUAGES
    ]
    assert unclassified == [], "classify these blocks in tests/test_readme.py (RUN or SKIP)"
    runnable = [text for _, _, text in blocks() if any(p in text for p in RUN)]
    assert len(runnable) == len(RUN), "each RUN pattern must match exactly one block"


def test_environment_table_lists_every_variable_with_its_default():
    from weightzoo.paths import ENVIRONMENT

    text = _all_text()
    rows = {m[1]: m[2] for m in re.finditer(r"^\| `(WEIGHTZOO_\w+)` \| `([^`]*)` \|", text, flags=re.MULTILINE)}
    assert rows == {name: default for name, (default, _) in ENVIRONMENT.items()}


def _commands(text: str) -> list[str]:
    """Shell commands of a block: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line for line in (ln.strip() for ln in joined.splitlines()) if line and not line.startswith("#")]


def _scaled(command: str) -> str:
    words = shlex.split(command, comments=True)
    if words[:3] == ["python", "-m", "builder.generate"]:
        if "--preset" in words:
            words += [*SCALE_GENERATE, "--num-networks", "10"]
        else:
            words += SCALE_DEMO
        words += ["--quiet"]
    if words[:3] == ["python", "-m", "weightzoo.baselines"]:
        words += ["--max-iter", "5"] + (["--epochs", "1"] if "dmc" in words else [])  # boosting rounds, DMC epochs
    words[0] = sys.executable if words[0] == "python" else words[0]
    return shlex.join(words)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A scratch folder laid out like a clone's parent: ``work/repo`` (cwd) and ``work/shared/data``."""
    base = tmp_path_factory.mktemp("readme")
    repo = base / "repo"
    repo.mkdir()
    if (SHARED_DATA / "mnist").is_dir():
        (base / "shared").mkdir()
        (base / "shared" / "data").symlink_to(SHARED_DATA)
    env = {
        **os.environ,
        "WEIGHTZOO_HOME": str(base / "home"),
        "WEIGHTZOO_CACHE": str(base / "images"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_CACHE": str(base / "hf-cache"),
        "MPLBACKEND": "Agg",
        "DATA": str(base / "shared" / "data"),  # the README's placeholder for the folder of image files
    }
    return repo, env


def _block(pattern: str) -> str:
    (text,) = [text for _, _, text in blocks() if pattern in text]
    return text


def _shell(pattern: str, work) -> None:
    repo, env = work
    for command in _commands(_block(pattern)):
        if any(p in command for p in SKIP):
            continue
        if "=" in command.split()[0] and not command.startswith("python"):  # T="..." in a block: an assignment
            name, value = command.split("=", 1)
            env[name] = shlex.split(value)[0]
            continue
        command = re.sub(r"\$(\w+)", lambda m: env.get(m[1], m[0]), command)
        start = time.perf_counter()
        done = subprocess.run(_scaled(command), shell=True, cwd=repo, env=env, capture_output=True, text=True)
        print(f"{time.perf_counter() - start:6.1f} s  {command}")
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"


def _python(pattern: str, work, monkeypatch) -> None:
    repo, env = work
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(repo)
    code = _block(pattern)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})


def _needs_images() -> None:
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"real MNIST not found at {SHARED_DATA}")


@pytest.mark.slow
def test_readme_blocks_run_as_written(work, monkeypatch, hub):
    _shell(RUN[0], work)  # the first look: a small zoo, loaded and fitted
    _python(RUN[1], work, monkeypatch)
    _shell(RUN[2], work)  # quick start: the demo zoo
    _python(RUN[3], work, monkeypatch)
    _shell(RUN[4], work)  # reproduce the demo zoo
    _needs_images()
    _shell(RUN[5], work)  # runs/mnist24 on real MNIST / Fashion-MNIST
    _python(RUN[6], work, monkeypatch)
    _shell(RUN[7], work)
    env = work[1]
    write_synthetic_zoo(Path(env["WEIGHTZOO_HOME"]) / "nws_fixed", 5, preset="nws_fixed", diverged=())
    write_synthetic_zoo(hub / "datasets" / "org" / "nws-fixed", 5, preset="nws_fixed", diverged=())
    _python(RUN[8], work, monkeypatch)  # load_dataset: home, presets, a folder, the (stand-in) Hub


def test_citation_file_names_the_paper_and_the_software():
    import yaml

    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    paper = cff["preferred-citation"]
    assert paper["year"] == 2020 and "Classifying the classifier" in paper["title"]
    assert paper["authors"][0]["family-names"] == "Eilertsen"
    from weightzoo.about import BIBTEX

    assert BIBTEX in (ROOT / "README.md").read_text()  # the README cites as the cards and the datasets info do
