"""Open a zoo (local folder or fsspec URL) and read networks out of it: the one read path of the package (the
``datasets`` builder, the baselines and the benchmarks all read through :class:`Zoo`).

Example (``zoo_path``: a small zoo written by the test fixtures):
    >>> with open_zoo(zoo_path) as zoo:
    ...     relu = zoo.filter(activation="relu", split="train")
    ...     w = zoo.weights(zoo.ids[0], snapshot=20)
    ...     vec = zoo.flat(zoo.ids[0], snapshot=1)
    >>> tuple(w["conv0.weight"].shape), vec.shape[0] == zoo.row(zoo.ids[0])["num_params"]
    ((8, 3, 5, 5), True)
"""

from __future__ import annotations

import json
import os
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from weightzoo.architecture import Architecture
from weightzoo.errors import (
    ChecksumError,
    ConfigError,
    ShardError,
    UnknownNameError,
    UnsafePathError,
    ZooFormatError,
    ZooNotFoundError,
)
from weightzoo.families import DeclaredArchitecture
from weightzoo.format.confine import member, read_member
from weightzoo.format.index import read_index
from weightzoo.format.layout import (
    INDEX_NAME,
    MANIFEST_NAME,
    NUM_SNAPSHOTS,
    PROGRESS_DIR,
    PROVENANCE_NAME,
    parse_snapshots,
)
from weightzoo.format.manifest import Manifest, sha256_bytes, sha256_file
from weightzoo.format.shards import ShardReader
from weightzoo.hparams import HyperParameters
from weightzoo.hub import require_reachable
from weightzoo.model import build_model
from weightzoo.paths import default_zoo_dir, is_url

#: Shards a :class:`Zoo` keeps open at once by default.
MAX_OPEN_SHARDS = 8


def open_zoo(
    path_or_url: str | os.PathLike | None = None,
    *,
    storage_options: Mapping[str, Any] | None = None,
    verify: bool = False,
    max_open_shards: int = MAX_OPEN_SHARDS,
) -> Zoo:
    """Open the zoo at a local path or fsspec URL (default: where ``python -m builder.generate`` writes);
    ``max_open_shards`` bounds the shards kept open at once (see :class:`Zoo`).

    Example:
        >>> zoo = open_zoo(zoo_path)  # a folder, an fsspec URL, hf://datasets/<org>/<name>; default: the demo zoo
        >>> len(zoo), zoo.manifest.name
        (6, 'synthetic-nws_fixed')
    """
    url = os.fspath(path_or_url if path_or_url is not None else default_zoo_dir())
    if not is_url(url):
        url = os.path.expanduser(url)
    else:
        require_reachable(url)
    fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
    root = root.rstrip("/")
    manifest_path = f"{root}/{MANIFEST_NAME}"
    try:
        text = read_member(fs, root, MANIFEST_NAME, source=url)
    except FileNotFoundError:
        raise ZooNotFoundError(f"{url!r} is not a zoo: no {MANIFEST_NAME} there ({_no_manifest(fs, root)})") from None
    manifest = Manifest.from_json(text, source=manifest_path)
    index_path = f"{root}/{INDEX_NAME}"
    # The index holds the labels people predict: it is checked at every open (it is read whole anyway), and read
    # no further than the size the manifest states.
    expected = manifest.file(INDEX_NAME)
    try:
        index_bytes = read_member(fs, root, INDEX_NAME, source=manifest_path, expected_bytes=expected.bytes)
    except FileNotFoundError:
        raise ZooNotFoundError(f"{index_path}: listed in the manifest but missing") from None
    except ShardError as e:  # another size than the manifest's
        raise ChecksumError(f"{e}; the index was changed or damaged since the zoo was written") from None
    digest = sha256_bytes(index_bytes)
    if digest != expected.sha256:
        raise ChecksumError(
            f"{index_path}: sha256 {digest[:16]}..., but the manifest records {expected.sha256[:16]}...; the index "
            "was changed or damaged since the zoo was written: restore it (or regenerate the zoo)"
        )
    index = read_index(index_bytes, source=index_path, schema=manifest.index_schema)
    _check_counts(manifest, index, manifest_path)
    zoo = Zoo(fs, root, manifest, index, url=url, max_open_shards=max_open_shards)
    if verify:
        zoo.verify()
    return zoo


