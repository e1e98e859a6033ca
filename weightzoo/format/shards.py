"""Safetensors shards holding many networks each: the writer buffers networks and writes size-capped shards
atomically; the reader parses a shard's header once and reads one network's contiguous byte range.

Example:
    >>> import fsspec, numpy as np
    >>> from weightzoo.architecture import Architecture
    >>> fs = fsspec.filesystem("memory")
    >>> arch = Architecture()
    >>> w = {p.name: np.zeros((20, *p.shape), np.float32) for p in arch.params}
    >>> writer = ShardWriter(fs, "/doc-zoo", "train")
    >>> writer.add(7, w)
    >>> entry, locations = writer.flush()
    >>> reader = ShardReader(fs, "/doc-zoo", entry.path)
    >>> reader.read_network(7, locations[7]["byte_offset"], locations[7]["byte_length"], arch)["out.bias"].shape
    (20, 20)
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import struct
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from safetensors.numpy import save as safetensors_save

from weightzoo.architecture import Architecture
from weightzoo.errors import OutputPathError, ShardError, ZooFormatError
from weightzoo.format.confine import member
from weightzoo.format.layout import (
    DEFAULT_SHARD_BYTES,
    FORMAT_VERSION,
    NUM_SNAPSHOTS,
    PARTIAL_SUFFIX,
    STORAGE_DTYPES,
    parse_tensor_name,
    shard_name,
    tensor_name,
)
from weightzoo.format.manifest import FileEntry, sha256_bytes

_HEADER_LEN = struct.Struct("<Q")
_MAX_HEADER = 100 * 2**20
#: Tensor dtypes a shard may hold (:data:`~weightzoo.format.layout.STORAGE_DTYPES`): safetensors name -> numpy.
DTYPES: dict[str, str] = {"F32": "<f4", "F64": "<f8"}


def _join(root: str, rel: str) -> str:
    return f"{root.rstrip('/')}/{rel}"


def write_atomic(fs: Any, path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a ``.partial`` file, synced to disk (local files) and renamed at the end,
    so that an interrupted write never leaves a file that looks complete."""
    tmp = path + PARTIAL_SUFFIX
    try:
        with fs.open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            with contextlib.suppress(AttributeError, OSError, io.UnsupportedOperation):
                os.fsync(f.fileno())  # on disk before the rename: a power cut leaves the old name or the whole file
        fs.mv(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):  # never leave a partial file on a full disk
            fs.rm_file(tmp)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OutputPathError(
                f"no space left on device writing {path}; free space and run again with --resume"
            ) from None
        raise OutputPathError(f"could not write {path}: {e.strerror or e}") from None


