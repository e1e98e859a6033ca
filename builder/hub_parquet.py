"""The weights as parquet, for the Hub: the ``weights`` configuration stock ``datasets`` (and the dataset viewer)
read with nothing else installed, written by ``builder.push`` next to the zoo's own files.

One row per network and snapshot: ``network_id``, ``snapshot`` (1 = the initialisation ... 20), ``epoch`` (the
epoch that snapshot holds), ``split``, ``status``, the hyper-parameters as plain values (strings, numbers,
booleans: what the index holds), ``test_accuracy`` at that snapshot, ``weightn_conv`` (the conv/dense boundary) and
``weights``, the flat reference-order vector as ``list<float32>`` (bit for bit :meth:`weightzoo.zoo.Zoo.flat`).
Files: ``weights/<split>-NNNNN-of-MMMMM.parquet``, each at most :data:`MAX_FILE_BYTES` of weights, row groups of at
most :data:`ROWS_PER_GROUP` rows and :data:`MAX_GROUP_BYTES` (the dataset viewer's limits), with a page index.
The tensor layout of every architecture in the zoo (name, shape, offset into ``weights``) is
``weights/layout.json``. Safetensors stays the random-access format (one network per byte range); this copy is the
one that needs no weightzoo.

Chosen at push time, not at generation: measured on the 16-network first-look zoo (the README's first block), the
zstd parquet copy took 45 MB against 119 MB of shards (weights of networks trained briefly compress; trained ones
less) and 1.2 s to write; at generation it would add that disk to every zoo, published or not.

Example:
    >>> write_weights_parquet(open_zoo(zoo_path), out_dir)  # doctest: +SKIP
    ['weights/layout.json', 'weights/test-00000-of-00001.parquet', 'weights/train-00000-of-00001.parquet']
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from weightzoo.format.index import HPARAM_COLUMNS, INDEX_SCHEMA
from weightzoo.format.layout import SPLITS
from weightzoo.hparams import ARCHITECTURE_FIELDS
from weightzoo.progress import bar
from weightzoo.zoo import Zoo

__all__ = ["MAX_FILE_BYTES", "MAX_GROUP_BYTES", "ROWS_PER_GROUP", "WEIGHTS_DIR", "write_weights_parquet"]

WEIGHTS_DIR = "weights"
#: The dataset viewer reads row groups of at most a few hundred rows and under 100 MB.
ROWS_PER_GROUP = 200
MAX_GROUP_BYTES = 96 * 2**20
#: Weight bytes per parquet file (many files keep uploads resumable and downloads parallel).
MAX_FILE_BYTES = 512 * 2**20


def weights_schema(dtype: pa.DataType | None = None, manifest: Any = None) -> pa.Schema:
    """The ``weights`` configuration's columns (``dtype``: the values', float32 unless given); a converted zoo of
    another family (``manifest`` declaring columns) has its own columns instead of the NWS hyper-parameters."""
    dtype = pa.float32() if dtype is None else dtype
    schema = INDEX_SCHEMA if manifest is None else manifest.index_schema
    index = {f.name: f.type for f in schema}
    own = HPARAM_COLUMNS if manifest is None or manifest.columns is None else tuple(manifest.columns)
    return pa.schema(
        [
            pa.field("network_id", pa.int64()),
            pa.field("snapshot", pa.int64()),
            pa.field("epoch", pa.int64()),
            pa.field("split", pa.string()),
            pa.field("status", pa.string()),
            *(pa.field(name, index[name]) for name in own),
            pa.field("test_accuracy", pa.float64()),
            pa.field("weightn_conv", pa.int64()),
            pa.field("weights", pa.list_(dtype)),
        ]
    )


def write_weights_parquet(zoo: Zoo, out_dir: str | Path, progress: bool | None = False) -> list[str]:
    """Write the zoo's weights as parquet under ``out_dir/weights/``; return the written paths, relative to
    ``out_dir``, sorted. Networks are read once each, through :meth:`~weightzoo.zoo.Zoo.iter_arrays` (storage order,
    every network's checksum verified)."""
    out = Path(out_dir)
    (out / WEIGHTS_DIR).mkdir(parents=True, exist_ok=True)
    dtype = pa.from_numpy_dtype(zoo.manifest.dtype)
    schema = weights_schema(dtype, zoo.manifest)
    written = [_write_layout(zoo, out)]
    shown = bar(total=len(zoo.ids), progress=progress, desc="weights parquet", unit="net")
    for split in SPLITS:
        view = zoo.filter(split=split)
        if not len(view):
            continue
        row_bytes = max(view.index.column("num_params").to_pylist()) * dtype.bit_width // 8
        per_file = max(1, MAX_FILE_BYTES // (row_bytes * zoo.num_snapshots))
        group_rows = max(1, min(ROWS_PER_GROUP, MAX_GROUP_BYTES // row_bytes))
        n_files = math.ceil(len(view) / per_file)
        networks = view.iter_arrays(check=True)
        for k in range(n_files):
            rel = f"{WEIGHTS_DIR}/{split}-{k:05d}-of-{n_files:05d}.parquet"
            with pq.ParquetWriter(out / rel, schema, write_page_index=True, compression="zstd") as writer:
                rows: list[pa.RecordBatch] = []
                n_rows = 0
                for row, arrays in itertools.islice(networks, per_file):
                    rows.append(_network_rows(row, arrays, schema))
                    n_rows += rows[-1].num_rows
                    shown.update()
                    if n_rows >= group_rows:
                        writer.write_table(pa.Table.from_batches(rows, schema), row_group_size=group_rows)
                        rows, n_rows = [], 0
                if rows:
                    writer.write_table(pa.Table.from_batches(rows, schema), row_group_size=group_rows)
            written.append(rel)
    shown.close()
    return sorted(written)


def _network_rows(row: dict[str, Any], arrays: dict[str, np.ndarray], schema: pa.Schema) -> pa.RecordBatch:
    """The rows of one network, one per snapshot (20 in an NWS zoo), from its index row and its [snapshots, *shape]
    arrays."""
    n = len(row["snapshot_epochs"])
    flat = np.concatenate([a.reshape(n, -1) for a in arrays.values()], axis=1)
    fixed = ("network_id", "snapshot", "epoch", "split", "status", "test_accuracy", "weightn_conv", "weights")
    columns = {
        "network_id": [row["network_id"]] * n,
        "snapshot": list(range(1, n + 1)),
        "epoch": list(row["snapshot_epochs"]),
        "split": [row["split"]] * n,
        "status": [row["status"]] * n,
        **{f.name: [row[f.name]] * n for f in schema if f.name not in fixed},
        "test_accuracy": list(row["test_accuracy"]),
        "weightn_conv": [row["weightn_conv"]] * n,
    }
    values = pa.array(flat.reshape(-1), type=schema.field("weights").type.value_type)
    offsets = pa.array(np.arange(0, flat.size + 1, flat.shape[1], dtype=np.int32))
    arrays_out = [pa.array(columns[f.name], type=f.type) for f in schema if f.name != "weights"]
    return pa.RecordBatch.from_arrays([*arrays_out, pa.ListArray.from_arrays(offsets, values)], schema=schema)


def _write_layout(zoo: Zoo, out: Path) -> str:
    """``weights/layout.json``: per architecture in the zoo, its tensors' names, shapes and offsets in ``weights``
    (a converted zoo of another family: its one declared architecture)."""
    rel = f"{WEIGHTS_DIR}/layout.json"
    declared = zoo.manifest.declared_architecture
    if declared is not None:
        tensors = [{"name": p.name, "shape": list(p.shape), "offset": p.offset} for p in declared.params]
        layout = {declared.family: {**declared.to_dict(), "tensors": tensors}}
        (out / rel).write_text(json.dumps({"architectures": layout}, indent=1) + "\n")
        return rel
    first_of = {tuple(r[f] for f in ARCHITECTURE_FIELDS): r["network_id"] for r in reversed(zoo.index.to_pylist())}
    layouts = {}
    for fields, nid in sorted(first_of.items()):
        arch = zoo.architecture(nid)
        layouts["-".join(map(str, fields))] = {
            **dict(zip(ARCHITECTURE_FIELDS, fields, strict=True)),
            "tensors": [{"name": p.name, "shape": list(p.shape), "offset": p.offset} for p in arch.params],
        }
    (out / rel).write_text(json.dumps({"architectures": layouts}, indent=1) + "\n")
    return rel
