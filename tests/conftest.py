"""Shared fixtures: small synthetic zoos written with the real writer, and the real image data when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fsspec.implementations.dirfs import DirFileSystem
from fsspec.implementations.local import LocalFileSystem
from fsspec.registry import _registry as fsspec_registry

from tests.zoos import synthetic_weights, write_synthetic_zoo

__all__ = ["synthetic_weights", "write_synthetic_zoo"]

SHARED_DATA = Path(os.environ.get("WEIGHTZOO_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(autouse=True, scope="session")
def _private_caches(tmp_path_factory):
    """Tests neither read nor fill the user's image cache or zoo home: an MNIST cached there by a benchmark would
    turn a test of 'the images are not found' into a 1000-epoch training run, a demo zoo there a test of 'no zoo
    yet' into a baselines run. Subprocesses inherit the setting."""
    saved = {name: os.environ.get(name) for name in ("WEIGHTZOO_CACHE", "WEIGHTZOO_HOME")}
    base = tmp_path_factory.mktemp("cache")
    os.environ["WEIGHTZOO_CACHE"] = str(base / "images")
    os.environ["WEIGHTZOO_HOME"] = str(base / "zoos")
    yield
    for name, old in saved.items():
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


@pytest.fixture
def synthetic_zoo(tmp_path):
    """(path, weights by id) of a 6-network nws_main zoo spread over several shards."""
    path = tmp_path / "zoo"
    return path, write_synthetic_zoo(path)


@pytest.fixture
def one_thread():
    """One torch intra-op thread for the test: tiny networks on a busy machine otherwise oversubscribe the cores
    (up to 100x slower), and CPU results stay comparable across machines."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"real MNIST not found at {SHARED_DATA} (set WEIGHTZOO_TEST_DATA)")
    return SHARED_DATA


class HubStandIn(DirFileSystem):
    """``hf://datasets/<org>/<name>`` served from ``HubStandIn.root/datasets/<org>/<name>``: no network."""

    protocol = "hf"
    cachable = False
    root = ""

    def __init__(self, *args, **storage_options):
        storage_options.pop("token", None)
        super().__init__(path=HubStandIn.root, fs=LocalFileSystem())


def serve_hub(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Serve ``hf://`` from the local folder ``root`` for the duration of a test; return ``root``."""
    HubStandIn.root = str(root)
    (root / "datasets").mkdir(parents=True)
    monkeypatch.setitem(fsspec_registry, "hf", HubStandIn)
    return root


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A local folder standing in for the Hub behind ``hf://``."""
    return serve_hub(tmp_path / "hub", monkeypatch)