class ShardWriter:
    """Buffers networks of one split and writes them as shards of at most ``max_bytes`` (one network at least);
    tensors are stored as ``dtype`` (``"float32"``, or ``"float64"`` for converted float64 releases)."""

    def __init__(
        self,
        fs: Any,
        root: str,
        split: str,
        max_bytes: int = DEFAULT_SHARD_BYTES,
        generator: str = "",
        dtype: str = "float32",
        num_snapshots: int = NUM_SNAPSHOTS,
        format_version: int = FORMAT_VERSION,
    ):
        if dtype not in STORAGE_DTYPES:
            raise ShardError(f"shard dtype {dtype!r}; expected one of {', '.join(STORAGE_DTYPES)}")
        self.fs, self.root, self.split, self.max_bytes, self.generator = fs, root, split, max_bytes, generator
        self.num_snapshots, self.format_version = num_snapshots, format_version
        self.dtype = np.dtype(dtype)
        self._buffer: dict[str, np.ndarray] = {}
        self._networks: list[int] = []
        self._bytes = 0
        self._count = 0

    def continue_after(self, count: int) -> None:
        """Number the next shard ``count`` (when resuming a zoo that already has shards 0 .. count - 1)."""
        self._count = max(self._count, count)

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    def add(self, network_id: int, weights: Mapping[str, np.ndarray]) -> None:
        """Buffer one network; ``weights`` maps parameter names, in reference order, to [snapshots, *shape] arrays
        (20 snapshots in an NWS zoo)."""
        if network_id in self._networks:
            raise ShardError(f"network {network_id} added twice to the {self.split} shard writer")
        size = sum(a.nbytes for a in weights.values())
        for position, (name, array) in enumerate(weights.items()):
            if array.shape[0] != self.num_snapshots:
                raise ShardError(
                    f"network {network_id} tensor {name}: shape {array.shape}, expected [{self.num_snapshots}, ...]"
                )
            self._buffer[tensor_name(network_id, position, name)] = np.ascontiguousarray(array, dtype=self.dtype)
        self._networks.append(network_id)
        self._bytes += size

    def should_flush(self) -> bool:
        return self._bytes >= self.max_bytes

    def flush(self) -> tuple[FileEntry, dict[int, dict[str, Any]]] | None:
        """Write the buffered networks as the next shard; return its file entry and each network's location."""
        if not self._networks:
            return None
        rel = shard_name(self.split, self._count)
        metadata = {"format": "weightzoo", "format_version": str(self.format_version), "generator": self.generator}
        data = _canonical(safetensors_save(self._buffer), metadata)
        header, data_start = _parse_header(memoryview(data)[:_MAX_HEADER], rel, len(data))
        ranges = _network_ranges(header, rel)
        view = memoryview(data)
        locations = {}
        for net in self._networks:
            begin, end = ranges[net]
            locations[net] = {
                "shard": rel,
                "byte_offset": data_start + begin,
                "byte_length": end - begin,
                "sha256": sha256_bytes(view[data_start + begin : data_start + end]),
            }
        write_atomic(self.fs, _join(self.root, rel), data)
        entry = FileEntry(rel, sha256_bytes(data), len(data))
        self._buffer, self._networks, self._bytes = {}, [], 0
        self._count += 1
        return entry, locations


def _canonical(data: bytes, metadata: Mapping[str, str]) -> bytes:
    """The safetensors file ``data`` with its header written canonically: ``__metadata__`` added and every key
    sorted, so the same tensors and metadata always give the same bytes (safetensors writes its metadata map in
    hash order, which changes from save to save). Offsets are relative to the data, so the data is untouched;
    the header is padded with spaces to a multiple of 8 bytes, as safetensors does."""
    (n,) = _HEADER_LEN.unpack(data[:8])
    header = json.loads(data[8 : 8 + n])
    header["__metadata__"] = dict(metadata)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return _HEADER_LEN.pack(len(text)) + text + data[8 + n :]


def _parse_header(prefix: memoryview | bytes, source: str, file_size: int) -> tuple[dict[str, Any], int]:
    """Parse a safetensors header from the file's first bytes; check it against the file size."""
    if file_size < 8 or len(prefix) < 8:
        raise ShardError(f"{source}: {file_size} bytes, too short for a safetensors header (truncated?)")
    (n,) = _HEADER_LEN.unpack(bytes(prefix[:8]))
    if n > _MAX_HEADER or 8 + n > file_size:
        raise ShardError(
            f"{source}: header length {n} does not fit a file of {file_size} bytes (truncated or "
            "not a safetensors file)"
        )
    if len(prefix) < 8 + n:
        raise ShardError(f"{source}: could read only {len(prefix)} of the {8 + n} header bytes")
    try:
        header = json.loads(bytes(prefix[8 : 8 + n]))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ShardError(f"{source}: the safetensors header is not valid JSON (corrupted file)") from None
    if not isinstance(header, dict):
        raise ShardError(f"{source}: the safetensors header is a JSON {type(header).__name__}; expected an object")
    header.pop("__metadata__", None)
    for name, info in header.items():
        _check_entry(name, info, source)
    end = max((t["data_offsets"][1] for t in header.values()), default=0)
    if 8 + n + end != file_size:
        raise ShardError(
            f"{source}: {file_size} bytes but its header describes {8 + n + end}; the shard is "
            "truncated or corrupted, regenerate or re-download it"
        )
    return header, 8 + n


