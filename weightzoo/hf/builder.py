"""The ``datasets`` builder that reads a zoo: ``load_dataset("weightzoo", name, data_dir=..., **options)``.

``data_dir`` is the zoo root: a local folder, an fsspec URL (``memory://zoo``, ``s3://...``) or a Hub dataset
repository (``hf://datasets/<org>/<name>``, optionally ``@<revision>``). Without it, configuration ``name`` picks
the zoo ``python -m builder.generate --preset <name>`` writes by default (``$WEIGHTZOO_HOME/<name>``,
``~/.cache/weightzoo/zoos/<name>`` unless set); ``default`` is the ``demo`` zoo there.

Options (keyword arguments of ``load_dataset``; see :class:`WeightZooConfig`): ``snapshots`` (``"11..20"``, ``20``,
``[1, 20]``; default all 20), ``granularity`` (``"network"``: one row per network, per-snapshot values as lists;
``"snapshot"``: one row per network and snapshot), ``view`` (``"flat"``: ``weights``, the reference-order flat
vector, ``weightn_conv`` values of conv part first; ``"layers"``: ``layers``, one ``{name, shape, values}`` per
tensor) and ``verify`` (each network's sha256 checked as it is read). Splits are the index's ``train``/``test``.

Features: categorical hyper-parameters are ``ClassLabel`` whose integer is the reference's code (position in
:data:`weightzoo.hparams.CATEGORICAL`) and whose names are the values as strings (``"64"``, ``"true"``,
``"adam"``); ``learning_rate`` and the metrics are ``float64``; weights exactly as stored: ``float32``, or
``float64`` for a zoo converted with ``builder.convert_nws --float64`` (its manifest's ``dtype``).

Example:
    >>> from datasets import load_dataset  # doctest: +SKIP
    >>> ds = load_dataset("weightzoo", "nws_fixed", snapshots="11..20", granularity="snapshot")  # doctest: +SKIP
    >>> ds["train"].features["optimizer"].names  # doctest: +SKIP
    ['adam', 'rmsprop', 'sgd_momentum']
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import datasets
import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets.builder import Key
from datasets.exceptions import DatasetGenerationError
from datasets.fingerprint import Hasher
from datasets.table import table_cast

from weightzoo.about import BIBTEX
from weightzoo.errors import (
    ConfigError,
    ShardError,
    UnknownNameError,
    WeightZooError,
    ZooFormatError,
    ZooNotFoundError,
)
from weightzoo.format.confine import read_member
from weightzoo.format.index import HPARAM_COLUMNS
from weightzoo.format.layout import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    MAX_SNAPSHOTS,
    METRICS,
    SPLITS,
    STATUSES,
    parse_snapshots,
)
from weightzoo.format.manifest import Manifest, sha256_bytes
from weightzoo.hf.rows import label_names
from weightzoo.hparams import CATEGORICAL, code_of
from weightzoo.hub import require_reachable
from weightzoo.paths import DEFAULT_ZOO, default_zoo_dir, resolve_location, zoos_at_home
from weightzoo.zoo import Zoo, open_zoo

#: The generation presets (``builder.engine.space.PRESETS``), each a configuration reading ``$WEIGHTZOO_HOME/<preset>``.
PRESET_CONFIGS: tuple[str, ...] = ("demo", "nws_fixed", "nws_main")
GRANULARITIES: tuple[str, ...] = ("network", "snapshot")
VIEWS: tuple[str, ...] = ("flat", "layers")
#: Weight bytes per Arrow table yielded to ``datasets`` (bounds memory while preparing and streaming).
BATCH_BYTES = 32 * 2**20


class ZooReadError(ShardError, DatasetGenerationError):
    """A shard could not be read while ``datasets`` prepared or streamed a zoo (missing, truncated, failing its
    sha256 check). Also a ``DatasetGenerationError``, so ``load_dataset`` raises it as is, its message naming the
    file, instead of a generic "An error occurred while generating the dataset"."""


@dataclass
class WeightZooConfig(datasets.BuilderConfig):
    """Configuration of the ``weightzoo`` builder.

    Args:
        snapshots: snapshot numbers to load (1 = initialisation ... 20 = last epoch): ``None`` (all 20), an int,
            an iterable of ints, or a string such as ``"11..20"``, ``"11-20"`` or ``"1,10,20"``.
        granularity: ``"network"`` (one row per network; ``snapshot``, ``epoch``, metrics and weights are lists
            over the selected snapshots; per-epoch ``history_*`` included) or ``"snapshot"`` (one row per network
            and selected snapshot, scalar metrics).
        view: ``"flat"``: column ``weights``, the flat reference-order vector of a snapshot (its first
            ``weightn_conv`` values are the conv part); ``"layers"``: column ``layers``, a list of
            ``{name, shape, values}`` per tensor in reference order (``values`` flat, reshape to ``shape``).
        verify: check each network's bytes against the sha256 in the index while reading (not part of the cache
            key: it does not change the data). The checksum covers all 20 snapshots, so checking reads them all;
            the default (None) checks when all 20 are selected and otherwise reads only the selected snapshots'
            bytes (a remote zoo then fetches nothing else). ``True`` always checks, ``False`` never.
    """

    snapshots: Any = None
    granularity: str = "network"
    view: str = "flat"
    verify: bool | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        # checked here; resolved against the zoo's snapshot count (20, or a converted zoo's) once its manifest is read
        self.snapshots = None if self.snapshots is None else parse_snapshots(self.snapshots, MAX_SNAPSHOTS)
        if self.granularity not in GRANULARITIES:
            raise UnknownNameError("granularity", self.granularity, GRANULARITIES)
        if self.view not in VIEWS:
            raise UnknownNameError("view", self.view, VIEWS)
        self.verify = None if self.verify is None else bool(self.verify)


_OPTIONS = ("snapshots", "granularity", "view", "verify", "data_dir")


def zoo_features(
    granularity: str = "network", view: str = "flat", weights: str = "float32", columns: dict[str, str] | None = None
) -> datasets.Features:
    """The typed columns of a ``weightzoo`` dataset for a granularity, a view and the zoo's weight dtype; a
    converted zoo of another family (``columns``: its manifest's own columns) has those instead of the NWS
    hyper-parameters, and no per-epoch history or zoo seed."""
    per_snap = granularity == "network"

    def snap(feature: Any) -> Any:
        return datasets.List(feature) if per_snap else feature

    f32, f64, i64 = datasets.Value(weights), datasets.Value("float64"), datasets.Value("int64")
    features: dict[str, Any] = {"network_id": i64, "status": datasets.ClassLabel(names=list(STATUSES))}
    if columns is None:
        for name in HPARAM_COLUMNS:
            features[name] = datasets.ClassLabel(names=label_names(name)) if name in CATEGORICAL else f64
    else:
        features.update({name: datasets.Value(kind) for name, kind in columns.items()})
    for name in ("num_params", "weightn_conv", "weightn_fc", "n_epochs"):
        features[name] = i64
    features.update(final_test_accuracy=f64)
    if columns is None:
        features.update(zoo_seed=i64)
    features.update(snapshot=snap(datasets.Value("int32")), epoch=snap(i64))
    features.update({m: snap(f64) for m in METRICS})
    if per_snap and columns is None:
        features.update({f"history_{m}": datasets.List(f64) for m in METRICS})
    if view == "flat":
        features["weights"] = snap(datasets.List(f32))
    else:
        layer = {"name": datasets.Value("string"), "shape": datasets.List(i64), "values": snap(datasets.List(f32))}
        features["layers"] = datasets.List(layer)
    return datasets.Features(features)


def zoo_location(config: WeightZooConfig) -> str:
    """The zoo root a configuration reads: ``data_dir`` (local paths made absolute) or the default location."""
    if config.data_dir:
        return resolve_location(config.data_dir)
    return default_zoo_dir(DEFAULT_ZOO if config.name == "default" else config.name)


class WeightZoo(datasets.ArrowBasedBuilder):
    """Reads a weightzoo zoo (safetensors shards, parquet index, manifest) into typed Arrow tables."""

    BUILDER_CONFIG_CLASS = WeightZooConfig
    BUILDER_CONFIGS: ClassVar[list[WeightZooConfig]] = [
        WeightZooConfig(name="default", description="The zoo at data_dir; without it, $WEIGHTZOO_HOME/demo."),
        *(
            WeightZooConfig(name=p, description=f"The {p} zoo: data_dir, or by default $WEIGHTZOO_HOME/{p}.")
            for p in PRESET_CONFIGS
        ),
    ]
    DEFAULT_CONFIG_NAME = "default"
    VERSION = datasets.Version(f"{FORMAT_VERSION}.0.0")

    def _create_builder_config(
        self, config_name: str | None = None, custom_features: Any = None, config_id: str | None = None, **kwargs: Any
    ) -> tuple[WeightZooConfig, str]:
        """Pick the configuration, apply the options, read the zoo's manifest and derive the cache key from the
        options and the manifest's sha256 (so a regenerated zoo is never served from a stale cache)."""
        if kwargs.pop("data_files", None):
            raise ConfigError("the weightzoo builder reads a whole zoo: pass data_dir=<zoo root>, not data_files")
        for key in ("name", "version", "description"):
            kwargs.pop(key, None)
        unknown = sorted(set(kwargs) - set(_OPTIONS))
        if unknown:
            raise UnknownNameError("weightzoo option", unknown[0], _OPTIONS)
        name = config_name or self.DEFAULT_CONFIG_NAME
        base = self.builder_configs.get(name)
        if base is None:  # any other zoo the builder wrote to the default location: $WEIGHTZOO_HOME/<name>
            if name not in zoos_at_home():
                valid = [*self.builder_configs, *(z for z in zoos_at_home() if z not in self.builder_configs)]
                raise UnknownNameError("weightzoo config", name, valid)
            base = WeightZooConfig(name=name, description=f"The zoo at {default_zoo_dir(name)}.")
        config = dataclasses.replace(base, **{k: v for k, v in kwargs.items() if v is not None})
        at_default = not config.data_dir
        config.data_dir = zoo_location(config)
        manifest_sha, manifest = self._read_manifest(config, at_default)
        self.manifest = manifest
        config.snapshots = parse_snapshots(config.snapshots, manifest.num_snapshots)
        preset = manifest.record.preset
        if name in PRESET_CONFIGS and preset and preset != name:
            raise ConfigError(
                f"config {name!r}, but the zoo at {config.data_dir} was generated with preset {preset!r}; use "
                f"load_dataset('weightzoo', {preset!r}, data_dir=...) or the 'default' config"
            )
        if config_id is None:
            key = {
                "zoo": config.data_dir,
                "manifest_sha256": manifest_sha,
                "snapshots": list(config.snapshots),
                "granularity": config.granularity,
                "view": config.view,
                "features": Hasher.hash(custom_features) if custom_features is not None else None,
            }
            config_id = f"{name}-{hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]}"
        return config, config_id

    def _storage_options(self, url: str) -> dict[str, Any]:
        protocol = url.split("://", 1)[0] if "://" in url else "file"
        given = self.storage_options or {}
        nested = given.get(protocol)
        opts = dict(nested) if isinstance(nested, dict) else {k: v for k, v in given.items() if not isinstance(v, dict)}
        if protocol == "hf" and self.token is not None:
            opts.setdefault("token", self.token)
        return opts

    def _read_manifest(self, config: WeightZooConfig, at_default: bool) -> tuple[str, Manifest]:
        url = str(config.data_dir)
        require_reachable(url)
        fs, root = fsspec.core.url_to_fs(url, **self._storage_options(url))
        try:
            data = read_member(fs, root.rstrip("/"), MANIFEST_NAME, source=url)
        except FileNotFoundError:
            what = f"it has no {MANIFEST_NAME}" if fs.exists(root) else "no such folder"
            if at_default:
                preset = DEFAULT_ZOO if config.name == "default" else config.name
                hint = (
                    f"this is the default location of config {config.name!r}: generate the zoo with `python -m "
                    f"builder.generate --preset {preset}`, or pass data_dir=<zoo root>; zoos in "
                    f"{os.path.dirname(url)}: {', '.join(zoos_at_home()) or 'none'}"
                )
            else:
                hint = (
                    "expected a zoo root (manifest.json, index.parquet, shards/) as python -m builder.generate writes"
                )
            raise ZooNotFoundError(f"{url!r} is not a weightzoo zoo ({what}); {hint}") from None
        return sha256_bytes(data), Manifest.from_json(data, source=f"{url}/{MANIFEST_NAME}")

    def _info(self) -> datasets.DatasetInfo:
        manifest = getattr(self, "manifest", None)
        about = f" `{manifest.name}` ({manifest.num_networks} networks)" if manifest else ""
        return datasets.DatasetInfo(
            description=f"weightzoo zoo{about}: trained CNNs, their hyper-parameters, metrics and weights at "
            f"snapshots {list(self.config.snapshots)}, one row per {self.config.granularity}, {self.config.view} view.",
            features=self._features(),
            citation=BIBTEX,
            homepage="https://github.com/weightzoo/weightzoo",
            license=manifest.record.license_stated if manifest is not None else None,
        )

    def _features(self) -> datasets.Features:
        manifest = getattr(self, "manifest", None)
        columns = manifest.columns if manifest is not None else None
        return zoo_features(self.config.granularity, self.config.view, self._weights_dtype(), columns)

    def _weights_dtype(self) -> str:
        """How the zoo stores weights (``float32``; ``float64`` for converted float64 releases): the features keep
        it, so the dataset holds the stored values exactly, as ``Zoo.flat`` returns them."""
        manifest = getattr(self, "manifest", None)
        return manifest.dtype if manifest is not None else "float32"  # checked when the manifest was read

    def _open(self) -> Zoo:
        url = str(self.config.data_dir)
        return open_zoo(url, storage_options=self._storage_options(url))

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        with self._open() as zoo:
            generators = []
            for split in SPLITS:
                part = zoo.index.filter(pc.equal(zoo.index.column("split"), split))
                if part.num_rows:
                    shards = sorted(set(part.column("shard").to_pylist()))
                    generators.append(
                        datasets.SplitGenerator(name=split, gen_kwargs={"shards": shards, "split": split})
                    )
        if not generators:
            raise ZooFormatError(
                f"{self.config.data_dir}: the index lists no networks in splits {list(SPLITS)}; nothing to load"
            )
        return generators

    def _generate_shards(self, shards: list[str], split: str) -> Iterator[str]:
        yield from shards

    def _generate_tables(self, shards: list[str], split: str) -> Iterator[tuple[Key, pa.Table]]:
        snapshots = list(self.config.snapshots)
        selected = np.asarray(snapshots) - 1
        with self._open() as zoo:
            for shard_idx, shard in enumerate(shards):  # a shard's networks, in storage order, then it is closed
                networks = zoo.filter(split=split, shard=shard).iter_arrays(snapshots, check=self.config.verify)
                batch: list[tuple[dict[str, Any], dict[str, np.ndarray]]] = []
                size, batch_idx = 0, 0
                try:
                    for row, arrays in networks:
                        batch.append((row, arrays))
                        size += sum(a.nbytes for a in arrays.values())
                        if size >= BATCH_BYTES:
                            yield Key(shard_idx, batch_idx), self._table(batch, selected)
                            batch, size, batch_idx = [], 0, batch_idx + 1
                except WeightZooError as e:  # a bad shard, header, path or row: named, not a generic failure
                    url = self.config.data_dir
                    raise ZooReadError(f"{e}; run weightzoo.open_zoo({url!r}).verify() to check every file") from e
                if batch:
                    yield Key(shard_idx, batch_idx), self._table(batch, selected)

    def _table(self, batch: list[tuple[dict[str, Any], dict[str, np.ndarray]]], selected: np.ndarray) -> pa.Table:
        per_network = self.config.granularity == "network"
        n_snap = len(selected)
        repeat = 1 if per_network else n_snap
        rows = [row for row, _ in batch]
        columns: dict[str, Any] = {}

        def scalar(values: list[Any]) -> list[Any]:
            return values if per_network else [v for v in values for _ in range(n_snap)]

        columns["network_id"] = scalar([r["network_id"] for r in rows])
        columns["status"] = scalar([STATUSES.index(r["status"]) for r in rows])
        declared = self.manifest.columns
        for name in HPARAM_COLUMNS if declared is None else declared:
            columns[name] = scalar([code_of(name, r[name]) if name in CATEGORICAL and declared is None else r[name]
                                    for r in rows])  # fmt: skip
        for name in ("num_params", "weightn_conv", "weightn_fc", "n_epochs", "final_test_accuracy"):
            columns[name] = scalar([r[name] for r in rows])
        if declared is None:
            columns["zoo_seed"] = scalar([r["zoo_seed"] for r in rows])
        snaps = [int(s) + 1 for s in selected]
        if per_network:
            columns["snapshot"] = [snaps] * len(rows)
            columns["epoch"] = [[r["snapshot_epochs"][s] for s in selected] for r in rows]
            for m in METRICS:
                columns[m] = [[r[m][s] for s in selected] for r in rows]
            for m in METRICS if declared is None else ():
                columns[f"history_{m}"] = [r[f"history_{m}"] for r in rows]
        else:
            columns["snapshot"] = snaps * len(rows)
            columns["epoch"] = [r["snapshot_epochs"][s] for r in rows for s in selected]
            for m in METRICS:
                columns[m] = [r[m][s] for r in rows for s in selected]
        arrays = [a for _, a in batch]
        if self.config.view == "flat":
            columns["weights"] = _flat_column(arrays, per_network)
        else:
            columns["layers"] = _layers_column(arrays, per_network)
        schema = self._features().arrow_schema
        table = pa.Table.from_arrays(
            [c if isinstance(c := columns[f.name], pa.Array) else pa.array(c, f.type) for f in schema], schema=schema
        )
        assert table.num_rows == len(rows) * repeat
        wanted = self.info.features.arrow_schema  # differs only when load_dataset(features=...) was given
        return table if wanted == schema else table_cast(table, wanted)


def _offsets(sizes: list[int] | np.ndarray) -> pa.Array:
    return pa.array(np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int32))


