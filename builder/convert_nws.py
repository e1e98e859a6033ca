"""Convert the authors' released NWS zoo into a weightzoo zoo: ``python -m builder.convert_nws RELEASE_DIR --out ZOO``.

RELEASE_DIR holds the split files ``nws_{fixed,main}_{train,test}.csv`` (in it or up to two folders below) and the
network folders they point to (see :mod:`builder.nws_release`). The result reads like a generated zoo:
``weightzoo.open_zoo``, ``load_dataset("weightzoo", data_dir=...)`` and ``weightzoo.baselines.fit``.

    python -m builder.convert_nws /data/nws --out /zoos/nws_release --subset fixed [--float64] [--resume]

What is kept: every network of the chosen split files, in the release's train/test split; its 20 weight snapshots
(float32 by default, the released float64 values with ``--float64``), cut into per-layer tensors by
:class:`weightzoo.architecture.Architecture` (the reference order); train, validation and test accuracy per epoch
and per snapshot from ``error.bin``; the epoch count and training seconds from ``stat.bin``. Not in the release:
losses (NaN in the index). Network ids: ``nws_fixed`` rows from 0, ``nws_main`` rows from 100,000, each subset's
train file then its test file, in file order.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np

import weightzoo
from builder.card import render_card
from builder.convert_common import convert_networks, report
from builder.engine.train import snapshot_epochs
from builder.nws_release import (
    RELEASE_SPLITS,
    SUBSETS,
    NetworkFiles,
    ReleaseNetwork,
    check_files,
    find_split_csv,
    linked_part,
    parse_row,
    read_network_files,
    read_split_csv,
    resolve_folder,
    sha256_of,
    split_file,
)
from weightzoo.cli import ArgumentParser, add_progress_flags, command, prog, progress_of, run_main
from weightzoo.errors import ConfigError, ReleaseError
from weightzoo.format.index import NetworkRecord
from weightzoo.format.layout import DEFAULT_SHARD_BYTES, METRICS
from weightzoo.format.manifest import Manifest
from weightzoo.format.writer import ZooWriter
from weightzoo.options import option_type

#: First network id of each subset: a network's id says its subset (``id // 100_000``: 0 fixed, 1 main).
ID_BASE: dict[str, int] = {"fixed": 0, "main": 100_000}
SUBSET_CHOICES: dict[str, tuple[str, ...]] = {"fixed": ("fixed",), "main": ("main",), "all": SUBSETS}
#: The original's epoch cap: a network with this many epochs ran to the end, fewer stopped early.
MAX_EPOCHS = 1000
CARD_TEMPLATE = "nws_release_card.md.j2"
SOURCE_KIND = "nws_release"
PAPER = (
    "Eilertsen, Jonsson, Ropinski, Unger, Ynnerman: Classifying the classifier: dissecting the weight space of "
    "neural networks, ECAI 2020"
)


def scan_release(
    release_dir: str, subsets: Sequence[str]
) -> tuple[list[ReleaseNetwork], list[dict[str, Any]], list[str], list[str]]:
    """Read the split files of ``subsets`` and find every network's folder and files, reading no weights.

    Returns (networks, split files: name, sha256, rows, first id; missing: networks whose folder or files are
    missing; wrong: unknown codes, wrong sizes). Each problem names the network folder or the CSV row.
    """
    networks: list[ReleaseNetwork] = []
    files: list[dict[str, Any]] = []
    missing: list[str] = []
    wrong: list[str] = []
    absent = [
        split_file(s, p) for s in subsets for p in RELEASE_SPLITS if not find_split_csv(release_dir, split_file(s, p))
    ]
    if absent:
        raise ReleaseError(
            f"{release_dir}: split files {absent} not found (looked in it and up to two folders below); expected the "
            "released nws_{fixed,main}_{train,test}.csv (pick one subset with --subset fixed or --subset main)"
        )
    owner: dict[str, str] = {}  # real folder -> the row that named it first
    for subset in subsets:
        next_id = ID_BASE[subset]
        for split in RELEASE_SPLITS:
            name = split_file(subset, split)
            path = find_split_csv(release_dir, name)
            assert path is not None
            rows = read_split_csv(path)
            files.append({"file": name, "sha256": sha256_of(path), "rows": len(rows), "first_id": next_id})
            for number, row in enumerate(rows, start=1):
                where = f"{name} row {number} ({row.get('path', '')})"
                try:
                    hp, conv, fc = parse_row(row, where)
                except ReleaseError as e:
                    wrong.append(str(e))
                    next_id += 1
                    continue
                folder = resolve_folder(release_dir, row["path"])
                net = ReleaseNetwork(next_id, subset, split, name, number, row["path"], hp, conv, fc, folder)
                next_id += 1
                if folder is None:
                    missing.append(f"{row['path']}: network folder not found under {release_dir} ({name} row {number})")
                    continue
                link = linked_part(release_dir, folder)
                if link is not None:
                    wrong.append(
                        f"{folder}: {link} is a symbolic link (to {os.path.realpath(link)}); the release's network "
                        f"folders are plain folders: copy the network in instead ({name} row {number})"
                    )
                    continue
                real = os.path.realpath(folder)
                if real in owner:
                    wrong.append(
                        f"{folder}: named by {owner[real]} and again by {name} row {number}; each network has its "
                        "own folder (two rows would become two networks with the same weights)"
                    )
                    continue
                owner[real] = f"{name} row {number}"
                gone, bad = check_files(net)
                missing += gone
                wrong += bad
                if not gone and not bad:
                    networks.append(net)
        if next_id - ID_BASE[subset] > 100_000:
            raise ReleaseError(f"nws_{subset}: more than 100,000 rows, too many for the network ids {ID_BASE}")
    return networks, files, missing, wrong


def network_record(net: ReleaseNetwork, files: NetworkFiles) -> NetworkRecord:
    """The index record of one released network.

    Exports and error.bin rows: ``classifier.py`` exports the weights at the top of every epoch (export 1, before
    the first training step, is the initialisation) and fills row ``export - 1`` of error.bin at the same moment,
    from the weights it exports: validation and test error of those weights, and train error as the mean over the
    training batches since the previous export (row 0: the first batch, untrained). So epoch ``e`` of the history
    is row ``e``, ``n_epochs`` is the number of exports minus one, and the 20 kept exports ``round(linspace(1,
    n_exports, 20))`` are epochs :func:`builder.engine.train.snapshot_epochs` ``(n_epochs)``, the rows the authors'
    ``util.import_weights`` reads as well. Errors (%) become accuracies ``1 - error / 100``. Losses, not in the
    release, are NaN; column 4 (the smoothed validation error early stopping used) and the step column are dropped.
    Status: ``diverged`` when a stored value is not finite (the network is kept), ``completed`` when it ran the
    original's 1000 epochs, ``early_stopped`` otherwise.
    """
    n_exports = files.errors.shape[0]
    n_epochs = n_exports - 1
    epochs = snapshot_epochs(n_epochs)
    accuracy = 1.0 - files.errors[:, 1:4] / 100.0
    history: dict[str, list[float]] = {m: [float("nan")] * n_exports for m in METRICS if m.endswith("_loss")}
    for column, part in enumerate(("train", "val", "test")):
        history[f"{part}_accuracy"] = [float(a) for a in accuracy[:, column]]
    history = {m: history[m] for m in METRICS}
    finite = bool(np.isfinite(files.vectors).all() and np.isfinite(accuracy).all())
    status = "diverged" if not finite else "completed" if n_epochs >= MAX_EPOCHS else "early_stopped"
    return NetworkRecord(
        network_id=net.network_id,
        split=net.split,
        status=status,
        zoo_seed=-1,
        hparams=net.hparams,
        n_epochs=n_epochs,
        snapshot_epochs=epochs,
        snapshot_metrics={m: [history[m][e] for e in epochs] for m in METRICS},
        history=history,
        train_seconds=float(files.stat[3]),
        images_seen=int(files.stat[1]) * net.hparams.batch_size if np.isfinite(files.stat[1]) else 0,
        device="released",
    )


def layer_tensors(net: ReleaseNetwork, vectors: np.ndarray) -> dict[str, np.ndarray]:
    """The [20, num_params] flat vectors cut into per-layer [20, *shape] tensors, in reference order."""
    return {
        p.name: vectors[:, p.offset : p.offset + p.size].reshape(len(vectors), *p.shape)
        for p in net.hparams.architecture.params
    }


def convert(
    release_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    subset: str = "all",
    float64: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    skip_missing: bool = False,
    max_shard_bytes: int = DEFAULT_SHARD_BYTES,
    progress: bool | None = None,
) -> Manifest:
    """Convert the released NWS zoo at ``release_dir`` into a weightzoo zoo at ``out``; return its manifest.

    Every problem of the release (networks whose folder or files are missing, wrong vector lengths, unknown
    codes) is found before anything is written and reported in one :class:`~weightzoo.errors.ReleaseError`;
    ``skip_missing=True`` leaves out the networks whose folder or files are missing and records them in the
    manifest (``generation["source"]["skipped"]``). ``progress``: a bar (None: when standard error is a terminal).

    Example:
        >>> convert("/data/nws", "zoos/nws_fixed_release", subset="fixed")  # doctest: +SKIP
        >>> weightzoo.open_zoo("zoos/nws_fixed_release").flat(0, snapshot=20).shape  # doctest: +SKIP
        torch.Size([92868])
    """
    if subset not in SUBSET_CHOICES:
        raise ConfigError(f"--subset {subset!r}; expected one of {', '.join(SUBSET_CHOICES)}")
    release = os.path.abspath(os.fspath(release_dir))
    if not os.path.isdir(release):
        raise ReleaseError(f"{release}: no such folder; expected the released NWS zoo (split CSVs, network folders)")
    networks, split_files, missing, wrong = scan_release(release, SUBSET_CHOICES[subset])
    if wrong or (missing and not skip_missing):
        problems = wrong + missing
        hint = " (--skip-missing converts the others and records the missing ones)" if missing and not wrong else ""
        shown = "\n  ".join(problems[:50]) + (f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else "")
        raise ReleaseError(
            f"{release}: {len(problems)} problem(s) in the release, nothing written{hint}:\n  {shown}", problems
        )
    dtype = "float64" if float64 else "float32"
    generation: dict[str, Any] = {
        "source": {
            "kind": SOURCE_KIND,
            "paper": PAPER,
            "subset": subset,
            "split_files": split_files,
            "skipped": missing,
            "converter": "builder.convert_nws",
        },
        **({"preset": f"nws_{subset}"} if subset != "all" else {}),  # load_dataset("weightzoo", "nws_fixed", ...)
        "dtype": dtype,
        "evaluation": "released",
        "max_epochs": MAX_EPOCHS,
        # TensorLayer BatchNormLayer, as the original trained: zoo.model() rebuilds the networks with this epsilon
        "train": {"bn_eps": 1e-5, "bn_decay": 0.9},
    }
    provenance = {
        "release_dir": release,
        "out": os.fspath(out),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
    }
    writer = ZooWriter(
        out,
        name=f"nws_{subset}-release" if subset != "all" else "nws-release",
        zoo_seed=-1,
        generation=generation,
        max_shard_bytes=max_shard_bytes,
        overwrite=overwrite,
        generator=f"weightzoo {weightzoo.__version__} (builder.convert_nws)",
        card=functools.partial(render_card, template=CARD_TEMPLATE),
        resume=resume,
        provenance=provenance,
        dtype=dtype,
    )

    def load(net: ReleaseNetwork) -> tuple[NetworkRecord, dict[str, np.ndarray]]:
        files = read_network_files(net, dtype)
        return network_record(net, files), layer_tensors(net, files.vectors)

    skipped = f"; {len(missing)} missing networks skipped" if missing else ""
    return convert_networks(writer, out, networks, load, f"converting nws_{subset}", progress, skipped)


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=prog("builder.convert_nws"),
        description=(__doc__ or "").split("\n\n")[0].replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("release_dir", metavar="RELEASE_DIR", help="the released zoo: split CSVs and network folders")
    p.add_argument("--out", required=True, help="output folder or fsspec URL of the converted zoo")
    p.add_argument(
        "--subset",
        choices=tuple(SUBSET_CHOICES),
        default="all",
        help="fixed (nws_fixed: 3,000 networks of one architecture), main (nws_main: 13,000) or all (default)",
    )
    p.add_argument("--float64", action="store_true", help="keep the released float64 values (default: float32)")
    p.add_argument(
        "--skip-missing",
        action="store_true",
        help="convert the networks that are there; networks whose folder or files are missing are left out and "
        "recorded in the manifest (default: stop, listing them all)",
    )
    p.add_argument(
        "--max-shard-mb",
        type=option_type("max_shard_mb"),
        default=DEFAULT_SHARD_BYTES / 2**20,
        help="shard size cap in MiB",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue an interrupted conversion in --out: keep its finished shards"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the zoo (or interrupted run) in --out; never deletes files weightzoo did not write",
    )
    add_progress_flags(p, "progress bar")
    return p


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return report(
        lambda: convert(
            args.release_dir,
            args.out,
            subset=args.subset,
            float64=args.float64,
            resume=args.resume,
            overwrite=args.overwrite,
            skip_missing=args.skip_missing,
            max_shard_bytes=max(1, int(args.max_shard_mb * 2**20)),
            progress=progress_of(args),
        )
    )


if __name__ == "__main__":
    run_main(main)
