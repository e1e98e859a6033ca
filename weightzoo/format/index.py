"""The parquet index of a zoo: one row per network, typed by an explicit Arrow schema.

A row holds the network's id and split, every hyper-parameter, its architecture sizes, its training outcome
(status, epochs, per-snapshot and per-epoch metrics), and where its weights are (shard, byte range, sha256).

Example:
    >>> [f.name for f in INDEX_SCHEMA][:4]
    ['network_id', 'split', 'status', 'zoo_seed']
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from weightzoo.errors import ZooFormatError
from weightzoo.format.layout import METRICS, NUM_SNAPSHOTS, SPLITS, STATUSES
from weightzoo.hparams import HyperParameters, field_types

_ARROW_TYPES: dict[type, pa.DataType] = {str: pa.string(), float: pa.float64(), int: pa.int64(), bool: pa.bool_()}
#: The index's hyper-parameter columns, derived from :class:`~weightzoo.hparams.HyperParameters` in the reference's
#: column order.
_HPARAM_TYPES: dict[str, pa.DataType] = {name: _ARROW_TYPES[t] for name, t in field_types().items()}
HPARAM_COLUMNS: tuple[str, ...] = tuple(_HPARAM_TYPES)

INDEX_SCHEMA = pa.schema(
    [
        pa.field("network_id", pa.int64()),
        pa.field("split", pa.string()),
        pa.field("status", pa.string()),
        pa.field("zoo_seed", pa.int64()),
        *(pa.field(n, t) for n, t in _HPARAM_TYPES.items()),
        pa.field("num_params", pa.int64()),
        pa.field("weightn_conv", pa.int64()),
        pa.field("weightn_fc", pa.int64()),
        pa.field("n_epochs", pa.int64()),
        pa.field("snapshot_epochs", pa.list_(pa.int64(), NUM_SNAPSHOTS)),
        *(pa.field(m, pa.list_(pa.float64(), NUM_SNAPSHOTS)) for m in METRICS),
        *(pa.field(f"history_{m}", pa.list_(pa.float64())) for m in METRICS),
        pa.field("final_test_accuracy", pa.float64()),
        pa.field("images_seen", pa.int64()),
        pa.field("device", pa.string()),
        pa.field("shard", pa.string()),
        pa.field("byte_offset", pa.int64()),
        pa.field("byte_length", pa.int64()),
        pa.field("sha256", pa.string()),
    ],
    metadata={"description": "weightzoo network index: one row per network"},
)


@dataclass
class NetworkRecord:
    """Everything the index holds about one network except where its bytes are (the writer adds that).

    ``snapshot_metrics`` maps each metric to its 20 per-snapshot values (the index's ``train_loss`` ...
    ``test_accuracy`` columns); ``history`` maps each metric to its values per
    epoch, epoch 0 (the initialisation) first.
    """

    network_id: int
    split: str
    status: str
    zoo_seed: int
    hparams: HyperParameters
    n_epochs: int
    snapshot_epochs: list[int]
    snapshot_metrics: dict[str, list[float]]
    history: dict[str, list[float]]
    #: Wall-clock seconds: not in the index (it would change the index bytes from run to run), but in the zoo's
    #: ``provenance.json``.
    train_seconds: float = 0.0
    images_seen: int = 0
    device: str = "cpu"
    location: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ZooFormatError(f"network {self.network_id}: split {self.split!r}, expected one of {SPLITS}")
        if self.status not in STATUSES:
            raise ZooFormatError(f"network {self.network_id}: status {self.status!r}, expected one of {STATUSES}")
        if len(self.snapshot_epochs) != NUM_SNAPSHOTS:
            raise ZooFormatError(
                f"network {self.network_id}: {len(self.snapshot_epochs)} snapshot epochs, expected {NUM_SNAPSHOTS}"
            )

    @classmethod
    def from_row(cls, row: dict[str, Any], train_seconds: float = 0.0) -> NetworkRecord:
        """The record an index row was made from (its location dropped): to write a network into another zoo.

        Example:
            >>> rec = NetworkRecord.from_row(row)  # doctest: +SKIP
        """
        return cls(
            network_id=int(row["network_id"]),
            split=row["split"],
            status=row["status"],
            zoo_seed=int(row["zoo_seed"]),
            hparams=HyperParameters.from_dict(row),
            n_epochs=int(row["n_epochs"]),
            snapshot_epochs=[int(e) for e in row["snapshot_epochs"]],
            snapshot_metrics={m: list(row[m]) for m in METRICS},
            history={m: list(row[f"history_{m}"]) for m in METRICS},
            train_seconds=train_seconds,
            images_seen=int(row["images_seen"]),
            device=row["device"],
        )

    def to_row(self) -> dict[str, Any]:
        arch = self.hparams.architecture
        row: dict[str, Any] = {
            "network_id": self.network_id,
            "split": self.split,
            "status": self.status,
            "zoo_seed": self.zoo_seed,
            **self.hparams.to_dict(),
            "num_params": arch.num_params,
            "weightn_conv": arch.weightn_conv,
            "weightn_fc": arch.weightn_fc,
            "n_epochs": self.n_epochs,
            "snapshot_epochs": list(self.snapshot_epochs),
            "final_test_accuracy": self.snapshot_metrics["test_accuracy"][-1],
            "images_seen": self.images_seen,
            "device": self.device,
            **self.location,
        }
        for m in METRICS:
            row[m] = [float(v) for v in self.snapshot_metrics[m]]
            row[f"history_{m}"] = [float(v) for v in self.history[m]]
        return row


#: Types a converted zoo may declare for its own columns (``manifest.columns``): name -> Arrow type.
COLUMN_TYPES: dict[str, pa.DataType] = {"string": pa.string(), "float64": pa.float64(), "int64": pa.int64(),
                                        "bool": pa.bool_()}  # fmt: skip
#: Bound on the number of columns a converted zoo may declare.
MAX_COLUMNS = 256


def declared_schema(num_snapshots: int, columns: dict[str, str]) -> pa.Schema:
    """The index schema of a converted zoo of another family: the core columns every reader relies on (id,
    split, status, sizes, per-snapshot epochs and metrics, where the bytes are), with the zoo's own columns
    (its hyper-parameters and source identifiers, ``manifest.columns``) after the status.

    Example:
        >>> schema = declared_schema(9, {"activation": "string", "learning_rate": "float64"})
        >>> schema.names[:5], schema.field("test_accuracy").type.list_size
        (['network_id', 'split', 'status', 'activation', 'learning_rate'], 9)
    """
    return pa.schema(
        [
            pa.field("network_id", pa.int64()),
            pa.field("split", pa.string()),
            pa.field("status", pa.string()),
            *(pa.field(n, COLUMN_TYPES[t]) for n, t in columns.items()),
            pa.field("num_params", pa.int64()),
            pa.field("weightn_conv", pa.int64()),
            pa.field("weightn_fc", pa.int64()),
            pa.field("n_epochs", pa.int64()),
            pa.field("snapshot_epochs", pa.list_(pa.int64(), num_snapshots)),
            *(pa.field(m, pa.list_(pa.float64(), num_snapshots)) for m in METRICS),
            pa.field("final_test_accuracy", pa.float64()),
            *LOCATION_FIELDS,
        ],
        metadata={"description": "weightzoo network index (converted zoo): one row per network"},
    )


#: Where a network's bytes are: the last columns of every index.
LOCATION_FIELDS: tuple[pa.Field, ...] = tuple(INDEX_SCHEMA.field(n) for n in ("shard", "byte_offset", "byte_length",
                                                                             "sha256"))  # fmt: skip
#: Columns a converted zoo's own columns may not be named (the core columns).
CORE_COLUMNS: frozenset[str] = frozenset(declared_schema(1, {}).names)


@dataclass
class ConvertedRecord:
    """One network of a converted zoo of another family (its index row but where its bytes are).

    ``columns``: the zoo's own columns (as the manifest declares them); ``snapshot_epochs`` the epoch of each
    snapshot (-1 where the source has no checkpoint: the metrics are NaN and the weights NaN there);
    ``snapshot_metrics``: each metric of :data:`~weightzoo.format.layout.METRICS` per snapshot (NaN where the
    source has none, e.g. validation metrics).
    """

    network_id: int
    split: str
    status: str
    columns: dict[str, Any]
    n_epochs: int
    snapshot_epochs: list[int]
    snapshot_metrics: dict[str, list[float]]
    num_params: int
    weightn_conv: int
    train_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ZooFormatError(f"network {self.network_id}: split {self.split!r}, expected one of {SPLITS}")
        if self.status not in STATUSES:
            raise ZooFormatError(f"network {self.network_id}: status {self.status!r}, expected one of {STATUSES}")

    def to_row(self) -> dict[str, Any]:
        finals = [v for v, e in zip(self.snapshot_metrics["test_accuracy"], self.snapshot_epochs, strict=True)
                  if e >= 0]  # fmt: skip
        return {
            "network_id": self.network_id,
            "split": self.split,
            "status": self.status,
            **self.columns,
            "num_params": self.num_params,
            "weightn_conv": self.weightn_conv,
            "weightn_fc": self.num_params - self.weightn_conv,
            "n_epochs": self.n_epochs,
            "snapshot_epochs": list(self.snapshot_epochs),
            **{m: [float(v) for v in self.snapshot_metrics[m]] for m in METRICS},
            "final_test_accuracy": float(finals[-1]) if finals else float("nan"),
        }


def rows_to_table(rows: list[dict[str, Any]], schema: pa.Schema = INDEX_SCHEMA) -> pa.Table:
    """An index table with ``schema`` (:data:`INDEX_SCHEMA`, or a converted zoo's :func:`declared_schema`), rows
    sorted by network id."""
    rows = sorted(rows, key=lambda r: r["network_id"])
    try:
        return pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, KeyError) as e:
        raise ZooFormatError(f"index rows do not match the index schema: {e}") from None


def table_to_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def read_index(data: bytes, source: str, schema: pa.Schema = INDEX_SCHEMA) -> pa.Table:
    """Parse an index file and check it against ``schema`` (the manifest's :attr:`~weightzoo.format.manifest.
    Manifest.index_schema`); ``source`` is named in errors."""
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowInvalid, OSError) as e:
        raise ZooFormatError(f"{source}: not a readable parquet file ({e})") from None
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise ZooFormatError(f"{source}: index lacks columns {missing}; expected the weightzoo index schema")
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise ZooFormatError(f"{source}: index columns have unexpected types ({e})") from None
