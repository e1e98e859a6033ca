"""``load_dataset("weightzoo")`` in a fresh interpreter with no ``import weightzoo``: the ``.pth`` start-up hook."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.zoos import write_synthetic_zoo

ROOT = Path(__file__).resolve().parents[1]
PTH = "weightzoo-autoregister.pth"


def _installed() -> bool:
    import site

    return any((Path(p) / PTH).is_file() for p in site.getsitepackages())


needs_install = pytest.mark.skipif(not _installed(), reason=f"{PTH} not installed (pip install -e . installs it)")


def _python(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    inherited = {k: v for k, v in os.environ.items() if k != "WEIGHTZOO_AUTOREGISTER"}  # the hook's default: on
    environ = {**inherited, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **env}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=environ, capture_output=True, text=True)


@needs_install
def test_load_dataset_without_import_offline(tmp_path):
    home = tmp_path / "zoos"
    write_synthetic_zoo(home / "demo", 5, preset="nws_fixed", diverged=())
    code = (
        "import sys\n"
        "assert not {'torch', 'datasets', 'pyarrow', 'numpy'} & set(sys.modules), 'heavy imports at start-up'\n"
        "from datasets import load_dataset\n"
        f"ds = load_dataset('weightzoo', cache_dir={str(tmp_path / 'cache')!r}, snapshots=20)\n"
        "print(ds['train'].num_rows + ds['test'].num_rows)\n"
    )
    done = _python(code, tmp_path, WEIGHTZOO_HOME=str(home))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "5"


@needs_install
def test_start_up_hook_is_light_and_can_be_turned_off(tmp_path):
    probe = "import sys; print('weightzoo.hf.registration' in sys.modules, 'torch' in sys.modules)"
    assert _python(probe, tmp_path).stdout.split() == ["True", "False"]
    assert _python(probe, tmp_path, WEIGHTZOO_AUTOREGISTER="0").stdout.split() == ["False", "False"]


@pytest.mark.slow
def test_wheel_ships_the_start_up_hook(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        pytest.skip(f"could not build a wheel here: {done.stderr[-500:]}")
    (wheel,) = tmp_path.glob("weightzoo-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert PTH in names and "weightzoo/hf/registration.py" in names
