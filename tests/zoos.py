"""Small synthetic zoos written with the real writer (shared by the test fixtures and the doctests)."""

from __future__ import annotations

import numpy as np

from builder.engine.space import get_preset, split_of
from weightzoo.format.index import NetworkRecord
from weightzoo.format.layout import METRICS, NUM_SNAPSHOTS
from weightzoo.format.writer import ZooWriter


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
    final_accuracy=None,
) -> dict[int, dict[str, np.ndarray]]:
    """Write a zoo of ``n`` networks with random weights; return the weights written, by network id.
    ``final_accuracy(weights)``, when given, sets each network's final test accuracy (a target a model can learn)."""
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
            if final_accuracy is not None:
                history["test_accuracy"][-1] = float(final_accuracy(weights))
            snapshots = {m: [history[m][e] for e in epochs] for m in METRICS}
            writer.add(NetworkRecord(i, split_of(i), status, seed, hp, n_epochs, epochs, snapshots, history), weights)
            written[i] = weights
    return written