def _no_manifest(fs: Any, root: str) -> str:
    """Why a location holds no zoo, and what to do about it."""
    make = "make one with: python -m builder.generate --out <folder> (no --out: the demo zoo, where readers look)"
    try:
        if fs.exists(f"{root}/{PROGRESS_DIR}"):
            return f"an interrupted generation: continue it with python -m builder.generate --out {root} --resume"
        if fs.exists(root):
            return f"a folder without a manifest, not a zoo; {make}"
    except OSError:
        pass
    return f"no such folder; {make}"


def _check_counts(manifest: Manifest, index: pa.Table, source: str) -> None:
    """The manifest's counts (networks, splits, statuses) agree with its index (which its sha256 vouches for)."""
    counts = {
        "num_networks": (manifest.num_networks, index.num_rows),
        "splits": (manifest.splits, dict(Counter(index.column("split").to_pylist()))),
        "status_counts": (manifest.status_counts, dict(Counter(index.column("status").to_pylist()))),
    }
    for name, (stated, actual) in counts.items():
        if stated != actual:
            raise ZooFormatError(
                f"{source}: {name} is {stated!r}, but the index (checked against its sha256) holds {actual!r}; the "
                "manifest was edited or damaged: restore it"
            )


class _ShardCache:
    """The open shards of a zoo, shared by its filtered views: at most ``limit`` open at once, least recently
    used closed first (a local shard holds a memory map, a remote one its parsed header)."""

    def __init__(
        self, fs: Any, root: str, limit: int, sizes: Mapping[str, int] | None = None, num_snapshots: int = NUM_SNAPSHOTS
    ):
        if limit < 1:
            raise ConfigError(f"max_open_shards={limit!r}; expected at least 1")
        self.fs, self.root, self.limit, self.num_snapshots = fs, root, limit, num_snapshots
        self.sizes = dict(sizes or {})  # shard -> the size the manifest states
        self._open: OrderedDict[str, ShardReader] = OrderedDict()

    def get(self, shard: str) -> ShardReader:
        reader = self._open.pop(shard, None) or ShardReader(
            self.fs, self.root, shard, expected_bytes=self.sizes.get(shard), num_snapshots=self.num_snapshots
        )
        self._open[shard] = reader
        while len(self._open) > self.limit:
            self._open.popitem(last=False)[1].close()
        return reader

    def drop(self, shard: str) -> None:
        reader = self._open.pop(shard, None)
        if reader is not None:
            reader.close()

    def close(self) -> None:
        while self._open:
            self._open.popitem()[1].close()


