"""The versioned manifest of a zoo: what the zoo holds, how it was made, and the checksum of every file.

Example:
    >>> m = Manifest(name="demo", zoo_seed=0, num_networks=2, splits={"train": 2}, status_counts={"completed": 2},
    ...              generation={"preset": "demo"}, files=[FileEntry("index.parquet", "ab" * 32, 10)])
    >>> Manifest.from_json(m.to_json(), source="manifest.json") == m
    True
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from weightzoo.errors import FormatVersionError, ZooFormatError
from weightzoo.format.layout import (
    FORMAT_VERSION,
    MAX_SNAPSHOTS,
    NUM_SNAPSHOTS,
    READABLE_VERSIONS,
    STORAGE_DTYPES,
)
from weightzoo.format.record import GenerationRecord


@dataclass(frozen=True)
class FileEntry:
    """One file of the zoo, relative to its root, with its sha256 and size in bytes."""

    path: str
    sha256: str
    bytes: int


@dataclass
class Manifest:
    """Contents of ``manifest.json``."""

    name: str
    zoo_seed: int
    num_networks: int
    splits: dict[str, int]
    status_counts: dict[str, int]
    generation: dict[str, Any]
    files: list[FileEntry]
    num_snapshots: int = NUM_SNAPSHOTS
    format_version: int = FORMAT_VERSION
    generator: str = ""
    #: How the shards store the weights (:data:`~weightzoo.format.layout.STORAGE_DTYPES`), written by the writer
    #: that wrote them; manifests before this field kept it in ``generation["dtype"]`` (float32 when absent).
    dtype: str = "float32"
    #: A converted zoo of another family (format version 2): its networks' one architecture
    #: (:class:`~weightzoo.families.DeclaredArchitecture` as a dict); None for NWS zoos, whose architecture
    #: follows from each network's hyper-parameters.
    architecture: dict[str, Any] | None = None
    #: A converted zoo's own index columns (hyper-parameters, source identifiers): name -> type
    #: (:data:`~weightzoo.format.index.COLUMN_TYPES`); None for NWS zoos.
    columns: dict[str, str] | None = None

    @property
    def declared(self) -> bool:
        """A converted zoo of another family, whose manifest declares its architecture and columns."""
        return self.architecture is not None

    @functools.cached_property
    def declared_architecture(self) -> Any:
        """The :class:`~weightzoo.families.DeclaredArchitecture` of a converted zoo of another family (None for an
        NWS zoo)."""
        from weightzoo.families import DeclaredArchitecture

        return None if self.architecture is None else DeclaredArchitecture.from_dict(self.architecture, "manifest")

    @property
    def index_schema(self) -> Any:
        """The Arrow schema its index has: :data:`~weightzoo.format.index.INDEX_SCHEMA`, or a converted zoo's
        :func:`~weightzoo.format.index.declared_schema`."""
        from weightzoo.format.index import INDEX_SCHEMA, declared_schema

        return INDEX_SCHEMA if self.columns is None else declared_schema(self.num_snapshots, self.columns)

    @functools.cached_property
    def record(self) -> GenerationRecord:
        """The generation record, typed (:class:`~weightzoo.format.record.GenerationRecord`); checked when the
        manifest is read."""
        return GenerationRecord.from_dict(self.generation, "manifest.json")

    def file(self, path: str) -> FileEntry:
        for entry in self.files:
            if entry.path == path:
                return entry
        raise ZooFormatError(f"the manifest lists no file {path!r}; it lists {[f.path for f in self.files]}")

    @property
    def generation_version(self) -> int:
        """What the generator's training rules were when the zoo was made (``builder.engine.train.GENERATION_VERSION``):
        1 for zoos that predate the record (made before the original's exact rules were followed)."""
        return self.record.generation_version

    @property
    def shards(self) -> list[FileEntry]:
        return [f for f in self.files if f.path.endswith(".safetensors")]

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        if not self.declared:  # an NWS zoo's manifest: the same bytes as before converted zoos existed
            del data["architecture"], data["columns"]
        return json.dumps(data, indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, source: str) -> Manifest:
        """Parse and validate; ``source`` (the file's path or URL) is named in every error."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ZooFormatError(f"{source}: not valid JSON ({e}); expected a weightzoo manifest") from None
        if not isinstance(data, dict) or "format_version" not in data:
            raise ZooFormatError(f"{source}: no 'format_version' key; expected a weightzoo manifest")
        version = data["format_version"]
        if version not in READABLE_VERSIONS:
            gen = data.get("generation", {}) if isinstance(data.get("generation"), dict) else {}
            if isinstance(version, int) and version > max(READABLE_VERSIONS):
                todo = (
                    "upgrade weightzoo (pip install -U weightzoo; from a source checkout: git pull, then "
                    "pip install -e .)"
                )
            else:
                todo = (
                    "regenerate it with this release: python -m builder.generate "
                    f"--preset {gen.get('preset', '<preset>')} --seed {data.get('zoo_seed', '<seed>')} "
                    f"--num-networks {data.get('num_networks', '<n>')} --out <new folder>"
                )
            raise FormatVersionError(
                f"{source}: zoo format version {version!r}, but this release of weightzoo reads version "
                f"{' and '.join(map(str, READABLE_VERSIONS))}; {todo}"
            )
        # older manifests kept the time they were written ("created"; now in provenance.json, so the manifest is
        # the same bytes on every run): read, not kept
        data.pop("created", None)
        if "dtype" not in data and isinstance(data.get("generation"), dict):  # written before the field existed
            data["dtype"] = data["generation"].get("dtype", "float32")
        try:
            data["files"] = [FileEntry(**f) for f in data["files"]]
            manifest = cls(**data)
        except (TypeError, KeyError) as e:
            raise ZooFormatError(f"{source}: malformed manifest ({e})") from None
        manifest._check(source)
        return manifest

    def _check(self, source: str) -> None:
        """Every field of the type it is documented as, every file path confined to the zoo, each path once: a
        manifest from a stranger cannot name a file outside the zoo or crash a reader with a wrong type."""
        from weightzoo.format.confine import check_relpath

        def fail(field: str, value: Any, expected: str) -> None:
            shown = repr(value) if len(repr(value)) < 80 else repr(value)[:77] + "..."
            raise ZooFormatError(f"{source}: {field} is {shown}; expected {expected}")

        def is_int(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        for name in ("name", "generator", "dtype"):
            if not isinstance(getattr(self, name), str):
                fail(name, getattr(self, name), "a string")
        for name in ("zoo_seed", "num_networks", "num_snapshots"):
            value = getattr(self, name)
            if not is_int(value) or (name != "zoo_seed" and value < 0):
                fail(name, value, "a non-negative integer" if name != "zoo_seed" else "an integer")
        if self.format_version == FORMAT_VERSION:
            if self.num_snapshots != NUM_SNAPSHOTS or self.architecture is not None or self.columns is not None:
                fail("num_snapshots", self.num_snapshots, f"{NUM_SNAPSHOTS} and no declared architecture or columns "
                     f"in a format {FORMAT_VERSION} zoo (an NWS zoo)")  # fmt: skip
        else:
            self._check_declared(source, fail)
        for name in ("splits", "status_counts"):
            counts = getattr(self, name)
            if not isinstance(counts, dict) or not all(
                isinstance(k, str) and is_int(v) and v >= 0 for k, v in counts.items()
            ):
                fail(name, counts, "a mapping of names to non-negative counts")
        if not isinstance(self.generation, dict):
            fail("generation", self.generation, "a mapping (the generation record)")
        self.__dict__["record"] = GenerationRecord.from_dict(self.generation, source)  # named errors, cached
        if self.dtype not in STORAGE_DTYPES:
            fail("dtype", self.dtype, " or ".join(STORAGE_DTYPES))
        seen: set[str] = set()
        for entry in self.files:
            check_relpath(entry.path, source)
            if entry.path in seen:
                fail("files", entry.path, "each file listed once")
            seen.add(entry.path)
            if not (isinstance(entry.sha256, str) and len(entry.sha256) == 64 and _is_hex(entry.sha256)):
                fail(f"the sha256 of {entry.path}", entry.sha256, "64 hexadecimal digits")
            if not is_int(entry.bytes) or entry.bytes < 0:
                fail(f"the size of {entry.path}", entry.bytes, "a non-negative number of bytes")

    def _check_declared(self, source: str, fail: Callable[[str, Any, str], None]) -> None:
        """A format 2 manifest (a converted zoo of another family) declares its architecture, snapshot count and
        columns, each checked and bounded."""
        from weightzoo.families import DeclaredArchitecture
        from weightzoo.format.index import COLUMN_TYPES, CORE_COLUMNS, MAX_COLUMNS

        if not 1 <= self.num_snapshots <= MAX_SNAPSHOTS:
            fail("num_snapshots", self.num_snapshots, f"1 to {MAX_SNAPSHOTS}")
        self.__dict__["declared_architecture"] = DeclaredArchitecture.from_dict(self.architecture, source)
        columns = self.columns
        if not isinstance(columns, dict) or len(columns) > MAX_COLUMNS:
            fail("columns", columns, f"a mapping of at most {MAX_COLUMNS} column names to types")
            return
        for name, kind in columns.items():
            if not (isinstance(name, str) and name.isidentifier() and name.isascii()) or name in CORE_COLUMNS:
                fail("a column name", name, "an identifier that is not a core index column")
            if kind not in COLUMN_TYPES:
                fail(f"the type of column {name}", kind, " or ".join(COLUMN_TYPES))


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def sha256_bytes(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(
    fs: Any,
    path: str,
    chunk: int = 8 * 2**20,
    on_bytes: Callable[[int], Any] | None = None,
    limit: int | None = None,
) -> tuple[str, int]:
    """sha256 and size of a file on an fsspec filesystem, read in chunks with no read-ahead cache (on remote
    filesystems each chunk is one range request: the file is fetched once, not once plus overlapping read-ahead).
    ``on_bytes`` is called with the size of each chunk read (for a progress bar). ``limit``: read at most this
    many bytes and one more (a longer file then reports ``limit + 1`` bytes: it is never read to its end)."""
    digest, size = hashlib.sha256(), 0
    budget = None if limit is None else limit + 1
    with fs.open(path, "rb", block_size=chunk, cache_type="none") as f:
        while block := f.read(chunk if budget is None else min(chunk, budget - size)):
            digest.update(block)
            size += len(block)
            if on_bytes is not None:
                on_bytes(len(block))
    return digest.hexdigest(), size
