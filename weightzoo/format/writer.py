"""Writes a zoo: shards per split, then the index, the card and, last, the manifest.

A zoo is complete once ``manifest.json`` exists; every file is written through a ``.partial`` name renamed at the
end, and the manifest is written after everything it lists, so an interrupted run never leaves a folder that
looks like a finished zoo.

Resuming: after each shard, the writer records the shard's checksum and its networks' index rows in
``.progress/`` (and the generation config once, at the start). ``ZooWriter(..., resume=True)`` on an unfinished
folder keeps every shard whose recorded checksum still matches, drops the rest (partial files, unrecorded or
damaged shards) and reports the networks already written in :attr:`ZooWriter.done`; the run then adds only the
others. A different generation config is refused (:class:`~weightzoo.errors.ConfigError`).

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

from weightzoo.errors import ConfigError, OutputPathError, WeightZooError
from weightzoo.format.index import NetworkRecord, read_index, rows_to_table, table_to_bytes
from weightzoo.format.layout import (
    CARD_NAME,
    DEFAULT_SHARD_BYTES,
    INDEX_NAME,
    MANIFEST_NAME,
    METRICS,
    PROGRESS_DIR,
    PROVENANCE_NAME,
    SHARD_DIR,
    SHARD_SUFFIX,
    SPLITS,
    parse_shard_name,
)
from weightzoo.format.manifest import FileEntry, Manifest, sha256_bytes, sha256_file
from weightzoo.format.output import (
    prepare_output,
    remove_created,
    remove_files,
    remove_progress,
)
from weightzoo.format.shards import ShardWriter, write_atomic

CardRenderer = Callable[[Manifest, pa.Table], str]
__all__ = ["METRICS", "CardRenderer", "ZooWriter", "prepare_output"]


class ZooWriter:
    """Collects trained networks and writes the zoo; use as a context manager or call :meth:`close`.

    ``resume=True`` continues an interrupted zoo in ``out`` (see the module docstring); generation-config keys in
    ``resume_ignores`` (how the run is executed, not what it computes) may differ from the interrupted run's.
    ``dtype``: how the shards store the weights, ``"float32"`` (default) or ``"float64"``.
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
    ):
        self.fs, self.root, self._output = prepare_output(
            out, overwrite=overwrite, resume=resume, storage_options=storage_options
        )
        self.name, self.zoo_seed, self.generation = name, zoo_seed, dict(generation)
        self.generator, self.card = generator, card
        self._writers = {s: ShardWriter(self.fs, self.root, s, max_shard_bytes, generator, dtype) for s in SPLITS}
        self._rows: dict[int, dict[str, Any]] = {}
        self._pending: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
        self._ids: set[int] = set()  # every network added, flushed or pending
        self._files: list[FileEntry] = []
        self.manifest: Manifest | None = None
        self._progress = f"{self.root}/{PROGRESS_DIR}"
        self._resume_ignores = resume_ignores
        #: How this run was made (paths, executor, host, ...), written to provenance.json, outside the checksums.
        self.provenance = dict(provenance or {})
        self._seconds: dict[int, float] = {}  # wall-clock training seconds per network (provenance, not index)
        #: Progress records of the interrupted run found damaged (and treated as missing) on resume.
        self.damaged: list[str] = []
        if resume:
            self._resume()
        else:
            self.fs.makedirs(self._progress, exist_ok=True)
            write_atomic(self.fs, f"{self._progress}/generation.json", self._config_bytes())
        #: Ids of the networks already in the zoo when it was resumed (empty for a new zoo).
        self.done: frozenset[int] = frozenset(self._ids)

    def _config_bytes(self) -> bytes:
        generation = {k: v for k, v in self.generation.items() if k not in self._resume_ignores}
        config = {"name": self.name, "zoo_seed": self.zoo_seed, "generation": generation}
        return json.dumps(config, sort_keys=True, default=str).encode()

    def _resume(self) -> None:
        """Load what an interrupted run recorded; delete every file it did not record as complete.

        A progress record that a crash left empty or damaged counts as missing: its networks are trained again
        (and the run says so). A damaged record of the run's options discards the whole record.
        """
        mine = json.loads(self._config_bytes())
        try:
            recorded = json.loads(self.fs.cat_file(f"{self._progress}/generation.json"))
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError) as e:
            self.damaged.append(f"{PROGRESS_DIR}/generation.json ({type(e).__name__}): every network is trained again")
            self._discard_progress()
            return
        if recorded != mine:
            flat_old, flat_new = _flatten(recorded), _flatten(mine)
            diff = sorted(k for k in flat_old.keys() | flat_new.keys() if flat_old.get(k) != flat_new.get(k))
            raise ConfigError(
                f"{self.root}: cannot resume, the run differs from the interrupted one in {', '.join(diff)}; "
                "resume with the same options (or start again with --overwrite)"
            )
        kept: set[str] = set()
        for path in sorted(self.fs.glob(f"{self._progress}/*.json")):
            if path.endswith("/generation.json"):
                continue
            rows_path = path[: -len(".json")] + ".parquet"
            try:
                entry = FileEntry(**json.loads(self.fs.cat_file(path))["file"])
                rows = read_index(self.fs.cat_file(rows_path), rows_path).to_pylist()
            except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, WeightZooError):
                self.damaged.append(f"{path.rsplit('/', 1)[-1]}: its networks are trained again")
                continue
            shard = f"{self.root}/{entry.path}"
            if not self.fs.exists(shard) or sha256_file(self.fs, shard) != (entry.sha256, entry.bytes):
                continue  # missing or damaged since: train its networks again
            for row in rows:
                self._rows[row["network_id"]] = row
                self._ids.add(row["network_id"])
            self._seconds.update({int(k): v for k, v in json.loads(self.fs.cat_file(path)).get("seconds", {}).items()})
            self._files.append(entry)
            kept.add(entry.path)
            split, number = parse_shard_name(entry.path)
            self._writers[split].continue_after(number + 1)
        self._remove_shards(keep=kept)

    def _remove_shards(self, keep: set[str]) -> None:
        """Delete the interrupted run's shard files (and partial writes) but ``keep``: only files the output's
        inspection found to be this package's (by name, not links), each checked again before it goes."""
        doomed = tuple(rel for rel in self._output.ours if rel.startswith(f"{SHARD_DIR}/") and rel not in keep)
        remove_files(self.fs, self.root, dataclasses.replace(self._output, ours=doomed, folders=()))

    def _discard_progress(self) -> None:
        """Start the record again: no shard of the interrupted run is kept (the shards go first, then the record,
        so a cut-short discard still leaves a record that vouches for what is left)."""
        self._remove_shards(keep=set())
        remove_progress(self.fs, self.root)
        self.fs.makedirs(self._progress, exist_ok=True)
        write_atomic(self.fs, f"{self._progress}/generation.json", self._config_bytes())

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

    def add(self, record: NetworkRecord, weights: Mapping[str, np.ndarray]) -> None:
        """Add one network: its index record and its [20, *shape] tensors in reference order."""
        if record.network_id in self._ids:
            raise OutputPathError(f"network {record.network_id} was already written to {self.root}")
        writer = self._writers[record.split]
        writer.add(record.network_id, weights)
        self._ids.add(record.network_id)
        self._seconds[record.network_id] = record.train_seconds
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
        # the progress record: the shard's rows first, then its entry (a shard counts once its entry exists)
        stem = f"{self._progress}/{entry.path.rsplit('/', 1)[1].removesuffix(SHARD_SUFFIX)}"
        write_atomic(self.fs, stem + ".parquet", table_to_bytes(rows_to_table(self._pending[split])))
        seconds = {str(r["network_id"]): self._seconds.get(r["network_id"], 0.0) for r in self._pending[split]}
        record = {"file": dataclasses.asdict(entry), "seconds": seconds}
        write_atomic(self.fs, stem + ".json", json.dumps(record).encode())
        self._pending[split] = []

    def close(self) -> Manifest:
        """Flush the last shards and write the index, the dataset card and the manifest (in that order)."""
        for split in SPLITS:
            self._flush(split)
        table = rows_to_table(list(self._rows.values()))
        # one canonical order (by path), whichever order the shards were flushed or resumed in
        files = sorted(self._files, key=lambda f: f.path)
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
        provenance = {
            **self.provenance,
            "generator": self.generator,
            "train_seconds": {str(k): self._seconds[k] for k in sorted(self._seconds)},
        }
        write_atomic(self.fs, f"{self.root}/{PROVENANCE_NAME}", (json.dumps(provenance, indent=1) + "\n").encode())
        write_atomic(self.fs, f"{self.root}/{MANIFEST_NAME}", manifest.to_json().encode())
        remove_progress(self.fs, self.root)
        self.manifest = manifest
        return manifest


def _flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(config, dict):
        out: dict[str, Any] = {}
        for k, v in config.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: config}
