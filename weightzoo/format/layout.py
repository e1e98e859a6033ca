"""The on-disk layout of a zoo, defined once: file names, tensor names, format version.

A zoo is a folder (local or any fsspec URL)::

    <zoo>/
      manifest.json                 versioned manifest: counts, generation config, sha256 of every file
      index.parquet                 one row per network: hyper-parameters, metrics, status, shard and byte range
      README.md                     dataset card
      shards/train-00000.safetensors  many networks per shard, size-capped
      shards/test-00000.safetensors

Inside a shard, network ``i``'s tensor ``conv0.weight`` of shape ``[8, 3, 5, 5]`` is stored as
``0000042.000.conv0.weight`` with shape ``[20, 8, 3, 5, 5]`` (float32, one slice per snapshot). The zero-padded
network id comes first and the three-digit position gives the reference order, so safetensors' sorted layout
keeps a network's tensors contiguous and in flat-vector order: one network is one byte range.

Example:
    >>> tensor_name(42, 0, "conv0.weight")
    '0000042.000.conv0.weight'
    >>> parse_tensor_name('0000042.000.conv0.weight')
    (42, 0, 'conv0.weight')
"""

from __future__ import annotations

from weightzoo.errors import ZooFormatError

FORMAT_VERSION = 1
#: The format of a converted zoo of another family (:mod:`weightzoo.families`): its manifest declares the
#: architecture, the snapshot count and its own index columns. NWS zoos keep :data:`FORMAT_VERSION`.
DECLARED_FORMAT_VERSION = 2
#: Format versions this release reads.
READABLE_VERSIONS: tuple[int, ...] = (FORMAT_VERSION, DECLARED_FORMAT_VERSION)
MANIFEST_NAME = "manifest.json"
INDEX_NAME = "index.parquet"
CARD_NAME = "README.md"
#: How and where a zoo was made (time, host, paths, executor, seconds per network): kept beside the zoo, outside
#: the manifest's checksums, so that the same command writes the same bytes on any run.
PROVENANCE_NAME = "provenance.json"
SHARD_DIR = "shards"
SHARD_SUFFIX = ".safetensors"
PARTIAL_SUFFIX = ".partial"
#: Folder of an unfinished zoo holding, per written shard, its file entry and index rows (for ``--resume``);
#: removed once the manifest is written.
PROGRESS_DIR = ".progress"
NUM_SNAPSHOTS = 20
#: Bound on the snapshots per network a converted zoo may declare (Model Zoos: 51; the Small CNN Zoo: 9).
MAX_SNAPSHOTS = 1000
SPLITS: tuple[str, ...] = ("train", "test")
#: Training outcome of a network. ``diverged`` networks (NaN loss) are kept, with the snapshots taken so far.
STATUSES: tuple[str, ...] = ("completed", "early_stopped", "diverged")
#: Metrics recorded per epoch and per snapshot (accuracies in [0, 1], mean cross-entropy losses).
METRICS: tuple[str, ...] = (
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "test_loss",
    "test_accuracy",
)
DEFAULT_SHARD_BYTES = 256 * 2**20
#: How a zoo's shards may store the weights (the manifest's ``dtype``): float32 (every zoo the generator writes)
#: and float64 (``python -m builder.convert_nws --float64`` keeps the released zoo's float64 values exactly).
STORAGE_DTYPES: tuple[str, ...] = ("float32", "float64")


def shard_name(split: str, number: int) -> str:
    """Relative path of a shard file."""
    return f"{SHARD_DIR}/{split}-{number:05d}{SHARD_SUFFIX}"


def parse_shard_name(path: str) -> tuple[str, int]:
    """Inverse of :func:`shard_name`: (split, number).

    Example:
        >>> parse_shard_name("shards/test-00012.safetensors")
        ('test', 12)
    """
    stem = path.rsplit("/", 1)[-1]
    if not stem.endswith(SHARD_SUFFIX):
        raise ZooFormatError(f"{path!r} is not a shard name; expected {shard_name('<split>', 0)}")
    split, _, number = stem[: -len(SHARD_SUFFIX)].rpartition("-")
    if not split or not number.isdigit():
        raise ZooFormatError(f"{path!r} is not a shard name; expected {shard_name('<split>', 0)}")
    return split, int(number)


def tensor_name(network_id: int, position: int, param: str) -> str:
    """Name of one network's tensor inside a shard."""
    return f"{network_id:07d}.{position:03d}.{param}"


def parse_tensor_name(name: str) -> tuple[int, int, str]:
    """Inverse of :func:`tensor_name`: (network id, position, parameter name)."""
    try:
        net, pos, param = name.split(".", 2)
        return int(net), int(pos), param
    except ValueError:
        raise ZooFormatError(
            f"tensor name {name!r} is not '<network id>.<position>.<parameter>' (e.g. '0000042.000.conv0.weight')"
        ) from None


def parse_snapshots(value: object, count: int = NUM_SNAPSHOTS) -> tuple[int, ...]:
    """A snapshot selection as a sorted tuple of snapshot numbers (1 = initialisation ... ``count`` = last; an NWS
    zoo has 20, a converted zoo its manifest's ``num_snapshots``).

    Accepts None (all), an int, a list / tuple / range / array, or a string like ``"11..20"``, ``"1,10-11"``.

    Example:
        >>> parse_snapshots("11..20") == tuple(range(11, 21)), parse_snapshots(20), parse_snapshots("1,10-11")
        (True, (20,), (1, 10, 11))
    """
    import re

    import numpy as np

    from weightzoo.errors import ConfigError

    if value is None:
        return tuple(range(1, count + 1))
    items: list[object]
    if isinstance(value, str):
        items = []
        for part in filter(None, (p.strip() for p in value.split(","))):
            m = re.fullmatch(r"(\d+)\s*(?:\.\.|-|:)\s*(\d+)", part)
            items += list(range(int(m[1]), int(m[2]) + 1)) if m else [part]
    elif isinstance(value, (list, tuple, range, np.ndarray)):
        items = list(value)
    else:
        items = [value]
    valid = all(not isinstance(v, (bool, np.bool_)) and str(v).isdigit() for v in items)
    numbers = sorted({int(str(v)) for v in items}) if valid else []
    if not numbers or not 1 <= numbers[0] <= numbers[-1] <= count:
        raise ConfigError(
            f"snapshots={value!r}; expected snapshot numbers from 1 (initialisation) to {count} (last "
            "epoch): an int, a list, a range, or a string like '11..20' or '1,10,20'"
        )
    return tuple(numbers)
