"""Writes a zoo: shards per split, then the index, the card and, last, the manifest.

A zoo is complete once ``manifest.json`` exists; every file is written through a ``.partial`` name renamed at the
end, and the manifest is written after everything it lists, so an interrupted run never leaves a folder that
looks like a finished zoo.

Example:
    >>> import numpy as np, tempfile
    >>> from weightzoo.format.index import NetworkRecord
    >>> from weightzoo.hparams import HyperParameters
    >>> hp = HyperParameters("digits", 1e-3, 64, False, "adam", "relu", "glorot_uniform")
    >>> metrics = {m: [0.5] * 20 for m in METRICS}
    >>> rec = NetworkRecord(0, "train", "completed", 0, hp, 19, list(range(20)), metrics, metrics)
    >>> weights = {p.name: np.zeros((20, *p.shape), np.float32) for p in hp.architecture.params}
    >>> with ZooWriter(tempfile.mkdtemp() + "/zoo", name="doc", zoo_seed=0, generation={}) as w:
    ...     w.add(rec, weights)
    >>> w.manifest.num_networks
    1
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa

from weightzoo.errors import OutputPathError
from weightzoo.format.index import NetworkRecord, rows_to_table, table_to_bytes
from weightzoo.format.layout import (
    CARD_NAME,
    DEFAULT_SHARD_BYTES,
    INDEX_NAME,
    MANIFEST_NAME,
    METRICS,
    SHARD_DIR,
    SPLITS,
)
from weightzoo.format.manifest import FileEntry, Manifest, sha256_bytes
from weightzoo.format.shards import ShardWriter, write_atomic

CardRenderer = Callable[[Manifest, pa.Table], str]
__all__ = ["METRICS", "CardRenderer", "ZooWriter", "prepare_output"]


def prepare_output(
    out: str | os.PathLike, *, overwrite: bool = False, storage_options: Mapping[str, Any] | None = None
) -> tuple[Any, str]:
    """Check that ``out`` can receive a new zoo and create it; return (filesystem, root path).

    Raises :class:`OutputPathError` when the parent folder is missing, the location is not writable, or it
    already holds files (pass ``overwrite=True`` to replace them).
    """
    url = os.fspath(out)
    fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
    root = root.rstrip("/") or "/"
    local = "file" in ((fs.protocol,) if isinstance(fs.protocol, str) else fs.protocol)
    if fs.exists(root):
        if not fs.isdir(root):
            raise OutputPathError(f"output {url!r} is a file; expected a folder for the zoo")
        existing = fs.ls(root, detail=False)
        if existing and not overwrite:
            what = "a finished zoo" if fs.exists(f"{root}/{MANIFEST_NAME}") else f"{len(existing)} entries"
            raise OutputPathError(
                f"output folder {url!r} already holds {what}; choose an empty folder or pass --overwrite to replace it"
            )
        if existing:
            manifest = f"{root}/{MANIFEST_NAME}"
            if fs.exists(manifest):
                fs.rm(manifest)  # first, so the folder never looks complete meanwhile
            for path in existing:
                if path.rstrip("/") != manifest:
                    fs.rm(path, recursive=True)
    elif local:
        parent = os.path.dirname(root)
        if not os.path.isdir(parent):
            raise OutputPathError(f"cannot create output folder {url!r}: its parent {parent!r} does not exist")
    try:
        fs.makedirs(f"{root}/{SHARD_DIR}", exist_ok=True)
        probe = f"{root}/.write-test"
        with fs.open(probe, "wb") as f:
            f.write(b"ok")
        fs.rm(probe)
    except OSError as e:
        raise OutputPathError(f"output folder {url!r} is not writable: {e}") from None
    return fs, root


class ZooWriter:
    """Collects trained networks and writes the zoo; use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        out: str | os.PathLike,
        *,
        name: str,
        zoo_seed: int,
        generation: Mapping[str, Any],
        max_shard_bytes: int = DEFAULT_SHARD_BYTES,
        overwrite: bool = False,
        generator: str = "",
        card: CardRenderer | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ):
        self.fs, self.root = prepare_output(out, overwrite=overwrite, storage_options=storage_options)
        self.name, self.zoo_seed, self.generation = name, zoo_seed, dict(generation)
        self.generator, self.card = generator, card
        self._writers = {s: ShardWriter(self.fs, self.root, s, max_shard_bytes, generator) for s in SPLITS}
        self._rows: dict[int, dict[str, Any]] = {}
        self._pending: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
        self._ids: set[int] = set()  # every network added, flushed or pending
        self._files: list[FileEntry] = []
        self.manifest: Manifest | None = None

    def __enter__(self) -> ZooWriter:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            self.close()

    def add(self, record: NetworkRecord, weights: Mapping[str, np.ndarray]) -> None:
        """Add one network: its index record and its [20, *shape] tensors in reference order."""
        if record.network_id in self._ids:
            raise OutputPathError(f"network {record.network_id} was already written to {self.root}")
        writer = self._writers[record.split]
        writer.add(record.network_id, weights)
        self._ids.add(record.network_id)
        self._pending[record.split].append(record.to_row())
        if writer.should_flush():
            self._flush(record.split)

    def _flush(self, split: str) -> None:
        result = self._writers[split].flush()
        if result is None:
            return
        entry, locations = result
        self._files.append(entry)
        for row in self._pending[split]:
            row.update(locations[row["network_id"]])
            self._rows[row["network_id"]] = row
        self._pending[split] = []

    def close(self) -> Manifest:
        """Flush the last shards and write the index, the dataset card and the manifest (in that order)."""
        for split in SPLITS:
            self._flush(split)
        table = rows_to_table(list(self._rows.values()))
        files = list(self._files)
        index_bytes = table_to_bytes(table)
        write_atomic(self.fs, f"{self.root}/{INDEX_NAME}", index_bytes)
        files.append(FileEntry(INDEX_NAME, sha256_bytes(index_bytes), len(index_bytes)))
        manifest = Manifest(
            name=self.name,
            zoo_seed=self.zoo_seed,
            num_networks=table.num_rows,
            splits=dict(Counter(table.column("split").to_pylist())),
            status_counts=dict(Counter(table.column("status").to_pylist())),
            generation=self.generation,
            files=files,
            generator=self.generator,
        )
        if self.card is not None:
            card_bytes = self.card(manifest, table).encode()
            write_atomic(self.fs, f"{self.root}/{CARD_NAME}", card_bytes)
            manifest.files.append(FileEntry(CARD_NAME, sha256_bytes(card_bytes), len(card_bytes)))
        write_atomic(self.fs, f"{self.root}/{MANIFEST_NAME}", manifest.to_json().encode())
        self.manifest = manifest
        return manifest
