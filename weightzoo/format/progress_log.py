"""The progress record of an unfinished zoo, ``.progress/``: what lets an interrupted run resume.

The record holds the run's options once (``generation.json``, written when the run starts) and, after each shard,
that shard's index rows (``<split>-<n>.parquet``) and then its entry (``<split>-<n>.json``: path, checksum, size and
the networks' training seconds). A shard counts once its entry exists and the file still has that checksum; a
record a crash left empty or damaged counts as missing (its networks are trained again). :class:`ProgressLog`
writes and reads it; the zoo's files themselves are :class:`~weightzoo.format.writer.ZooWriter`'s.

Example:
    >>> import fsspec
    >>> fs = fsspec.filesystem("memory")
    >>> log = ProgressLog(fs, "/doc-zoo", {"name": "doc", "zoo_seed": 0, "generation": {}})
    >>> log.start()
    >>> log.load().shards
    []
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from weightzoo.errors import ConfigError, WeightZooError
from weightzoo.format.index import INDEX_SCHEMA, read_index, rows_to_table, table_to_bytes
from weightzoo.format.layout import PROGRESS_DIR, SHARD_SUFFIX
from weightzoo.format.manifest import FileEntry, sha256_file
from weightzoo.format.shards import write_atomic

__all__ = ["ProgressLog", "Recorded"]

_OPTIONS = "generation.json"


@dataclass
class Recorded:
    """What an interrupted run's record vouches for: each shard still as it was written (``shards``), its
    networks' index rows and training seconds, and the parts of the record found damaged (``damaged``, one note
    each). ``discarded``: the record of the run's options was damaged, so nothing of the run is kept."""

    shards: list[FileEntry] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[int, float] = field(default_factory=dict)
    damaged: list[str] = field(default_factory=list)
    discarded: bool = False


class ProgressLog:
    """The ``.progress/`` record of a zoo being written at ``root`` on filesystem ``fs``, for a run whose options
    are ``options`` (compared as JSON on resume: a different run is refused)."""

    def __init__(self, fs: Any, root: str, options: Mapping[str, Any], schema: pa.Schema = INDEX_SCHEMA):
        self.fs, self.root, self.folder, self.schema = fs, root, f"{root}/{PROGRESS_DIR}", schema
        self.options = json.loads(json.dumps(options, sort_keys=True, default=str))

    def start(self) -> None:
        """Begin a new record: the folder and the run's options."""
        self.fs.makedirs(self.folder, exist_ok=True)
        write_atomic(self.fs, f"{self.folder}/{_OPTIONS}", json.dumps(self.options, sort_keys=True).encode())

    def add(self, entry: FileEntry, rows: list[dict[str, Any]], seconds: Mapping[int, float]) -> None:
        """Record a written shard: its networks' rows first, then its entry (a shard counts once its entry
        exists)."""
        stem = f"{self.folder}/{entry.path.rsplit('/', 1)[1].removesuffix(SHARD_SUFFIX)}"
        write_atomic(self.fs, stem + ".parquet", table_to_bytes(rows_to_table(rows, self.schema)))
        record = {"file": dataclasses.asdict(entry), "seconds": {str(k): v for k, v in seconds.items()}}
        write_atomic(self.fs, stem + ".json", json.dumps(record).encode())

    def load(self) -> Recorded:
        """What the record of an interrupted run vouches for (see :class:`Recorded`); :class:`ConfigError` when
        the run's options differ from the interrupted one's (naming each option that differs)."""
        try:
            recorded = json.loads(self.fs.cat_file(f"{self.folder}/{_OPTIONS}"))
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError) as e:
            note = f"{PROGRESS_DIR}/{_OPTIONS} ({type(e).__name__}): every network is trained again"
            return Recorded(damaged=[note], discarded=True)
        if recorded != self.options:
            old, new = _flatten(recorded), _flatten(self.options)
            diff = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
            raise ConfigError(
                f"{self.root}: cannot resume, the run differs from the interrupted one in {', '.join(diff)}; "
                "resume with the same options (or start again with --overwrite)"
            )
        found = Recorded()
        for path in sorted(self.fs.glob(f"{self.folder}/*.json")):
            if path.endswith(f"/{_OPTIONS}"):
                continue
            rows_path = path[: -len(".json")] + ".parquet"
            try:
                record = json.loads(self.fs.cat_file(path))
                entry = FileEntry(**record["file"])
                rows = read_index(self.fs.cat_file(rows_path), rows_path, self.schema).to_pylist()
                seconds = {int(k): float(v) for k, v in record.get("seconds", {}).items()}
            except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError,
                    WeightZooError):  # fmt: skip
                found.damaged.append(f"{path.rsplit('/', 1)[-1]}: its networks are trained again")
                continue
            shard = f"{self.root}/{entry.path}"
            if not self.fs.exists(shard) or sha256_file(self.fs, shard) != (entry.sha256, entry.bytes):
                continue  # missing or damaged since: its networks are trained again
            found.shards.append(entry)
            found.rows.extend(rows)
            found.seconds.update(seconds)
        return found


def _flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(config, dict):
        out: dict[str, Any] = {}
        for k, v in config.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: config}
