"""Reading the NWS zoo as its authors released it (Eilertsen et al., ECAI 2020): split CSVs, network folders and
their headerless float64 files. :mod:`builder.convert_nws` turns it into a weightzoo zoo.

The release (``../shared/nws-reference.md``, "Released file format"; the authors' ``classifier.py`` and
``util.import_weights``)::

    nws_fixed_train.csv  nws_fixed_test.csv  nws_main_train.csv  nws_main_test.csv
        columns dataset, lrate, batch_size, batch_norm, augmentation, optimizer, activation, initialization,
        filter_size, depth_conv, depth_fc, width_conv, width_fc, weightn_conv, weightn_fc, path
    <network folder>/weights/001.bin ... 020.bin   the 20 kept exports, float64 flat vectors
    <network folder>/error.bin   float64 [n_exports, 5]: step, train, valid, test error %, smoothed valid error %
    <network folder>/stat.bin    float64 (n_exports, steps, epochs, seconds)
    <network folder>/meta.csv    the hyper-parameters again (not read: the split CSVs hold them)

``path`` is the authors' absolute path on their machine: :func:`resolve_folder` finds the folder under the
release by the longest trailing part of it that exists.

Example:
    >>> parse_code("optimizer", "1", "nws_main_train.csv row 3")
    'rmsprop'
    >>> parse_code("dataset", "Fashion-MNIST", "nws_main_train.csv row 3")
    'fashion'
"""

from __future__ import annotations

import csv
import glob
import hashlib
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from weightzoo.errors import ReleaseError, WeightZooError
from weightzoo.format.layout import NUM_SNAPSHOTS
from weightzoo.hparams import ACTIVATIONS, DATASETS, INITIALIZATIONS, OPTIMIZERS, REFERENCE_ORDER, HyperParameters

SUBSETS: tuple[str, ...] = ("fixed", "main")
RELEASE_SPLITS: tuple[str, ...] = ("train", "test")
#: Columns of the split files: the hyper-parameters in the reference's order (``lrate`` for the learning rate),
#: then the conv/dense boundary, the dense count and the network's folder.
CSV_COLUMNS: tuple[str, ...] = (
    *("lrate" if name == "learning_rate" else name for name in REFERENCE_ORDER),
    "weightn_conv",
    "weightn_fc",
    "path",
)
#: Integer codes of the split files, in the order of the authors' ``classifier.py`` (``Rdata``, ``Ropt``, ``Ract``,
#: ``Ritype``), which is this package's vocabulary order (:mod:`weightzoo.hparams`).
CODES: dict[str, tuple[str, ...]] = {
    "dataset": tuple(d for d in DATASETS if d != "digits"),  # mnist, cifar10, svhn, stl10, fashion
    "optimizer": OPTIMIZERS,  # 0 Adam, 1 RMSprop, 2 SGD with momentum
    "activation": ACTIVATIONS,  # 0 ReLU, 1 ELU, 2 sigmoid, 3 tanh
    "initialization": INITIALIZATIONS,  # 0 constant, 1 normal, 2 Glorot uniform, 3 Glorot normal
}
#: Other spellings accepted (lower case, as written in papers and other loaders).
ALIASES: dict[str, str] = {
    "fashion_mnist": "fashion",
    "fashion-mnist": "fashion",
    "fashionmnist": "fashion",
    "cifar-10": "cifar10",
    "cifar_10": "cifar10",
    "stl-10": "stl10",
    "stl_10": "stl10",
    "momentum": "sgd_momentum",
    "sgd-momentum": "sgd_momentum",
    "glorot-uniform": "glorot_uniform",
    "glorot-normal": "glorot_normal",
}
_BOOLS = {"true": True, "1": True, "1.0": True, "false": False, "0": False, "0.0": False}


def split_file(subset: str, split: str) -> str:
    """The name of a released split file, e.g. ``nws_fixed_train.csv``."""
    return f"nws_{subset}_{split}.csv"


def snapshot_file(snapshot: int) -> str:
    """A kept export's file inside a network folder (snapshot 1 = the initialisation ... 20)."""
    return f"weights/{snapshot:03d}.bin"


@dataclass(frozen=True)
class ReleaseNetwork:
    """One row of a released split file, parsed; ``folder`` is where it was found under the release (or None)."""

    network_id: int
    subset: str
    split: str
    csv: str
    row: int  # 1-based data row (line row + 1 of the file)
    path: str  # as written in the CSV
    hparams: HyperParameters
    weightn_conv: int
    weightn_fc: int
    folder: str | None

    @property
    def where(self) -> str:
        return f"{self.csv} row {self.row} ({self.folder or self.path})"


