"""Writes a zoo: shards per split, then the index, the card and, last, the manifest.

A zoo is complete once ``manifest.json`` exists; every file is written through a ``.partial`` name renamed at the
end, and the manifest is written after everything it lists, so an interrupted run never leaves a folder that
looks like a finished zoo.

Its jobs, each in its own place: what the output folder holds and may lose (:func:`~weightzoo.format.output.
prepare_output`), the progress record that lets a run resume (:class:`~weightzoo.format.progress_log.
ProgressLog`), shards per split (:class:`_SplitShards` routing networks to a :class:`~weightzoo.format.shards.
ShardWriter` each), the index (:mod:`weightzoo.format.index`) and the manifest (:mod:`weightzoo.format.manifest`).

Resuming: ``ZooWriter(..., resume=True)`` on an unfinished folder keeps every shard the progress record vouches
for, deletes the rest (partial files, unrecorded or damaged shards) and reports the networks already written in
:attr:`ZooWriter.done`; the run then adds only the others. A different generation config is refused
(:class:`~weightzoo.errors.ConfigError`).

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

import dataclasses
import json
import os
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from weightzoo.errors import ConfigError, OutputPathError
from weightzoo.format.index import INDEX_SCHEMA, ConvertedRecord, NetworkRecord, rows_to_table, table_to_bytes
from weightzoo.format.layout import (
    CARD_NAME,
    DECLARED_FORMAT_VERSION,
    DEFAULT_SHARD_BYTES,
    FORMAT_VERSION,
    INDEX_NAME,
    MANIFEST_NAME,
    METRICS,
    NUM_SNAPSHOTS,
    PROVENANCE_NAME,
    SHARD_DIR,
    SPLITS,
    parse_shard_name,
)
from weightzoo.format.manifest import FileEntry, Manifest, sha256_bytes
from weightzoo.format.output import prepare_output, remove_created, remove_files, remove_progress
from weightzoo.format.progress_log import ProgressLog
from weightzoo.format.shards import ShardWriter, write_atomic

CardRenderer = Callable[[Manifest, pa.Table], str]
#: What a zoo's index row is made from: a generated (or converted NWS) network, or a converted zoo's network.
AnyRecord = NetworkRecord | ConvertedRecord
__all__ = ["METRICS", "CardRenderer", "ZooWriter", "prepare_output"]


class _SplitShards:
    """Routes each network to its split's :class:`ShardWriter` and keeps its index row until its shard is
    written; :meth:`add` and :meth:`flush` return each shard written with its networks' rows (their locations
    filled in)."""

    def __init__(self, fs: Any, root: str, max_bytes: int, generator: str, dtype: str, num_snapshots: int,
                 format_version: int):  # fmt: skip
        self.writers = {
            s: ShardWriter(fs, root, s, max_bytes, generator, dtype, num_snapshots, format_version) for s in SPLITS
        }
        self.pending: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}

    def continue_after(self, entry: FileEntry) -> None:
        """A resumed zoo holds ``entry``: number that split's next shard after it."""
        split, number = parse_shard_name(entry.path)
        self.writers[split].continue_after(number + 1)

    def add(self, record: AnyRecord, weights: Mapping[str, np.ndarray]) -> list[tuple[FileEntry, list[dict]]]:
        writer = self.writers[record.split]
        writer.add(record.network_id, weights)
        self.pending[record.split].append(record.to_row())
        return self.flush(record.split) if writer.should_flush() else []

    def flush(self, *splits: str) -> list[tuple[FileEntry, list[dict]]]:
        """Write the buffered networks of ``splits`` (all when none are named)."""
        written = []
        for split in splits or SPLITS:
            result = self.writers[split].flush()
            if result is None:
                continue
            entry, locations = result
            rows, self.pending[split] = self.pending[split], []
            for row in rows:
                row.update(locations[row["network_id"]])
            written.append((entry, rows))
        return written


