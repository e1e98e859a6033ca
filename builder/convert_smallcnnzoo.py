"""Convert the Small CNN Zoo (Unterthiner et al. 2020) into a weightzoo zoo:
``weightzoo convert --format smallcnnzoo DATASET_DIR --out ZOO [--split-file nfn_cifar10_split.csv]``.

DATASET_DIR is one data set's folder of the release (``cifar10``, ``svhn_cropped``, ``mnist``, ``fashion_mnist``)
holding its three files:

- ``weights.npy``: one row per checkpoint, 4970 columns, the flattened Keras variables;
- ``metrics.csv.gz``: one row per ``weights.npy`` row: ``config.*`` columns (the run's hyper-parameters),
  ``modeldir`` (the run), ``step`` (the checkpoint's epoch: 0, 1, 2, 3, 20, 40, 60, 80, 86), train and test
  accuracy and loss;
- ``layout.csv``: ``varname, start_idx, end_idx, shape`` per variable (Keras names, kernels HWIO).

What is kept: every run (``modeldir``) as one network with 9 snapshots (its checkpoints in epoch order), its
tensors as the layout cuts the row (names ``conv0.bias``, ``conv0.weight``, ... ``out.weight``, Keras layout, in
the layout's order, so ``zoo.flat(n, k)`` is the row, value for value), its ``config.*`` values as columns (the
``config.`` prefix dropped), ``modeldir`` and each snapshot's row of ``weights.npy`` (``source_rows``, a string
``"r0,r1,..."``; the final row also as ``final_row``). Runs that crashed (the release's README: "a small number of
training processes crashed/got stuck") have fewer rows and no epoch-86 checkpoint: kept with status ``diverged``,
their missing snapshots NaN with epoch -1. Not kept: per-checkpoint columns that repeat what is kept (the row's
checkpoint path, a last-step flag), listed in the manifest.

Split: with ``--split-file`` (the NFN benchmark's ``<dataset>_split.csv``: a permutation of the rows), the
benchmark's own: the final checkpoints in the file's order, the second half ``test``, the rest ``train``; the
position of each run's final checkpoint there is the column ``nfn_position``, from which ``weightzoo benchmark``
rebuilds NFN's train / validation / test split exactly. The file's extra leading ``0`` line (every published
split file has one: a permutation of R rows plus a first line ``0``) is dropped and noted in the manifest.
Without a split file: a seeded permutation of the runs (seed 0), its second half ``test``.

Example:
    >>> convert("smallcnnzoo/cifar10", "zoos/smallcnnzoo-cifar10", split_file="nfn_cifar10_split.csv")  # doctest: +SKIP
"""

from __future__ import annotations

import ast
import csv
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from builder.convert_common import (
    column_type,
    common_options,
    converter_parser,
    raise_problems,
    report,
    typed,
    write_converted,
)
from weightzoo.cli import command, run_main
from weightzoo.errors import ReleaseError
from weightzoo.families import smallcnnzoo_declaration
from weightzoo.format.index import ConvertedRecord
from weightzoo.format.layout import DEFAULT_SHARD_BYTES, METRICS
from weightzoo.format.manifest import Manifest, sha256_file

FILES = ("weights.npy", "metrics.csv.gz", "layout.csv")
#: The checkpoints of a run that trained to the end: epochs 0 (initialisation), 1, 2, 3, 20, 40, 60, 80, 86.
STEPS: tuple[int, ...] = (0, 1, 2, 3, 20, 40, 60, 80, 86)
#: Image side of each data set (``config.dataset``, TFDS names; colour averaged to one channel).
INPUT_SIDE = {"mnist": 28, "fashion_mnist": 28, "cifar10": 32, "svhn_cropped": 32}
#: Per-checkpoint metrics of ``metrics.csv.gz`` -> the index's metric.
METRIC_COLUMNS = {"train_loss": "train_loss", "train_accuracy": "train_accuracy", "test_loss": "test_loss",
                  "test_accuracy": "test_accuracy"}  # fmt: skip