def find_split_csv(release_dir: str, name: str) -> str | None:
    """``name`` in the release folder, or one or two folder levels below it; None when absent."""
    for pattern in (name, os.path.join("*", name), os.path.join("*", "*", name)):
        hits = sorted(glob.glob(os.path.join(glob.escape(release_dir), pattern)))
        if hits:
            return hits[0]
    return None


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(2**20):
            digest.update(block)
    return digest.hexdigest()


def resolve_folder(release_dir: str, path: str) -> str | None:
    """The folder under ``release_dir`` that the authors' ``path`` names: the longest trailing part of ``path``
    (``/home/gabei62/nws/data/nws_main/0042`` -> ``nws/data/nws_main/0042``, ..., ``0042``) that is a folder
    there; None when no trailing part is.

    Example:
        >>> resolve_folder("/nonexistent", "/home/gabei62/nws/data/0042") is None
        True
    """
    parts = [p for p in path.strip().replace("\\", "/").split("/") if p and p != "."]
    for k in range(len(parts)):
        if ".." in parts[k:]:
            continue
        candidate = os.path.join(release_dir, *parts[k:])
        if os.path.isdir(candidate):
            return candidate
    return None


def linked_part(release_dir: str, folder: str) -> str | None:
    """The first part of ``folder`` below ``release_dir`` that is a symbolic link (the folder itself or a folder
    between), or a file of it that is one; None when there is none (a link above ``release_dir`` is the user's
    choice of where the release lives, and is followed).

    Example:
        >>> linked_part("/nonexistent", "/nonexistent/nws_main/0042") is None
        True
    """
    rel = os.path.relpath(folder, release_dir)
    path = release_dir
    for part in rel.split(os.sep):
        path = os.path.join(path, part)
        if os.path.islink(path):
            return path
    for dirpath, dirnames, filenames in os.walk(folder):  # links are listed, never followed
        for name in sorted(dirnames + filenames):
            if os.path.islink(os.path.join(dirpath, name)):
                return os.path.join(dirpath, name)
    return None


def parse_code(column: str, value: str, where: str) -> str:
    """A categorical value of the split files, as an integer code (``"1"``, ``"1.0"``) or a name (the authors'
    spelling, this package's, or an alias), mapped to this package's name.

    Raises :class:`ReleaseError` naming the value and the row when it is neither.
    """
    names = CODES[column]
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None:
        if number.is_integer() and 0 <= number < len(names):
            return names[int(number)]
    else:
        name = ALIASES.get(text.lower(), text.lower())
        if name in names:
            return name
    codes = ", ".join(f"{i} {n}" for i, n in enumerate(names))
    raise ReleaseError(f"{where}: {column} {value!r} is not one of the release's codes ({codes})")


def _number(column: str, value: str, where: str, kind: type) -> Any:
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        raise ReleaseError(f"{where}: {column} {value!r} is not a number") from None
    if kind is int:
        if not number.is_integer():
            raise ReleaseError(f"{where}: {column} {value!r} is not an integer")
        return int(number)
    return number


def parse_row(row: dict[str, str], where: str) -> tuple[HyperParameters, int, int]:
    """The hyper-parameters and (weightn_conv, weightn_fc) of one split-file row; :class:`ReleaseError` naming
    the row and the value on anything unknown, and when the sizes disagree with the row's architecture."""
    flag = {}
    for column in ("batch_norm", "augmentation"):
        value = row[column].strip().lower()
        if value not in _BOOLS:
            raise ReleaseError(f"{where}: {column} {row[column]!r}; expected True / False or 1 / 0")
        flag[column] = _BOOLS[value]
    try:
        hp = HyperParameters(
            dataset=parse_code("dataset", row["dataset"], where),
            learning_rate=_number("lrate", row["lrate"], where, float),
            batch_size=_number("batch_size", row["batch_size"], where, int),
            augmentation=flag["augmentation"],
            batch_norm=flag["batch_norm"],
            optimizer=parse_code("optimizer", row["optimizer"], where),
            activation=parse_code("activation", row["activation"], where),
            initialization=parse_code("initialization", row["initialization"], where),
            **{c: _number(c, row[c], where, int) for c in ("filter_size", "depth_conv", "depth_fc")},
            **{c: _number(c, row[c], where, int) for c in ("width_conv", "width_fc")},
        )
    except ReleaseError:
        raise
    except WeightZooError as e:  # an architecture or batch size outside the reference's options
        raise ReleaseError(f"{where}: {e}") from None
    conv, fc = (_number(c, row[c], where, int) for c in ("weightn_conv", "weightn_fc"))
    arch = hp.architecture
    if (conv, fc) != (arch.weightn_conv, arch.weightn_fc):
        raise ReleaseError(
            f"{where}: weightn_conv {conv} and weightn_fc {fc}, but the architecture of the row ({arch}) has "
            f"{arch.weightn_conv} conv and {arch.weightn_fc} dense values ({arch.num_params} in all)"
        )
    return hp, conv, fc


