"""Shared fixtures: small synthetic zoos written with the real writer, and the real image data when present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from fsspec.implementations.dirfs import DirFileSystem
from fsspec.implementations.local import LocalFileSystem
from fsspec.registry import _registry as fsspec_registry

from builder.space import get_preset, split_of
from weightzoo.format.index import NetworkRecord
from weightzoo.format.layout import METRICS, NUM_SNAPSHOTS
from weightzoo.format.writer import ZooWriter

SHARED_DATA = Path(os.environ.get("WEIGHTZOO_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def synthetic_weights(record_id: int, arch, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {p.name: rng.standard_normal((NUM_SNAPSHOTS, *p.shape)).astype(np.float32) for p in arch.params}


def write_synthetic_zoo(
    path,
    n: int = 6,
    *,
    preset: str = "nws_main",
    seed: int = 0,
    max_shard_bytes: int = 2**20,
    diverged: tuple[int, ...] = (2,),
    generation: dict | None = None,
) -> dict[int, dict[str, np.ndarray]]:
    """Write a zoo of ``n`` networks with random weights; return the weights written, by network id."""
    space = get_preset(preset)
    rng = np.random.default_rng(seed)
    written = {}
    with ZooWriter(
        path,
        name=f"synthetic-{preset}",
        zoo_seed=seed,
        generation=generation or {"preset": preset},
        max_shard_bytes=max_shard_bytes,
    ) as writer:
        for i in range(n):
            hp = space.sample(seed, i)
            n_epochs = int(rng.integers(1, 40))
            history = {m: list(rng.random(n_epochs + 1)) for m in METRICS}
            epochs = [int(e) for e in np.round(np.linspace(0, n_epochs, NUM_SNAPSHOTS))]
            weights = synthetic_weights(i, hp.architecture, rng)
            status = "diverged" if i in diverged else "completed"
            if status == "diverged":
                weights["out.bias"][-1, :] = np.nan
            snapshots = {m: [history[m][e] for e in epochs] for m in METRICS}
            writer.add(NetworkRecord(i, split_of(i), status, seed, hp, n_epochs, epochs, snapshots, history), weights)
            written[i] = weights
    return written


@pytest.fixture
def synthetic_zoo(tmp_path):
    """(path, weights by id) of a 6-network nws_main zoo spread over several shards."""
    path = tmp_path / "zoo"
    return path, write_synthetic_zoo(path)


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