#: Per-checkpoint columns some copies hold that repeat what is kept.
REPEATED = {"Unnamed: 0": "the checkpoint's path (modeldir and step)", "laststep": "whether the step is the last"}
_VARIABLE = re.compile(r"(?:.*/)?(conv2d(?:_(\d+))?|dense)/(kernel|bias)(?::0)?")
SOURCE_KIND = "smallcnnzoo"
PAPER = "Unterthiner, Keysers, Gelly, Bousquet, Tolstikhin: Predicting Neural Network Accuracy from Weights, 2020"
CITATION = """@misc{unterthiner2020predicting,
  title={Predicting Neural Network Accuracy from Weights},
  author={Thomas Unterthiner and Daniel Keysers and Sylvain Gelly and Olivier Bousquet and Ilya Tolstikhin},
  year={2020},
  eprint={2002.11448},
  archivePrefix={arXiv},
  primaryClass={stat.ML}
}"""


@dataclass(frozen=True)
class Run:
    """One run of the source: its network id, ``modeldir``, and its rows of ``weights.npy`` in epoch order."""

    network_id: int
    modeldir: str
    rows: tuple[int, ...]
    steps: tuple[int, ...]
    split: str
    nfn_position: int


def read_layout(path: str, problems: list[str]) -> list[tuple[str, int, int, tuple[int, ...]]]:
    """``layout.csv`` as (weightzoo name, start, end, shape) in column order; problems appended."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    need = {"varname", "start_idx", "end_idx", "shape"}
    if not rows or not need <= set(rows[0]):
        problems.append(f"{path}: columns {sorted(rows[0]) if rows else []}; expected {sorted(need)}")
        return []
    out = []
    for k, row in enumerate(rows, start=2):
        m = _VARIABLE.fullmatch(row["varname"].strip())
        try:
            start, end = int(row["start_idx"]), int(row["end_idx"])
            shape = tuple(int(d) for d in ast.literal_eval(row["shape"].strip()))
        except (ValueError, SyntaxError, TypeError):
            problems.append(f"{path} line {k}: start_idx/end_idx/shape {row['start_idx']!r}, {row['end_idx']!r}, "
                            f"{row['shape']!r}; expected two integers and a shape such as '(3, 3, 1, 16)'")  # fmt: skip
            continue
        if m is None:
            problems.append(f"{path} line {k}: variable {row['varname']!r}; expected conv2d[_i]/kernel|bias:0 or "
                            "dense/kernel|bias:0")  # fmt: skip
            continue
        layer = "out" if m[1] == "dense" else f"conv{int(m[2] or 0)}"
        name = f"{layer}.{'weight' if m[3] == 'kernel' else 'bias'}"
        if end - start != math.prod(shape):
            problems.append(f"{path} line {k}: {row['varname']} spans {end - start} columns; its shape {shape} "
                            f"has {math.prod(shape)}")  # fmt: skip
        out.append((name, start, end, shape))
    out.sort(key=lambda t: t[1])
    return out


def _check_layout(layout: list[tuple[str, int, int, tuple[int, ...]]], width: int, path: str) -> list[str]:
    """The layout covers the row exactly, in order, with the Small CNN Zoo's tensors and shapes."""
    problems = []
    expected = {name: tuple(shape) for name, shape in smallcnnzoo_declaration((1, 28, 28))["tensors"]}
    ends = [0] + [end for _, _, end, _ in layout]
    for (name, start, _, shape), prev in zip(layout, ends, strict=False):
        if start != prev:
            problems.append(f"{path}: {name} starts at column {start}; the previous variable ends at {prev}")
        if expected.get(name) != shape:
            problems.append(f"{path}: {name} has shape {shape}; the Small CNN Zoo's is {expected.get(name)}")
    names = [t[0] for t in layout]
    if sorted(names) != sorted(expected):
        problems.append(f"{path}: variables {names}; expected the 8 of the Small CNN Zoo {sorted(expected)}")
    if layout and ends[-1] != width:
        problems.append(f"{path}: the variables cover {ends[-1]} columns; weights.npy has {width}")
    return problems


def read_split_file(path: str, num_rows: int, problems: list[str]) -> tuple[np.ndarray, str]:
    """An NFN split file as a permutation of the rows, and a note of what was done with it."""
    try:
        with open(path) as f:
            values = [int(line) for line in f.read().split()]
    except (OSError, ValueError) as e:
        problems.append(f"{path}: not a list of row numbers ({e})")
        return np.zeros(0, np.int64), ""
    perm = np.asarray(values, dtype=np.int64)
    note = f"{os.path.basename(path)}: a permutation of the {num_rows} rows"
    if len(perm) == num_rows + 1 and perm[0] == 0:
        perm = perm[1:]
        note += " after its extra leading line 0 (read with header=None it would repeat row 0), dropped"
    if len(perm) != num_rows or not np.array_equal(np.sort(perm), np.arange(num_rows)):
        problems.append(f"{path}: {len(values)} lines; expected a permutation of the {num_rows} rows of weights.npy "
                        "(with or without the published files' extra leading 0)")  # fmt: skip
    return perm, note