class ZooWriter:
    """Collects trained networks and writes the zoo; use as a context manager or call :meth:`close`.

    ``resume=True`` continues an interrupted zoo in ``out`` (see the module docstring); generation-config keys in
    ``resume_ignores`` (how the run is executed, not what it computes) may differ from the interrupted run's.
    ``dtype``: how the shards store the weights, ``"float32"`` (default) or ``"float64"``; the manifest states it.

    A converted zoo of another family (format version 2) passes ``architecture`` (a
    :class:`~weightzoo.families.DeclaredArchitecture` as a dict), its ``columns`` (name -> type) and its
    ``num_snapshots``, and adds :class:`~weightzoo.format.index.ConvertedRecord` networks.
    """

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
        resume: bool = False,
        resume_ignores: tuple[str, ...] = (),
        provenance: Mapping[str, Any] | None = None,
        dtype: str = "float32",
        num_snapshots: int = NUM_SNAPSHOTS,
        architecture: Mapping[str, Any] | None = None,
        columns: Mapping[str, str] | None = None,
    ):
        #: What a converted zoo's manifest declares beyond an NWS zoo's (empty for an NWS zoo).
        self._declaration: dict[str, Any] = {}
        if architecture is not None:  # checked as a reader will check it, before anything is written
            self._declaration = {"num_snapshots": num_snapshots, "format_version": DECLARED_FORMAT_VERSION,
                                 "architecture": dict(architecture), "columns": dict(columns or {})}  # fmt: skip
            stub = Manifest(name, zoo_seed, 0, {}, {}, dict(generation), [], **self._declaration)
            stub._check("the converted zoo's declaration")
            self._schema = stub.index_schema
        elif num_snapshots != NUM_SNAPSHOTS or columns is not None:
            raise ConfigError("num_snapshots and columns are declared with an architecture (a converted zoo)")
        else:
            self._schema = INDEX_SCHEMA
        self.fs, self.root, self._output = prepare_output(
            out, overwrite=overwrite, resume=resume, storage_options=storage_options
        )
        self.name, self.zoo_seed, self.generation = name, zoo_seed, dict(generation)
        self.generator, self.card, self._dtype = generator, card, dtype
        version = self._declaration.get("format_version", FORMAT_VERSION)
        self._shards = _SplitShards(self.fs, self.root, max_shard_bytes, generator, dtype, num_snapshots, version)
        self._rows: dict[int, dict[str, Any]] = {}  # written networks' index rows, by id
        self._ids: set[int] = set()  # every network added, written or pending
        self._files: list[FileEntry] = []
        self.manifest: Manifest | None = None
        options = {k: v for k, v in self.generation.items() if k not in resume_ignores}
        self._log = ProgressLog(self.fs, self.root, {"name": name, "zoo_seed": zoo_seed, "generation": options},
                                self._schema)  # fmt: skip
        #: How this run was made (paths, executor, host, ...), written to provenance.json, outside the checksums.
        self.provenance = dict(provenance or {})
        self._seconds: dict[int, float] = {}  # wall-clock training seconds per network (provenance, not index)
        #: Progress records of the interrupted run found damaged (and treated as missing) on resume.
        self.damaged: list[str] = []
        if resume:
            self._resume()
        else:
            self._log.start()
        #: Ids of the networks already in the zoo when it was resumed (empty for a new zoo).
        self.done: frozenset[int] = frozenset(self._ids)

    def _resume(self) -> None:
        """Keep what the interrupted run's record vouches for; delete every other shard file it left."""
        found = self._log.load()
        self.damaged = found.damaged
        if found.discarded:  # the shards go first, then the record: a cut-short discard leaves a record that
            self._remove_shards(keep=set())  # still vouches for what is left
            remove_progress(self.fs, self.root)
            self._log.start()
            return
        for entry in found.shards:
            self._files.append(entry)
            self._shards.continue_after(entry)
        for row in found.rows:
            self._rows[row["network_id"]] = row
        self._ids.update(self._rows)
        self._seconds.update(found.seconds)
        self._remove_shards(keep={entry.path for entry in found.shards})

    def _remove_shards(self, keep: set[str]) -> None:
        """Delete the interrupted run's shard files (and partial writes) but ``keep``: only files the output's
        inspection found to be this package's (by name, not links), each checked again before it goes."""
        doomed = tuple(rel for rel in self._output.ours if rel.startswith(f"{SHARD_DIR}/") and rel not in keep)
        remove_files(self.fs, self.root, dataclasses.replace(self._output, ours=doomed, folders=()))

    def abandon(self) -> bool:
        """After a failure: if this run wrote no network (and resumed nothing), remove what it created (its
        progress record, the empty ``shards/`` folder, the output folder itself if this run created it), so the
        folder is not taken for an interrupted run. Returns True when it did."""
        if self._files or self._ids or self.done:
            return False
        remove_progress(self.fs, self.root)
        remove_created(self.fs, self.root, self._output)
        return True

    def __enter__(self) -> ZooWriter:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            self.close()

    def add(self, record: AnyRecord, weights: Mapping[str, np.ndarray]) -> None:
        """Add one network: its index record and its [snapshots, *shape] tensors in reference order."""
        if isinstance(record, ConvertedRecord) != bool(self._declaration):
            raise ConfigError(
                f"network {record.network_id}: a {type(record).__name__} for a zoo "
                + (
                    "with a declared architecture (ConvertedRecord expected)"
                    if self._declaration
                    else "of NWS networks"
                )
            )
        if record.network_id in self._ids:
            raise OutputPathError(f"network {record.network_id} was already written to {self.root}")
        self._ids.add(record.network_id)
        self._seconds[record.network_id] = record.train_seconds
        self._written(self._shards.add(record, weights))

    def _written(self, shards: list[tuple[FileEntry, list[dict]]]) -> None:
        """Shards just written: into the zoo's files and index, then into the progress record."""
        for entry, rows in shards:
            self._files.append(entry)
            self._rows.update((row["network_id"], row) for row in rows)
            self._log.add(entry, rows, {r["network_id"]: self._seconds.get(r["network_id"], 0.0) for r in rows})

    def close(self) -> Manifest:
        """Flush the last shards and write the index, the dataset card and the manifest (in that order)."""
        self._written(self._shards.flush())
        table = rows_to_table(list(self._rows.values()), self._schema)
        # one canonical order (by path), whichever order the shards were flushed or resumed in
        files = sorted(self._files, key=lambda f: f.path)
        files.append(self._write(INDEX_NAME, table_to_bytes(table)))
        manifest = Manifest(
            name=self.name,
            zoo_seed=self.zoo_seed,
            num_networks=table.num_rows,
            splits=dict(Counter(table.column("split").to_pylist())),
            status_counts=dict(Counter(table.column("status").to_pylist())),
            generation=self.generation,
            files=files,
            generator=self.generator,
            dtype=self._dtype,
            **self._declaration,
        )
        if self.card is not None:
            manifest.files.append(self._write(CARD_NAME, self.card(manifest, table).encode()))
        provenance = {
            **self.provenance,
            "generator": self.generator,
            "train_seconds": {str(k): self._seconds[k] for k in sorted(self._seconds)},
        }
        self._write(PROVENANCE_NAME, (json.dumps(provenance, indent=1) + "\n").encode())
        self._write(MANIFEST_NAME, manifest.to_json().encode())  # last: the zoo is complete once it exists
        remove_progress(self.fs, self.root)
        self.manifest = manifest
        return manifest

    def _write(self, name: str, data: bytes) -> FileEntry:
        """Write a top-level file of the zoo atomically; its manifest entry."""
        write_atomic(self.fs, f"{self.root}/{name}", data)
        return FileEntry(name, sha256_bytes(data), len(data))
