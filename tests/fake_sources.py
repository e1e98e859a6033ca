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
    for m in meta:  # the per-checkpoint extras some copies carry
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


__all__ = ["SMALLCNNZOO_LAYOUT", "STEPS", "write_modelzoos", "write_nfn_split", "write_smallcnnzoo"]


def _def_net_modules(kind: str, channels: int, dropout: float, activation: str) -> list:
    """The ``module_list`` of ModelZooDataset's ``def_net.py`` ``CNN`` (CNN-s) or ``CNN3`` (CNN-l), rebuilt."""
    from torch import nn

    act = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}[activation]
    mods: list = []
    if kind == "CNN":
        for c_in, c_out, k, pool in ((channels, 8, 5, True), (8, 6, 5, True), (6, 4, 2, False)):
            mods += [nn.Conv2d(c_in, c_out, k)] + ([nn.MaxPool2d(2, 2)] if pool else []) + [act()]
            if dropout > 0:
                mods.append(nn.Dropout(dropout))
        mods += [nn.Flatten(), nn.Linear(36, 20), act()] + ([nn.Dropout(dropout)] if dropout > 0 else [])
        mods += [nn.Linear(20, 10)]
    else:  # CNN3: dropout layers always there
        for c_in, c_out in ((channels, 16), (16, 32), (32, 15)):
            mods += [nn.Conv2d(c_in, c_out, 3), nn.MaxPool2d(2, 2), act(), nn.Dropout(dropout)]
        mods += [nn.Flatten(), nn.Linear(60, 20), act(), nn.Dropout(dropout), nn.Linear(20, 10)]
    return mods


def write_modelzoos(folder: str | os.PathLike, trials: int = 4, epochs: int = 3, kind: str = "CNN",
                    channels: int = 1, errored: int = 1, seed: int = 0) -> dict:  # fmt: skip
    """A Model Zoos experiment folder as Ray Tune 1.8 writes it: ``trials`` trial folders, each with
    ``params.json``, ``result.json`` (one line per iteration, 0 .. ``epochs``, Ray's own keys included) and
    ``checkpoint_<epoch:06d>/checkpoints`` (a ``torch.save``d ``state_dict`` of ``def_net.py``'s model, the
    last trial's with dropout so its layer indices shift); the last ``errored`` trials stop one epoch early. Plus
    the experiment's ``config.json`` and an empty ``readme.md``. Returns the state dicts by (trial folder, epoch)."""
    import torch
    from torch import nn

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model::type": kind, "seed": {"grid_search": [1, 2]}}))
    (folder / "readme.md").write_text("")
    states = {}
    for t in range(trials):
        activation = ["tanh", "relu", "gelu"][t % 3]
        dropout = 0.5 if t == trials - 1 else 0.0
        params = {"model::type": kind, "model::channels_in": channels, "model::o_dim": 10, "model::nlin": activation,
                  "model::dropout": dropout, "model::init_type": "kaiming_uniform", "model::use_bias": True,
                  "optim::optimizer": "adam", "optim::lr": 3e-4 * (t + 1), "optim::wd": 0.0, "seed": t + 1,
                  "training::batchsize": 10, "training::epochs_train": epochs, "training::start_epoch": 1,
                  "training::output_epoch": 1, "training::val_epochs": 1, "training::idx_out": 500,
                  "training::checkpoint_dir": None, "cuda": False, "dataset::dump": "/abs/path/dataset.pt"}  # fmt: skip
        name = f"NN_tune_trainable_c0371_{t:05d}_{t}_seed={t + 1}_2021-07-01_16-59-53"
        trial = folder / name
        trial.mkdir()
        (trial / "params.json").write_text(json.dumps(params, indent=2))
        torch.manual_seed(seed * 1000 + t)
        net = nn.Sequential()
        net.module_list = nn.ModuleList(_def_net_modules(kind, channels, dropout, activation))
        last = epochs - 1 if t >= trials - errored else epochs
        lines = []
        for epoch in range(last + 1):
            if epoch:
                with torch.no_grad():
                    for p in net.parameters():
                        p.add_(0.01 * torch.randn_like(p))
            ckpt = trial / f"checkpoint_{epoch:06d}"
            ckpt.mkdir()
            state = {k: v.clone() for k, v in net.state_dict().items()}
            torch.save(state, ckpt / "checkpoints")
            torch.save({"state": {}, "param_groups": []}, ckpt / "optimizer")
            (ckpt / ".is_checkpoint").write_text("")
            states[(name, epoch)] = {k: v.numpy() for k, v in state.items()}
            train = -999 if epoch == 0 else round(0.1 + 0.8 * epoch / epochs, 4)
            lines.append(json.dumps({"train_loss": train, "train_acc": train, "test_loss": 2.0 - epoch / epochs,
                                     "test_acc": round(0.1 + 0.7 * epoch / epochs + 0.01 * t, 4),
                                     "training_iteration": epoch, "trial_id": f"c0371_{t:05d}", "done": False,
                                     "time_this_iter_s": 0.5, "config": params}))  # fmt: skip
        (trial / "result.json").write_text("\n".join(lines) + "\n")
        (trial / "progress.csv").write_text("train_loss,train_acc\n")
    return states