def _flat_column(arrays: list[dict[str, np.ndarray]], per_network: bool) -> pa.Array:
    """Flat vectors: [snapshots, num_params] per network, in reference order within each snapshot.

    ``arrays`` holds each network's tensors restricted to the selected snapshots: name -> [snapshots, *shape].
    """
    n_snap = len(next(iter(arrays[0].values())))
    mats = [np.concatenate([a.reshape(n_snap, -1) for a in net.values()], axis=1) for net in arrays]
    values = pa.array(np.concatenate([m.ravel() for m in mats]))
    vectors = pa.ListArray.from_arrays(_offsets([m.shape[1] for m in mats for _ in range(n_snap)]), values)
    return pa.ListArray.from_arrays(_offsets([n_snap] * len(mats)), vectors) if per_network else vectors


def _layers_column(arrays: list[dict[str, np.ndarray]], per_network: bool) -> pa.Array:
    """Per-tensor structs {name, shape, values}; values [snapshots][size] per network or [size] per snapshot."""
    n_snap = len(next(iter(arrays[0].values())))
    names, shapes, sizes, chunks, per_row = [], [], [], [], []
    for net in arrays:
        tensors = [(name, a.shape[1:], a.reshape(n_snap, -1)) for name, a in net.items()]
        if per_network:  # network -> tensor -> snapshot
            for name, shape, v in tensors:
                names.append(name), shapes.append(list(shape)), sizes.append(v.shape[1]), chunks.append(v.ravel())
            per_row.append(len(tensors))
        else:  # network -> snapshot -> tensor
            for s in range(n_snap):
                for name, shape, v in tensors:
                    names.append(name), shapes.append(list(shape)), sizes.append(v.shape[1]), chunks.append(v[s])
                per_row.append(len(tensors))
    values = pa.array(np.concatenate(chunks))
    if per_network:
        vectors = pa.ListArray.from_arrays(_offsets(np.repeat(sizes, n_snap)), values)
        values_col = pa.ListArray.from_arrays(_offsets([n_snap] * len(sizes)), vectors)
    else:
        values_col = pa.ListArray.from_arrays(_offsets(sizes), values)
    entries = pa.StructArray.from_arrays(
        [pa.array(names, pa.string()), pa.array(shapes, pa.list_(pa.int64())), values_col],
        names=["name", "shape", "values"],
    )
    return pa.ListArray.from_arrays(_offsets(per_row), entries)