def scan(source: str, split_file: str | None = None) -> dict[str, Any]:
    """Read and check the source's layout, metrics and weights header; every problem together in one
    :class:`~weightzoo.errors.ReleaseError`. Returns what :func:`convert` writes."""
    import pandas as pd

    if not os.path.isdir(source):
        raise ReleaseError(f"{source}: no such folder; expected a Small CNN Zoo data set folder ({', '.join(FILES)})")
    missing = [f"{os.path.join(source, f)}: missing" for f in FILES if not os.path.isfile(os.path.join(source, f))]
    missing += [f"{os.path.join(source, f)}: a symbolic link (to {os.path.realpath(os.path.join(source, f))}); the "
                "data set folder holds plain files: copy it in instead" for f in FILES
                if os.path.islink(os.path.join(source, f))]  # fmt: skip
    raise_problems(source, missing, "Small CNN Zoo folder")
    problems: list[str] = []
    weights_path = os.path.join(source, "weights.npy")
    try:
        weights = np.load(weights_path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as e:
        raise ReleaseError(f"{weights_path}: not a readable .npy matrix ({e})") from None
    if weights.ndim != 2 or weights.dtype not in (np.float32, np.float64):
        raise ReleaseError(f"{weights_path}: {weights.dtype} {weights.shape}; expected a float32 or float64 matrix")
    layout_path = os.path.join(source, "layout.csv")
    layout = read_layout(layout_path, problems)
    if layout:
        problems += _check_layout(layout, weights.shape[1], layout_path)
    metrics_path = os.path.join(source, "metrics.csv.gz")
    try:
        metrics = pd.read_csv(metrics_path, compression="infer", low_memory=False)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise ReleaseError(f"{metrics_path}: not a readable CSV ({e})") from None
    need = ["modeldir", "step", *METRIC_COLUMNS]
    absent = [c for c in need if c not in metrics.columns]
    if absent:
        problems.append(f"{metrics_path}: no column(s) {absent}; expected {need} and config.* columns")
    if len(metrics) != weights.shape[0]:
        problems.append(f"{metrics_path}: {len(metrics)} rows; weights.npy has {weights.shape[0]} (one per row)")
    raise_problems(source, problems, "Small CNN Zoo folder")
    steps = pd.to_numeric(metrics["step"], errors="coerce").to_numpy()
    bad = np.flatnonzero(~np.isfinite(steps) | (steps != np.round(steps)) | (steps < 0))
    problems += [f"{metrics_path} row {r}: step {metrics['step'].iloc[r]!r}; expected an epoch" for r in bad[:20]]
    config = [c for c in metrics.columns if c.startswith("config.")]
    names = {c: re.sub(r"\W", "_", c[len("config.") :]) for c in config}
    runs, first = _group_runs(metrics, steps.astype(np.int64, copy=False) if not len(bad) else steps, problems,
                              metrics_path)  # fmt: skip
    # one value per run and config column, grouped once (not a lookup per run and column: 30,000 runs)
    grouped = metrics[config].groupby(metrics["modeldir"].astype(str), sort=False)
    distinct_counts = grouped.nunique(dropna=True).reindex(list(runs))
    firsts = grouped.first().reindex(list(runs))  # the first value that is not missing
    values: dict[str, list[Any]] = {}
    for c in config:
        for modeldir in distinct_counts.index[distinct_counts[c] > 1]:
            distinct = metrics[c].iloc[runs[modeldir]].dropna().unique()
            problems.append(f"{metrics_path}: run {modeldir!r} has {c} = {list(distinct)[:3]}; a run's "
                            "config is one value")  # fmt: skip
        values[names[c]] = [None if pd.isna(v) else v for v in firsts[c].tolist()]
    datasets = {v for v in values.get("dataset", []) if v is not None}
    if len(datasets) > 1 or (datasets and next(iter(datasets)) not in INPUT_SIDE):
        problems.append(f"{metrics_path}: config.dataset {sorted(map(str, datasets))}; expected one of "
                        f"{sorted(INPUT_SIDE)} (one data set per folder)")  # fmt: skip
    perm, split_note = (read_split_file(split_file, weights.shape[0], problems) if split_file
                        else (np.zeros(0, np.int64), ""))  # fmt: skip
    raise_problems(source, problems, "Small CNN Zoo folder")
    dataset = next(iter(datasets), None)
    side = INPUT_SIDE.get(str(dataset), 32)
    ordered = sorted(runs, key=lambda d: first[d])
    final_step = STEPS[-1]
    step_of = steps.astype(np.int64)
    complete = {d: final_step in step_of[list(runs[d])] for d in ordered}
    if split_file:
        final_rows = {runs[d][list(step_of[list(runs[d])]).index(final_step)]: d for d in ordered if complete[d]}
        in_order = [final_rows[r] for r in perm.tolist() if r in final_rows]
        position = {d: i for i, d in enumerate(in_order)}
        half = int(0.5 * len(in_order))
        split = {d: "test" if position.get(d, -1) >= half else "train" for d in ordered}
        how = f"NFN's split file, {split_note}: the final checkpoints in its order, the second half test"
    else:
        position = {}
        order = np.random.default_rng(0).permutation(len(ordered))
        half = int(0.5 * len(ordered))
        split = {d: "test" if k >= half else "train" for d, k in zip(ordered, order.tolist(), strict=True)}
        how = "a seeded permutation of the runs (numpy default_rng(0)), its second half test"
    networks = [
        Run(i, d, tuple(runs[d]), tuple(int(step_of[r]) for r in runs[d]), split[d], position.get(d, -1))
        for i, d in enumerate(ordered)
    ]
    columns = {name: column_type(v) for name, v in values.items()}
    columns.update({"modeldir": "string", "source_rows": "string", "final_row": "int64"})
    if split_file:
        columns["nfn_position"] = "int64"
    per_run = {name: dict(zip(ordered, v, strict=True)) for name, v in values.items()}
    not_kept = {c: REPEATED.get(c, "a per-checkpoint column this converter does not know")
                for c in metrics.columns if c not in config and c not in need}  # fmt: skip
    return {"weights": weights, "layout": layout, "metrics": metrics, "networks": networks, "columns": columns,
            "per_run": per_run, "dataset": dataset, "side": side, "split": how, "not_kept": not_kept,
            "split_file": split_file}  # fmt: skip


def _group_runs(metrics: Any, steps: np.ndarray, problems: list[str], path: str) -> tuple[dict[str, list[int]],
                                                                                       dict[str, int]]:  # fmt: skip
    """Rows of each run (``modeldir``) in epoch order, and each run's first row."""
    runs: dict[str, list[int]] = {}
    first: dict[str, int] = {}
    for r, modeldir in enumerate(metrics["modeldir"].astype(str).tolist()):
        runs.setdefault(modeldir, []).append(r)
        first.setdefault(modeldir, r)
    for modeldir, rows in runs.items():
        rows.sort(key=lambda r: steps[r])
        epochs = [steps[r] for r in rows]
        if len(set(epochs)) != len(epochs) or len(rows) > len(STEPS):
            problems.append(f"{path}: run {modeldir!r} has checkpoints at epochs {epochs}; expected at most one per "
                            f"epoch of {list(STEPS)}")  # fmt: skip
    return runs, first


def _load(found: dict[str, Any], run: Run) -> tuple[ConvertedRecord, dict[str, np.ndarray]]:
    weights, metrics, layout = found["weights"], found["metrics"], found["layout"]
    n = len(STEPS)
    rows = list(run.rows)
    block = np.asarray(weights[rows], dtype=weights.dtype)  # one read of the run's rows
    tensors = {}
    for name, start, end, shape in layout:
        values = np.full((n, *shape), np.nan, dtype=weights.dtype)
        values[: len(rows)] = block[:, start:end].reshape(len(rows), *shape)
        tensors[name] = values
    snapshot_metrics = {m: [math.nan] * n for m in METRICS}
    for column, metric in METRIC_COLUMNS.items():
        got = metrics[column].iloc[rows].to_numpy(dtype=np.float64)
        snapshot_metrics[metric][: len(rows)] = got.tolist()
    epochs = list(run.steps) + [-1] * (n - len(rows))
    columns = {name: typed(per_run[run.modeldir], found["columns"][name]) for name, per_run in
               found["per_run"].items()}  # fmt: skip
    final = run.rows[-1] if run.steps[-1] == STEPS[-1] else -1
    columns.update({"modeldir": run.modeldir, "source_rows": ",".join(map(str, run.rows)), "final_row": final})
    if found["split_file"]:
        columns["nfn_position"] = run.nfn_position
    arch_values = sum(math.prod(shape) for *_, shape in layout)
    conv_values = sum(math.prod(shape) for name, *_, shape in layout if name.startswith("conv"))
    record = ConvertedRecord(
        network_id=run.network_id,
        split=run.split,
        status="completed" if final >= 0 else "diverged",
        columns=columns,
        n_epochs=max(run.steps),
        snapshot_epochs=epochs,
        snapshot_metrics=snapshot_metrics,
        num_params=arch_values,
        weightn_conv=conv_values,
    )
    return record, tensors


def _file_entry(path: str) -> dict[str, Any]:
    import fsspec

    digest, size = sha256_file(fsspec.filesystem("file"), path)
    return {"path": os.path.basename(path), "sha256": digest, "bytes": size}


def convert(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    split_file: str | os.PathLike | None = None,
    max_shard_bytes: int = DEFAULT_SHARD_BYTES,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool | None = None,
) -> Manifest:
    """Convert one data set folder of the Small CNN Zoo at ``source`` into a weightzoo zoo at ``out`` (see the
    module docstring); every problem of the source is reported together before anything is written."""
    src = os.path.abspath(os.fspath(source))
    found = scan(src, os.fspath(split_file) if split_file else None)
    side = found["side"]
    layout = found["layout"]
    declaration = smallcnnzoo_declaration((1, side, side))
    by_name = {name: shape for name, _, _, shape in layout}
    declaration["tensors"] = [[name, list(by_name[name])] for name, *_ in layout]  # the layout's order
    files = [_file_entry(os.path.join(src, f)) for f in FILES]
    if split_file:
        files.append(_file_entry(os.fspath(split_file)))
    statuses = [r.steps[-1] == STEPS[-1] for r in found["networks"]]
    kept = [
        f"**Weights**: every checkpoint of every run, as `weights.npy` holds it ({found['weights'].dtype}), cut by "
        "`layout.csv` into per-variable tensors in its order and Keras layout (conv kernels HWIO, the dense kernel "
        "(in, out)): `zoo.flat(n, k)` is the row of `weights.npy`, value for value (`source_rows` names it).",
        f"**Runs**: one network per `modeldir`, ids in the order of the runs' first rows; {statuses.count(False)} "
        "run(s) without an epoch-86 checkpoint (crashed, as the release says) have status `diverged`, their "
        "missing snapshots NaN with epoch -1.",
        "**Metrics**: train and test accuracy and loss per checkpoint; the source has no validation metrics (NaN).",
        f"**Split**: {found['split']}.",
        "**Hyper-parameters**: the `config.*` columns, one value per run, without the `config.` prefix.",
        *(f"Not kept: `{c}` ({why})." for c, why in found["not_kept"].items()),
    ]
    source_record = {
        "kind": SOURCE_KIND,
        "title": "the Small CNN Zoo",
        "paper": PAPER,
        "citation": CITATION,
        "license": "cc-by-4.0",
        "subset": str(found["dataset"]),
        "files": files,
        "split": found["split"],
        "not_kept": found["not_kept"],
        "kept": kept,
        "converter": "builder.convert_smallcnnzoo",
        "benchmark": "with the split file, NFN's split: final checkpoint, the second half of the permutation "
        "test, the first half 80/20 train/validation (Python's random.Random(0))",
    }
    return write_converted(
        out,
        name=f"smallcnnzoo-{found['dataset']}",
        source=source_record,
        architecture=declaration,
        columns=found["columns"],
        num_snapshots=len(STEPS),
        networks=found["networks"],
        load=lambda run: _load(found, run),
        converter="builder.convert_smallcnnzoo",
        max_shard_bytes=max_shard_bytes,
        overwrite=overwrite,
        resume=resume,
        progress=progress,
        provenance={"source_dir": src},
    )


def _parser() -> Any:
    what = "one data set folder of the Small CNN Zoo (weights.npy, metrics.csv.gz, layout.csv)"
    p = converter_parser("builder.convert_smallcnnzoo", (__doc__ or "").split("\n\n")[0].replace("``", ""), what)
    p.add_argument("--split-file", help="NFN's <dataset>_split.csv: convert with the benchmark's split")
    return p


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return report(lambda: convert(args.source, args.out, split_file=args.split_file, **common_options(args)))


if __name__ == "__main__":
    run_main(main)