class Zoo:
    """A zoo, or a filtered view of one. Snapshots are numbered 1 (initialisation) to 20 (last epoch) in an NWS
    zoo, 1 to :attr:`num_snapshots` in a converted zoo of another family (the Small CNN Zoo: 9, Model Zoos: 51).

    A zoo keeps up to ``max_open_shards`` shards open (memory maps of local shards, headers of remote ones),
    shared with its filtered views; :meth:`close` (or a ``with`` block) releases them. Arrays already returned stay
    valid after closing.
    """

    def __init__(
        self,
        fs: Any,
        root: str,
        manifest: Manifest,
        index: pa.Table,
        *,
        url: str = "",
        max_open_shards: int = MAX_OPEN_SHARDS,
        _shards: _ShardCache | None = None,
    ):
        self.fs, self.root, self.manifest, self.index, self.url = fs, root, manifest, index, url or root
        sizes = {f.path: f.bytes for f in manifest.files}  # what the manifest lists, with the stated sizes
        self._shards = (
            _shards if _shards is not None else _ShardCache(fs, root, max_open_shards, sizes, manifest.num_snapshots)
        )
        self._rows: dict[int, int] = {nid: i for i, nid in enumerate(index.column("network_id").to_pylist())}
        for shard in set(index.column("shard").to_pylist()):
            if shard not in sizes:
                raise ZooFormatError(
                    f"{root}/{INDEX_NAME}: rows point to shard {shard!r}, which the manifest does not list"
                )

    def __len__(self) -> int:
        return self.index.num_rows

    def __enter__(self) -> Zoo:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the open shards (of this zoo and every view of it); reading again reopens them."""
        self._shards.close()

    def __repr__(self) -> str:
        return f"Zoo({self.url!r}, networks={len(self)}, name={self.manifest.name!r})"

    def __iter__(self) -> Iterator[int]:
        return iter(self.ids)

    @property
    def ids(self) -> list[int]:
        """Network ids in this (possibly filtered) zoo, ascending."""
        return self.index.column("network_id").to_pylist()

    @property
    def networks(self) -> Any:
        """The index as a pandas DataFrame (one row per network)."""
        return self.index.to_pandas()

    def filter(self, **conditions: Any) -> Zoo:
        """Keep the networks whose columns match: a value, a collection of values, or a predicate.

        Example:
            >>> zoo = open_zoo(zoo_path)
            >>> zoo.filter(dataset=["stl10", "cifar10"], activation="relu", learning_rate=lambda lr: lr < 1e-3).ids
            [3, 5]
        """
        mask = pa.array(np.ones(len(self), dtype=bool))
        for column, cond in conditions.items():
            if column not in self.index.column_names:
                raise UnknownNameError("index column", column, self.index.column_names)
            values = self.index.column(column)
            if callable(cond):
                part = pa.array([bool(cond(v)) for v in values.to_pylist()])
            elif isinstance(cond, Iterable) and not isinstance(cond, (str, bytes)):
                part = pc.is_in(values, value_set=pa.array(list(cond), type=values.type))
            else:
                part = pc.equal(values, pa.scalar(cond, type=values.type))
            mask = pc.and_(mask, pc.fill_null(part, False))
        return self._view(self.index.filter(mask))

    def split(self, name: str) -> Zoo:
        """The networks of one split (``train`` or ``test``)."""
        valid = sorted(self.manifest.splits)
        if name not in valid:
            raise UnknownNameError("split", name, valid)
        return self.filter(split=name)

    def _view(self, index: pa.Table) -> Zoo:
        return Zoo(self.fs, self.root, self.manifest, index, url=self.url, _shards=self._shards)

    def row(self, network_id: int) -> dict[str, Any]:
        """The index row of one network as a dict."""
        if network_id not in self._rows:
            raise ZooFormatError(
                f"{self.url}: no network {network_id!r} here ({len(self)} networks, ids "
                f"{self.ids[:3]}...{self.ids[-3:]})"
            )
        return self.index.slice(self._rows[network_id], 1).to_pylist()[0]

    @property
    def num_snapshots(self) -> int:
        """Snapshots per network: 20 in an NWS zoo; a converted zoo's manifest states its own."""
        return self.manifest.num_snapshots

    @property
    def last_snapshot(self) -> int:
        """The number of the last snapshot (the trained network)."""
        return self.manifest.num_snapshots

    def hyperparameters(self, network_id: int) -> HyperParameters:
        """The NWS hyper-parameters of a network (a converted zoo of another family has its own columns in
        :meth:`row` instead)."""
        if self.manifest.declared:
            raise ZooFormatError(
                f"{self.url}: a converted {self.manifest.declared_architecture.family} zoo has no NWS "
                f"hyper-parameters; its own are the index columns {list(self.manifest.columns or {})} (zoo.row(n))"
            )
        return HyperParameters.from_dict(self.row(network_id))

    def architecture(self, network_id: int) -> Architecture | DeclaredArchitecture:
        """A network's architecture: from its hyper-parameters (NWS), or the one a converted zoo declares."""
        if self.manifest.declared:
            self.row(network_id)  # a known network
            return self.manifest.declared_architecture
        return self.hyperparameters(network_id).architecture

    def _architecture_of(self, row: Mapping[str, Any]) -> Architecture | DeclaredArchitecture:
        if self.manifest.declared:
            return self.manifest.declared_architecture
        return HyperParameters.from_dict(row).architecture

    def _reader(self, shard: str) -> ShardReader:
        return self._shards.get(shard)

    def read_arrays(
        self, network_id: int, snapshots: Sequence[int] | str | int | None = None, *, check: bool = False
    ) -> dict[str, np.ndarray]:
        """One network as numpy arrays [len(snapshots), *shape] (default: all 20, read-only zero-copy views of the
        memory map for local zoos), reading only its byte range, or only the selected snapshots' bytes.
        ``snapshots`` as every entry point takes them (``"11..20"``, ``20``, a list in its own order). The other
        readers (``weights``, ``flat``, ``snapshots``, ``model``, ``iter_arrays``) are views of this one.

        ``check=True`` verifies the network's bytes against the sha256 in the index.

        Example:
            >>> open_zoo(zoo_path).read_arrays(0, "19..20")["conv0.weight"].shape
            (2, 8, 3, 5, 5)
        """
        if snapshots is None:
            return self._read_row(self.row(network_id), None, check)
        if isinstance(snapshots, (str, int)):
            snapshots = parse_snapshots(snapshots, self.num_snapshots)
        return self._read_row(self.row(network_id), [self._snapshot_index(s) for s in snapshots], check)

    def _read_row(self, row: dict[str, Any], picks: list[int] | None, check: bool) -> dict[str, np.ndarray]:
        """One network's arrays from its index row: all 20 snapshots (``picks`` None: zero-copy views) or the
        0-based positions ``picks``. The sha256 (``check``) covers all 20 snapshots, so a checked read reads them
        all; an unchecked one reads only the picked snapshots' bytes."""
        reader = self._reader(row["shard"])
        where = (row["network_id"], row["byte_offset"], row["byte_length"], self._architecture_of(row))
        if picks is None or check:
            arrays = reader.read_network(*where, sha256=row["sha256"] if check else None)
            return arrays if picks is None else {name: a[picks] for name, a in arrays.items()}
        return reader.read_snapshots(*where, picks)

    def iter_arrays(
        self, snapshots: Sequence[int] | str | int | None = None, *, check: bool | None = None
    ) -> Iterator[tuple[dict[str, Any], dict[str, np.ndarray]]]:
        """Every network of this view as ``(index row, {name: float32 array [len(snapshots), *shape]})``, in
        storage order (shard by shard, byte offset within a shard), each shard closed once its networks are read:
        memory stays bounded by one shard's pages, and a remote zoo fetches each byte range once.

        ``snapshots``: snapshot numbers (1..20, default all), in the order given, or a selection as every entry
        point takes it (``"11..20"``, ``20``: :func:`~weightzoo.format.layout.parse_snapshots`). ``check``: verify
        each network's sha256 (it covers all 20 snapshots, so checking reads them all); None checks when all 20 are
        selected and otherwise reads only the selected snapshots' bytes.

        Example:
            >>> with open_zoo(zoo_path) as zoo:
            ...     row, arrays = next(zoo.iter_arrays([1, 20]))
            >>> arrays["conv0.weight"].shape
            (2, 8, 3, 5, 5)
        """
        if isinstance(snapshots, (str, int)):
            snapshots = parse_snapshots(snapshots, self.num_snapshots)
        every = range(1, self.num_snapshots + 1)
        picks = [self._snapshot_index(s) for s in (snapshots if snapshots is not None else every)]
        if check is None:
            check = len(picks) == self.num_snapshots
        order = self.index.sort_by([("shard", "ascending"), ("byte_offset", "ascending")])
        rows = order.to_pylist()
        current = None
        try:
            for k, row in enumerate(rows):
                current = row["shard"]
                yield row, self._read_row(row, picks, check)
                if k + 1 == len(rows) or rows[k + 1]["shard"] != row["shard"]:
                    self._shards.drop(row["shard"])
        finally:  # an error, or a caller that stops early: the open shard is let go now, not at interpreter exit
            if current is not None:
                self._shards.drop(current)

    def snapshots(self, network_id: int, *, check: bool = False) -> dict[str, torch.Tensor]:
        """All 20 snapshots: parameter name -> tensor [20, *shape], in reference order."""
        return {k: torch.from_numpy(v.copy()) for k, v in self.read_arrays(network_id, check=check).items()}

    def weights(self, network_id: int, snapshot: int | None = None, *, check: bool = False) -> dict[str, torch.Tensor]:
        """One snapshot (1..20; default the last) as a ``state_dict``-style dict of tensors in reference order.

        Example:
            >>> open_zoo(zoo_path).weights(0, snapshot=1)["conv0.weight"].shape
            torch.Size([8, 3, 5, 5])
        """
        arrays = self.read_arrays(network_id, [self.last_snapshot if snapshot is None else snapshot], check=check)
        return {k: torch.from_numpy(v[0].copy()) for k, v in arrays.items()}

    def flat(self, network_id: int, snapshot: int | None = None, *, check: bool = False) -> torch.Tensor:
        """One snapshot (default the last) as the flat reference-order vector (``weightn_conv`` is the conv/dense
        boundary), in the stored precision: float32, or float64 for a zoo converted with ``builder.convert_nws
        --float64``. A converted Small CNN Zoo's vector is its ``weights.npy`` row, value for value.

        The concatenation is numpy's, serial: ``torch.cat`` of a network's small tensors runs on the intra-op thread
        pool and, on a busy machine, waits for every thread (measured: 10x the read itself on 2 shared cores)."""
        parts = [t.reshape(-1).numpy() for t in self.weights(network_id, snapshot, check=check).values()]
        return torch.from_numpy(np.concatenate(parts))

    @property
    def provenance(self) -> dict[str, Any]:
        """How and where the zoo was made (``provenance.json``: time, host, paths, executor, ``train_seconds`` per
        network), or ``{}`` when absent. Not covered by the manifest's checksums: the rest of the zoo is the same
        bytes on every run of the same command, this file is not.

        Example:
            >>> sorted(open_zoo(zoo_path).provenance["train_seconds"])  # seconds per network id
            ['0', '1', '2', '3', '4', '5']
        """
        path = f"{self.root}/{PROVENANCE_NAME}"
        try:
            data = json.loads(read_member(self.fs, self.root, PROVENANCE_NAME, source=self.url))
        except FileNotFoundError:
            return {}
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ZooFormatError(f"{path}: not valid JSON ({e}); delete it (it holds provenance only)") from None
        return data if isinstance(data, dict) else {}

    def model(self, network_id: int, snapshot: int | None = None) -> torch.nn.Module:
        """A ready ``torch.nn.Module`` (eval mode) holding the network at that snapshot (default the last), with
        the batch-norm epsilon the zoo was trained with; a converted zoo of another family: its family's network
        (:class:`~weightzoo.family_models.FamilyNet`, the stored tensors as they are)."""
        if self.manifest.declared:
            from weightzoo.family_models import build_family_model

            activation = self.row(network_id).get("activation")
            return build_family_model(self.architecture(network_id), activation, self.weights(network_id, snapshot))
        hp = self.hyperparameters(network_id)
        eps = self.manifest.record.train.bn_eps
        return build_model(self.weights(network_id, snapshot), hp.architecture, hp.activation, bn_eps=eps)

    def verify(self, progress: bool | None = None) -> dict[str, str]:
        """Check the sha256 and size of every file in the manifest, each read once.

        Returns ``{path: "ok"}`` when all pass; raises :class:`ChecksumError` naming each bad or missing file.
        ``progress``: a bar over the bytes read (None: when standard error is a terminal).

        Example:
            >>> open_zoo(zoo_path).verify(progress=False)["index.parquet"]
            'ok'
        """
        from weightzoo.progress import bar

        results: dict[str, str] = {}
        total = sum(f.bytes for f in self.manifest.files)
        with bar(total=total, progress=progress, unit="B", unit_scale=True, desc="verify") as shown:
            for entry in self.manifest.files:
                try:  # confined, a regular file, of the stated size: then read no further than that size
                    path = member(self.fs, self.root, entry.path, source=f"{self.root}/{MANIFEST_NAME}")
                    size = int(self.fs.size(path))
                    if size != entry.bytes:
                        results[entry.path] = f"size {size} bytes, manifest says {entry.bytes} (truncated?)"
                        continue
                    digest, size = sha256_file(self.fs, path, on_bytes=shown.update, limit=entry.bytes)
                except FileNotFoundError:
                    results[entry.path] = "missing"
                    continue
                except (UnsafePathError, ZooFormatError) as e:
                    results[entry.path] = str(e)
                    continue
                self._verdict(results, entry, digest, size)
        if results.get(INDEX_NAME) == "ok":
            _check_counts(self.manifest, self._full_index(), f"{self.root}/{MANIFEST_NAME}")
        return self._raise_bad(results)

    def _full_index(self) -> pa.Table:
        """The zoo's whole index (a filtered view verifies the whole zoo's files and counts)."""
        size = self.manifest.file(INDEX_NAME).bytes
        data = read_member(self.fs, self.root, INDEX_NAME, source=self.url, expected_bytes=size)
        return read_index(data, source=f"{self.root}/{INDEX_NAME}", schema=self.manifest.index_schema)

    @staticmethod
    def _verdict(results: dict[str, str], entry: Any, digest: str, size: int) -> None:
        if size != entry.bytes:
            results[entry.path] = f"size {size} bytes, manifest says {entry.bytes} (truncated?)"
        elif digest != entry.sha256:
            results[entry.path] = f"sha256 {digest[:12]}..., manifest says {entry.sha256[:12]}... (corrupted)"
        else:
            results[entry.path] = "ok"

    def _raise_bad(self, results: dict[str, str]) -> dict[str, str]:
        bad = {p: r for p, r in results.items() if r != "ok"}
        if bad:
            raise ChecksumError(
                f"{self.url}: {len(bad)} of {len(results)} files fail verification: "
                + "; ".join(f"{self.root}/{p}: {r}" for p, r in bad.items())
            )
        return results

    def _snapshot_index(self, snapshot: int) -> int:
        count = self.num_snapshots
        if not isinstance(snapshot, (int, np.integer)) or isinstance(snapshot, bool) or not 1 <= snapshot <= count:
            raise ConfigError(f"snapshot {snapshot!r}; expected an integer from 1 (initialisation) to {count}")
        return int(snapshot) - 1