def _check_entry(name: str, info: Any, source: str) -> None:
    """One tensor entry of a safetensors header: a known dtype, a shape of non-negative ints, offsets
    ``[begin, end]`` with ``end - begin`` the shape's size in bytes; else a :class:`ShardError` naming it."""
    expected = "{'dtype': 'F32' or 'F64', 'shape': [ints], 'data_offsets': [begin, end]}"
    ok = isinstance(info, dict) and info.get("dtype") in DTYPES
    shape, offsets = (info.get("shape"), info.get("data_offsets")) if isinstance(info, dict) else (None, None)
    ok = ok and isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)
    ok = ok and isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int and o >= 0 for o in offsets)
    if not ok:
        shown = repr(info) if len(repr(info)) < 120 else repr(info)[:117] + "..."
        raise ShardError(f"{source}: header entry {name!r} is {shown}; expected {expected}")
    size = int(np.prod(shape, dtype=np.int64)) * np.dtype(DTYPES[info["dtype"]]).itemsize
    if offsets[1] - offsets[0] != size:
        raise ShardError(
            f"{source}: header entry {name!r} ({info['dtype']} {shape}) spans bytes {offsets}, "
            f"{offsets[1] - offsets[0]} bytes; its shape and dtype need {size} (corrupted header)"
        )


def _network_ranges(header: Mapping[str, Any], source: str) -> dict[int, tuple[int, int]]:
    ranges: dict[int, tuple[int, int]] = {}
    for name, info in header.items():
        try:
            net = parse_tensor_name(name)[0]
        except ZooFormatError as e:
            raise ShardError(f"{source}: {e}") from None
        b, e = info["data_offsets"]
        lo, hi = ranges.get(net, (b, e))
        ranges[net] = (min(lo, b), max(hi, e))
    return ranges