def read_split_csv(path: str) -> list[dict[str, str]]:
    """The rows of a split file; :class:`ReleaseError` when its columns are not the release's."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in CSV_COLUMNS if c not in columns]
        if missing:
            raise ReleaseError(
                f"{path}: columns {columns}; the release's split files have {list(CSV_COLUMNS)} (missing {missing})"
            )
        return [{k.strip(): (v or "") for k, v in row.items() if k is not None} for row in reader]


def check_files(net: ReleaseNetwork) -> tuple[list[str], list[str]]:
    """(missing, wrong) problems of a found network folder: missing snapshot, error or stat files, and files
    whose size is not that of ``weightn_conv + weightn_fc`` float64 values (or whole rows of error.bin)."""
    assert net.folder is not None
    missing, wrong = [], []
    expected = net.weightn_conv + net.weightn_fc
    for s in range(1, NUM_SNAPSHOTS + 1):
        path = os.path.join(net.folder, snapshot_file(s))
        if not os.path.isfile(path):
            missing.append(f"{net.folder}: snapshot file {snapshot_file(s)} is missing ({net.csv} row {net.row})")
            continue
        size = os.path.getsize(path)
        if size != 8 * expected:
            wrong.append(
                f"{net.folder}: {snapshot_file(s)} holds {size / 8:g} float64 values, expected weightn_conv + "
                f"weightn_fc = {expected} (the architecture's parameter count; {net.csv} row {net.row})"
            )
    for name, row_bytes in (("error.bin", 5 * 8), ("stat.bin", 4 * 8)):
        path = os.path.join(net.folder, name)
        if not os.path.isfile(path):
            missing.append(f"{net.folder}: {name} is missing ({net.csv} row {net.row})")
        elif (
            os.path.getsize(path) == 0
            or os.path.getsize(path) % row_bytes
            or (name == "stat.bin" and os.path.getsize(path) != row_bytes)
        ):
            wrong.append(f"{net.folder}: {name} has {os.path.getsize(path)} bytes, not float64 rows of {row_bytes}")
    return missing, wrong


@dataclass
class NetworkFiles:
    """What one network folder holds: the 20 kept exports as a [20, num_params] array, error.bin and stat.bin."""

    vectors: np.ndarray
    errors: np.ndarray  # [n_exports, 5]: step, train, valid, test error %, smoothed valid error %
    stat: np.ndarray  # (n_exports, steps, epochs, seconds)


def read_network_files(net: ReleaseNetwork, dtype: str = "float32") -> NetworkFiles:
    """Read one network folder, the exports cast to ``dtype``; :class:`ReleaseError` naming the folder when a
    file is missing or its length is wrong, or when error.bin and stat.bin disagree on the number of exports."""
    assert net.folder is not None
    expected = net.weightn_conv + net.weightn_fc
    vectors = np.empty((NUM_SNAPSHOTS, expected), dtype=dtype)
    for s in range(1, NUM_SNAPSHOTS + 1):
        path = os.path.join(net.folder, snapshot_file(s))
        try:
            values = np.fromfile(path, dtype="<f8")
        except FileNotFoundError:
            raise ReleaseError(f"{net.folder}: snapshot file {snapshot_file(s)} is missing ({net.where})") from None
        if values.size != expected:
            raise ReleaseError(
                f"{net.folder}: {snapshot_file(s)} holds {values.size} values, expected weightn_conv + weightn_fc "
                f"= {expected} ({net.where})"
            )
        vectors[s - 1] = values
    try:
        errors = np.fromfile(os.path.join(net.folder, "error.bin"), dtype="<f8")
        stat = np.fromfile(os.path.join(net.folder, "stat.bin"), dtype="<f8")
    except FileNotFoundError as e:
        raise ReleaseError(f"{net.folder}: {os.path.basename(str(e.filename))} is missing ({net.where})") from None
    if errors.size == 0 or errors.size % 5 or stat.size != 4:
        raise ReleaseError(
            f"{net.folder}: error.bin holds {errors.size} values (expected rows of 5) and stat.bin {stat.size} "
            f"(expected 4) ({net.where})"
        )
    errors = errors.reshape(-1, 5)
    if not np.isfinite(stat[0]) or int(stat[0]) != errors.shape[0]:
        raise ReleaseError(
            f"{net.folder}: stat.bin says {stat[0]:g} exports, error.bin has {errors.shape[0]} rows ({net.where})"
        )
    return NetworkFiles(vectors, errors, stat)
