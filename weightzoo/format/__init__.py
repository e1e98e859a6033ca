"""The on-disk zoo format: layout constants, manifest, index, shards, writer. Reading is :mod:`weightzoo.zoo`."""

from weightzoo.format.index import INDEX_SCHEMA, NetworkRecord
from weightzoo.format.layout import FORMAT_VERSION, METRICS, NUM_SNAPSHOTS, SPLITS, STATUSES
from weightzoo.format.manifest import FileEntry, Manifest
from weightzoo.format.writer import ZooWriter

__all__ = [
    "FORMAT_VERSION",
    "INDEX_SCHEMA",
    "METRICS",
    "NUM_SNAPSHOTS",
    "SPLITS",
    "STATUSES",
    "FileEntry",
    "Manifest",
    "NetworkRecord",
    "ZooWriter",
]
