"""Small fakes of the field's other zoos, written in exactly their release formats (no downloads here): the Small
CNN Zoo (``weights.npy``, ``metrics.csv.gz``, ``layout.csv``, NFN's split file) and Model Zoos (Ray Tune trial
folders with ``params.json``, ``result.json`` and ``checkpoint_<epoch>/checkpoints``)."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np

#: The Small CNN Zoo's layout.csv as its loaders read it: per layer the bias, then the Keras kernel.
SMALLCNNZOO_LAYOUT = [
    ("sequential/conv2d/bias:0", (16,)),
    ("sequential/conv2d/kernel:0", (3, 3, 1, 16)),
    ("sequential/conv2d_1/bias:0", (16,)),
    ("sequential/conv2d_1/kernel:0", (3, 3, 16, 16)),
    ("sequential/conv2d_2/bias:0", (16,)),
    ("sequential/conv2d_2/kernel:0", (3, 3, 16, 16)),
    ("sequential/dense/bias:0", (10,)),
    ("sequential/dense/kernel:0", (16, 10)),
]
STEPS = (0, 1, 2, 3, 20, 40, 60, 80, 86)


def write_smallcnnzoo(folder: str | os.PathLike, runs: int = 8, crashed: int = 1, dataset: str = "mnist",
                      seed: int = 0, shuffle_rows: bool = True) -> dict:  # fmt: skip
    """One data set folder of the Small CNN Zoo with ``runs`` runs, the last ``crashed`` of them stopped after
    epoch 20 (a crash: a final checkpoint at epoch 21, then nothing, as train_network.py writes it). Rows in a
    shuffled order (the release's rows are not grouped by run). Returns the rows' (modeldir, step) and weights."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows, meta = [], []
    for r in range(runs):
        steps = STEPS if r < runs - crashed else (0, 1, 2, 3, 20, 21)
        config = {
            "config.activation": ["relu", "tanh"][r % 2],
            "config.b_init": "zeros",
            "config.dataset": dataset,
            "config.dnn_architecture": "cnn",
            "config.dropout": [0.0, 0.2, 0.45][r % 3],
            "config.epochs": 86,
            "config.init_std": [1e-3, 1e-2, 0.1][r % 3],
            "config.l2reg": 1e-6,
            "config.learning_rate": float(rng.choice([5e-4, 5e-3, 5e-2])),
            "config.optimizer": ["adam", "sgd", "rmsprop"][r % 3],
            "config.train_fraction": [0.1, 0.25, 0.5, 1.0][r % 4],
            "config.w_init": ["he_normal", "orthogonal", "glorot_normal"][r % 3],
        }
        for s in steps:
            rows.append(rng.normal(size=4970).astype(np.float32))
            meta.append({**config, "modeldir": f"/tmp/run_{r:03d}", "step": s,
                         "test_accuracy": round(float(rng.uniform(0.1, 0.99)), 6),
                         "test_loss": round(float(rng.uniform(0.1, 2.3)), 6),
                         "train_accuracy": round(float(rng.uniform(0.1, 0.99)), 6),
                         "train_loss": round(float(rng.uniform(0.1, 2.3)), 6)})  # fmt: skip
    order = rng.permutation(len(rows)) if shuffle_rows else np.arange(len(rows))
    weights = np.stack([rows[i] for i in order])
    meta = [meta[i] for i in order]
    for k, m in enumerate(meta):  # the per-checkpoint extras some copies carry
        m["Unnamed: 0"] = f"{m['modeldir']}/permanent_ckpt-{m['step']}"
        m["laststep"] = m["step"] == 86
    np.save(folder / "weights.npy", weights)
    columns = list(meta[0])
    with gzip.open(folder / "metrics.csv.gz", "wt") as f:
        f.write(",".join(columns) + "\n")
        for m in meta:
            f.write(",".join(str(m[c]) for c in columns) + "\n")
    lines = ["varname,start_idx,end_idx,size,shape"]
    start = 0
    for name, shape in SMALLCNNZOO_LAYOUT:
        size = int(np.prod(shape))
        lines.append(f'{name},{start},{start + size},{size},"{shape}"')
        start += size
    (folder / "layout.csv").write_text("\n".join(lines) + "\n")
    return {"weights": weights, "meta": meta}


def write_nfn_split(path: str | os.PathLike, num_rows: int, seed: int = 1) -> np.ndarray:
    """NFN's ``<dataset>_split.csv``: a permutation of the rows, one per line, after the published files' extra
    leading ``0`` line. Returns the permutation."""
    perm = np.random.default_rng(seed).permutation(num_rows)
    Path(path).write_text("0\n" + "\n".join(map(str, perm.tolist())) + "\n")
    return perm


__all__ = ["SMALLCNNZOO_LAYOUT", "STEPS", "json", "write_nfn_split", "write_smallcnnzoo"]