class ShardReader:
    """Reads networks out of one shard: local files are memory-mapped, remote ones read by byte range."""

    def __init__(
        self,
        fs: Any,
        root: str,
        rel_path: str,
        *,
        expected_bytes: int | None = None,
        num_snapshots: int = NUM_SNAPSHOTS,
    ):
        """Open the shard ``rel_path`` of the zoo at ``root``, confined to it (:func:`~weightzoo.format.confine.member`:
        inside the folder, a regular file) and, with ``expected_bytes`` (the manifest's), of exactly that size;
        its tensors hold ``num_snapshots`` snapshots (the manifest's)."""
        self.rel_path, self.num_snapshots = rel_path, num_snapshots
        self._local = "file" in _protocols(fs)
        try:
            self.path = member(fs, root, rel_path, source="the zoo's index", expected_bytes=expected_bytes)
        except FileNotFoundError:
            raise ShardError(f"{_join(root, rel_path)}: shard listed in the index is missing") from None
        self.fs = fs
        self.size = int(fs.size(self.path))
        self._mmap: np.memmap | None = None
        if self._local:
            if self.size == 0:
                raise ShardError(f"{self.path}: empty file (truncated shard)")
            self._mmap = np.memmap(self.path, dtype=np.uint8, mode="r")
            prefix: Any = memoryview(self._mmap)[: min(self.size, _MAX_HEADER)]
        else:
            prefix = self._read(0, min(self.size, 8))
            if len(prefix) == 8:
                (n,) = _HEADER_LEN.unpack(prefix)
                prefix = self._read(0, min(self.size, 8 + n, _MAX_HEADER))
        self.header, self.data_start = _parse_header(prefix, self.path, self.size)

    def close(self) -> None:
        """Let go of the memory map (arrays already returned keep their pages alive until they are dropped)."""
        self._mmap = None
        self._closed = True

    def _read(self, start: int, end: int) -> bytes | memoryview:
        if getattr(self, "_closed", False):
            raise ShardError(f"{self.path}: read after close (reopen the zoo)")
        if self._mmap is not None:
            return memoryview(self._mmap)[start:end]  # zero-copy, read-only view of the mapped file
        return self.fs.cat_file(self.path, start=start, end=end)

    def read_bytes(self, offset: int, length: int) -> bytes | memoryview:
        """One network's raw bytes, read-only (a view of the memory map for local shards, no copy), after
        checking that the range lies inside the shard's data section."""
        if offset < self.data_start or length <= 0 or offset + length > self.size:
            raise ShardError(
                f"{self.path}: byte range [{offset}, {offset + length}) lies outside the shard's data "
                f"section [{self.data_start}, {self.size}); the index does not match this shard"
            )
        return self._read(offset, offset + length)

    def read_network(
        self, network_id: int, offset: int, length: int, architecture: Architecture, *, sha256: str | None = None
    ) -> dict[str, np.ndarray]:
        """The network's tensors, name -> float32 (float64 in a float64 shard) array [20, *shape], in reference
        order.

        The arrays are read-only views of the shard's bytes (no copy for local shards): copy what you keep or
        modify.
        """
        raw = self.read_bytes(offset, length)
        if sha256 is not None and sha256_bytes(raw) != sha256:
            raise ShardError(f"{self.path}: network {network_id}'s bytes fail their sha256 check (corrupted shard)")
        out: dict[str, np.ndarray] = {}
        for spec, begin, end, dtype in self._tensors(network_id, offset, length, architecture):
            shape = (self.num_snapshots, *spec.shape)
            count = (end - begin) // np.dtype(dtype).itemsize
            out[spec.name] = np.frombuffer(raw, dtype=dtype, count=count, offset=begin).reshape(shape)
        return out

    def read_snapshots(
        self, network_id: int, offset: int, length: int, architecture: Architecture, snapshots: Sequence[int]
    ) -> dict[str, np.ndarray]:
        """Only some snapshots (0-based positions) of a network: name -> float32 (float64 in a float64 shard)
        [len(snapshots), *shape].

        A snapshot of a tensor is one contiguous range: remote shards fetch just those ranges (one request for
        all of them), not the network's whole 20-snapshot range; local shards slice the memory map.
        """
        picks = [int(s) for s in snapshots]
        if self._local:  # local: the memory map is free to slice
            full = self.read_network(network_id, offset, length, architecture)
            return {name: array[picks] for name, array in full.items()}
        if offset < self.data_start or length <= 0 or offset + length > self.size:
            self.read_bytes(offset, length)  # raises, naming the range
        tensors = list(self._tensors(network_id, offset, length, architecture))
        starts, ends, where = [], [], []
        for spec, begin, end, dtype in tensors:
            step = (end - begin) // self.num_snapshots
            for s in picks:
                starts.append(offset + begin + s * step)
                ends.append(offset + begin + (s + 1) * step)
            where.append((spec, step, dtype))
        blobs = self.fs.cat_ranges([self.path] * len(starts), starts, ends)
        out: dict[str, np.ndarray] = {}
        k = 0
        for spec, step, dtype in where:
            parts = blobs[k : k + len(picks)]
            k += len(picks)
            if any(isinstance(p, Exception) or len(p) != step for p in parts):
                raise ShardError(f"{self.path}: could not read network {network_id}'s {spec.name} (truncated shard?)")
            out[spec.name] = np.frombuffer(b"".join(parts), dtype=dtype).reshape(len(picks), *spec.shape)
        return out

    def _tensors(
        self, network_id: int, offset: int, length: int, architecture: Architecture
    ) -> Iterator[tuple[Any, int, int, str]]:
        """(spec, begin, end, numpy dtype) of each of the network's tensors, relative to its byte range, checked
        against the architecture."""
        prefix = f"{network_id:07d}."
        names = sorted(n for n in self.header if n.startswith(prefix))
        specs = architecture.params
        if [parse_tensor_name(n)[2] for n in names] != [p.name for p in specs]:
            raise ShardError(
                f"{self.path}: network {network_id} has tensors {names[:3]}...; expected the "
                f"{len(specs)} tensors of {architecture!r}"
            )
        for name, spec in zip(names, specs, strict=True):
            info = self.header[name]
            begin, end = (self.data_start + o - offset for o in info["data_offsets"])
            shape = (self.num_snapshots, *spec.shape)
            dtype = DTYPES.get(info["dtype"])
            if dtype is None or tuple(info["shape"]) != shape or begin < 0 or end > length:
                raise ShardError(
                    f"{self.path}: tensor {name} is {info['dtype']} {info['shape']} at "
                    f"{info['data_offsets']}; expected F32 or F64 {list(shape)} inside the network's range"
                )
            yield spec, begin, end, dtype


def _protocols(fs: Any) -> tuple[str, ...]:
    p = fs.protocol
    return (p,) if isinstance(p, str) else tuple(p)
