"""The image data sets the zoo networks are trained on, delivered as 32x32x3 uint8 with the reference preprocessing.

Sources: ``mnist``, ``fashion`` (Fashion-MNIST), ``cifar10``, ``svhn``, ``stl10`` and the embedded ``digits``
(scikit-learn's 8x8 digits, no network and no files: the default of the offline quick start). Every source gives
HWC uint8 arrays of shape ``[N, 32, 32, 3]`` and int64 labels in 0..9:

- MNIST and Fashion-MNIST (28x28 grey) are resized to 32x32 with TensorFlow 1's legacy bilinear resize, as the
  original's graph did (``tf.image.resize_images``: no half-pixel centres, ``src = dst * 28 / 32``), rounded to
  uint8 and repeated to 3 channels; CIFAR-10 and SVHN are already 32x32x3; STL-10 (96x96) is downsampled bilinearly with
  ``antialias=True`` (plain bilinear would sample only 4 of every 9 source pixels and alias badly);
- ``digits`` (values 0..16) is scaled to 0..255, upsampled like MNIST and split 80/20, stratified, seed 0.

Where the files come from, in this order: the cache ``<cache_dir>/<name>-v2.npz`` (the suffix is the
preprocessing version: a cache written with other preprocessing is never read); the original files under ``root``
(IDX, CIFAR-10 python batches, SVHN ``.mat``, STL-10 binary); the Hugging Face Hub copy. Whatever was read from
``root`` or the Hub is cached, so the next load is a single ``np.load``.

Example:
    >>> images = load_images("digits")
    >>> images.train_images.shape, images.train_images.dtype, images.origin
    ((1437, 32, 32, 3), dtype('uint8'), 'embedded:sklearn.digits')
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import os
import pickle
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from weightzoo.errors import DataSourceError, MissingExtraError, UnknownNameError
from weightzoo.hparams import DATASETS
from weightzoo.hub import offline_reason
from weightzoo.paths import default_cache_dir

__all__ = [
    "HUB_DATASETS",
    "NUM_CLASSES",
    "SOURCES",
    "ImageSet",
    "cache_file_name",
    "default_cache_dir",
    "load_images",
    "tf1_resize_bilinear",
    "train_pool_start",
]

#: Every data set a network can be trained on (the vocabulary of :mod:`weightzoo.hparams`).
SOURCES: tuple[str, ...] = DATASETS
NUM_CLASSES = 10
_GREY = frozenset({"mnist", "fashion"})
#: TensorFlow's ``read_data_sets`` (``validation_size=5000``) keeps the first 5,000 training images of MNIST and
#: Fashion-MNIST as its own validation set; the original zoo drew its per-network split from the other 55,000.
TF_VALIDATION_SIZE = 5000


def train_pool_start(name: str, num_train: int) -> int:
    """Index of the first training image the original drew from: 5,000 for MNIST and Fashion-MNIST (images
    5,000..59,999, what ``read_data_sets`` calls ``train``), 0 for the others.

    Example:
        >>> train_pool_start("mnist", 60000), train_pool_start("cifar10", 50000)
        (5000, 0)
    """
    return TF_VALIDATION_SIZE if name in _GREY and num_train > TF_VALIDATION_SIZE else 0


_CHUNK = 10_000  # images resized at a time: bounds the float32 working memory to ~40 MB per chunk
#: Version of the preprocessing in cached files (2: TF1 legacy bilinear upsampling); part of the cache file name.
CACHE_VERSION = 2


class _HubSpec(NamedTuple):
    repo: str
    config: str | None
    image: str
    label: str


#: The Hugging Face Hub copy of each downloadable source: (repo id, config, image column, label column).
HUB_DATASETS: dict[str, _HubSpec] = {
    "mnist": _HubSpec("ylecun/mnist", None, "image", "label"),
    "fashion": _HubSpec("zalando-datasets/fashion_mnist", None, "image", "label"),
    "cifar10": _HubSpec("uoft-cs/cifar10", None, "img", "label"),
    "svhn": _HubSpec("ufldl-stanford/svhn", "cropped_digits", "image", "label"),
    "stl10": _HubSpec("tanganke/stl10", None, "image", "label"),
}

_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_CIFAR_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
_SVHN_FILES = ("train_32x32.mat", "test_32x32.mat")
_STL10_FILES = ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin")

#: Per source: the files expected, and the folders under ``root`` searched for them (name-specific ones first, so
#: a root holding several data sets never hands one data set's files to another).
_LAYOUT: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "mnist": (_IDX_FILES, ("mnist", "MNIST/raw", "")),
    "fashion": (_IDX_FILES, ("fashion_mnist", "fashion-mnist", "FashionMNIST/raw", "")),
    "cifar10": (_CIFAR_FILES, ("cifar-10-batches-py", "")),
    "svhn": (_SVHN_FILES, ("svhn", "")),
    "stl10": (_STL10_FILES, ("stl10_binary", "")),
}


@dataclass(frozen=True)
class ImageSet:
    """One image data set: train and test images ``[N, 32, 32, 3]`` uint8 (HWC) and int64 labels in 0..9.

    ``origin`` says where it came from: ``"local:/path"``, ``"hub:uoft-cs/cifar10"``, ``"embedded:sklearn.digits"``
    or ``"cache:/path/name.npz"``. Labels of any integer dtype are stored as int64, arrays as C-contiguous.

    Example:
        >>> x = np.zeros((2, 32, 32, 3), np.uint8)
        >>> ImageSet("toy", x, np.array([0, 1]), x, np.array([1, 0]), origin="test").test_labels.dtype
        dtype('int64')
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    origin: str

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            images, labels = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
            if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.shape[1:] != (32, 32, 3):
                got = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
                raise DataSourceError(f"{self.name} {split} images: expected uint8 [N, 32, 32, 3], got {got}")
            labels = np.asarray(labels)
            if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
                raise DataSourceError(
                    f"{self.name} {split} labels: expected {len(images)} integers, got {labels.dtype} {labels.shape}"
                )
            if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
                raise DataSourceError(
                    f"{self.name} {split} labels outside 0..{NUM_CLASSES - 1}: {labels.min()}..{labels.max()}"
                )
            object.__setattr__(self, f"{split}_images", np.ascontiguousarray(images))
            object.__setattr__(self, f"{split}_labels", np.ascontiguousarray(labels, dtype=np.int64))


def load_images(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    allow_download: bool = True,
) -> ImageSet:
    """Load the image source ``name`` as 32x32x3 uint8 with the reference preprocessing.

    Order: ``<cache_dir>/<name>-v2.npz`` if present; ``digits`` from scikit-learn; the original files under ``root``
    when ``root`` is given (an error if they are not there); else the Hugging Face Hub copy if ``allow_download``.
    What was read from ``root`` or the Hub is written to the cache (a warning, not an error, if that fails).
    ``digits`` is built in memory every time (a fraction of a second) and never cached.

    Example:
        >>> load_images("mnist", "../shared/data").train_images.shape  # doctest: +SKIP
        (60000, 32, 32, 3)
    """
    if name not in SOURCES:
        raise UnknownNameError("dataset", name, SOURCES)
    if name == "digits":
        return _load_digits()
    cache = Path(cache_dir if cache_dir is not None else default_cache_dir()).expanduser() / cache_file_name(name)
    if cache.is_file():
        return _read_cache(name, cache)
    if root is not None:
        images = _load_local(name, Path(root).expanduser())
    elif allow_download:
        images = _load_hub(name)
    else:
        raise DataSourceError(
            f"{name!r} is not in the image cache ({cache}), no image root was given and downloads are disabled; "
            f"pass --image-root (root=...) pointing at the original files, or allow the download"
        )
    _write_cache(images, cache)
    return images


# ---------------------------------------------------------------------------------------------- preprocessing


def cache_file_name(name: str) -> str:
    """The cache file of a source, named with the preprocessing version.

    Example:
        >>> cache_file_name("mnist")
        'mnist-v2.npz'
    """
    return f"{name}-v{CACHE_VERSION}.npz"


def tf1_resize_bilinear(images: torch.Tensor, size: int = 32) -> torch.Tensor:
    """TensorFlow 1's legacy ``resize_bilinear`` (``align_corners=False``, ``half_pixel_centers=False``) of float
    ``[N, C, H, W]``: output pixel ``i`` reads the input at ``i * H / size``, the neighbour beyond the last row or
    column clamped to it.

    Example:
        >>> x = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 2, 4)
        >>> tf1_resize_bilinear(x, 8)[0, 0, 0].tolist()
        [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.0]
    """

    def axis(n_in: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        src = torch.arange(size, dtype=torch.float64) * (n_in / size)
        lo = src.floor().long()
        return lo, (lo + 1).clamp(max=n_in - 1), (src - lo).to(images.dtype)

    _, _, h, w = images.shape
    y0, y1, fy = axis(h)
    x0, x1, fx = axis(w)
    rows = images[:, :, y0] + (images[:, :, y1] - images[:, :, y0]) * fy.view(1, 1, -1, 1)
    return rows[..., x0] + (rows[..., x1] - rows[..., x0]) * fx.view(1, 1, 1, -1)


def _to_32x32x3(images: np.ndarray) -> np.ndarray:
    """Resize uint8 ``[N, H, W]``, ``[N, H, W, 1]`` or ``[N, H, W, 3]`` images to ``[N, 32, 32, 3]`` uint8.

    Upsampling (MNIST's 28x28) with TF1's legacy bilinear resize (:func:`tf1_resize_bilinear`), as the original;
    downsampling (STL-10's 96x96) bilinear with antialiasing. Grey images are repeated to 3 channels after
    resizing. Done ``_CHUNK`` images at a time; 32x32x3 input is returned as is (C-contiguous).

    Example:
        >>> _to_32x32x3(np.full((2, 28, 28), 7, np.uint8)).shape
        (2, 32, 32, 3)
    """
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.dtype != np.uint8:
        raise DataSourceError(f"expected uint8 images [N, H, W(, 1 or 3)], got {images.dtype} {images.shape}")
    n, h, w, c = images.shape
    if (h, w) == (32, 32):
        out = images
    else:
        out = np.empty((n, 32, 32, c), np.uint8)
        for start in range(0, n, _CHUNK):
            x = torch.from_numpy(np.array(images[start : start + _CHUNK])).permute(0, 3, 1, 2).float()
            if h > 32 or w > 32:
                y = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
            else:
                y = tf1_resize_bilinear(x, 32)
            out[start : start + _CHUNK] = y.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return np.ascontiguousarray(np.repeat(out, 3, axis=3) if c == 1 else out)


def _load_digits() -> ImageSet:
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as e:
        raise MissingExtraError("scikit-learn", "builder", "the embedded 'digits' source") from e
    digits = load_digits()
    images = _to_32x32x3(np.round(digits.images * (255.0 / 16.0)).astype(np.uint8))
    labels = digits.target.astype(np.int64)
    train, test = train_test_split(np.arange(len(labels)), test_size=0.2, random_state=0, stratify=labels)
    train, test = np.sort(train), np.sort(test)
    return ImageSet("digits", images[train], labels[train], images[test], labels[test], "embedded:sklearn.digits")


# ---------------------------------------------------------------------------------------------- the cache


def _read_cache(name: str, path: Path) -> ImageSet:
    keys = ("train_images", "train_labels", "test_images", "test_labels")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in keys}
        return ImageSet(name, **arrays, origin=f"cache:{path}")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, DataSourceError) as e:
        raise DataSourceError(
            f"the image cache file {path} is unreadable or corrupt ({type(e).__name__}: {e}); delete it and load again"
        ) from e


def _write_cache(images: ImageSet, path: Path) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # unique per process: parallel workers may race here
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:  # a file object, so np.savez does not append ".npz" to the temporary name
            np.savez(
                f,
                train_images=images.train_images,
                train_labels=images.train_labels,
                test_images=images.test_images,
                test_labels=images.test_labels,
                source=np.array(images.origin),
            )
        os.replace(tmp, path)
    except OSError as e:
        warnings.warn(f"could not write the image cache {path} ({e}); continuing without it", stacklevel=3)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------- original files


def _find_files(name: str, root: Path) -> tuple[Path, dict[str, Path]]:
    """The folder under ``root`` holding every file of ``name`` (IDX files raw or ``.gz``) and their paths."""
    expected, subdirs = _LAYOUT[name]
    tried = []
    for sub in subdirs:
        folder = root / sub if sub else root
        found = {}
        for file in expected:
            for candidate in (folder / file, folder / f"{file}.gz") if name in _GREY else (folder / file,):
                if candidate.is_file():
                    found[file] = candidate
                    break
        if len(found) == len(expected):
            return folder, found
        missing = [f for f in expected if f not in found]
        tried.append(f"  {folder}" + (f" (missing {', '.join(missing)})" if folder.is_dir() else " (no such folder)"))
    gz = " (each optionally .gz)" if name in _GREY else ""
    raise DataSourceError(
        f"the original {name} files are not under the image root {root}; tried:\n"
        + "\n".join(tried)
        + f"\nexpected the files {', '.join(expected)}{gz}"
    )


def _load_local(name: str, root: Path) -> ImageSet:
    folder, files = _find_files(name, root)
    if name in _GREY:
        train_x = _read_idx(files["train-images-idx3-ubyte"], 0x803)
        train_y = _read_idx(files["train-labels-idx1-ubyte"], 0x801)
        test_x = _read_idx(files["t10k-images-idx3-ubyte"], 0x803)
        test_y = _read_idx(files["t10k-labels-idx1-ubyte"], 0x801)
    elif name == "cifar10":
        train_x, train_y = _read_cifar_pickles([files[f"data_batch_{i}"] for i in range(1, 6)])
        test_x, test_y = _read_cifar_pickles([files["test_batch"]])
    elif name == "svhn":
        train_x, train_y = _read_svhn_mat(files["train_32x32.mat"])
        test_x, test_y = _read_svhn_mat(files["test_32x32.mat"])
    else:
        train_x, train_y = _read_stl10(files["train_X.bin"], files["train_y.bin"])
        test_x, test_y = _read_stl10(files["test_X.bin"], files["test_y.bin"])
    if name in _GREY:
        _check_not_swapped(name, train_y, folder)
    for split, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        if len(x) != len(y):
            raise DataSourceError(f"{name} {split} split under {folder}: {len(x)} images but {len(y)} labels")
    return ImageSet(
        name, _to_32x32x3(train_x), train_y.astype(np.int64), _to_32x32x3(test_x), test_y.astype(np.int64),
        f"local:{folder.resolve()}",
    )  # fmt: skip


#: The first ten training labels of the original files: MNIST and Fashion-MNIST share one format and file names.
_FIRST_LABELS = {"mnist": (5, 0, 4, 1, 9, 2, 1, 3, 1, 4), "fashion": (9, 0, 0, 3, 0, 2, 7, 2, 5, 5)}


def _check_not_swapped(name: str, train_labels: np.ndarray, folder: Path) -> None:
    """Refuse Fashion-MNIST files loaded as MNIST (or the reverse), e.g. an image root pointing at the other set."""
    other = "fashion" if name == "mnist" else "mnist"
    if tuple(int(v) for v in train_labels[:10]) == _FIRST_LABELS[other]:
        raise DataSourceError(
            f"the IDX files in {folder} hold {other}, not {name} (their first training labels are {other}'s); "
            f"point --image-root at a folder with a {name} subfolder"
        )


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """An IDX file (raw or gzip): 0x803 images ``[N, H, W]`` or 0x801 labels ``[N]``, uint8, big-endian header."""
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError; a truncated .gz raises EOFError
        raise DataSourceError(f"cannot read the IDX file {path}: {type(e).__name__}: {e}") from e
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    found = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if found != magic:
        raise DataSourceError(
            f"{path} is not an IDX {'image' if ndim == 3 else 'label'} file: magic "
            f"{'missing' if found is None else hex(found)}, expected {magic:#010x}"
        )
    if len(data) < header:
        raise DataSourceError(f"{path} is truncated: {len(data)} bytes, shorter than its {header}-byte header")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "longer than its header says"
        raise DataSourceError(
            f"{path} is {what}: its header says {dims} (expected {expected} bytes), the file has {len(data)} bytes"
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims).copy()  # a writable array, not a bytes view


#: The only globals a CIFAR-10 batch may name: what rebuilds an ndarray. Resolved here, never imported by name.
_PICKLE_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): np.empty(0).__reduce__()[0],  # pickled by numpy < 2 (the originals)
    ("numpy._core.multiarray", "_reconstruct"): np.empty(0).__reduce__()[0],  # pickled by numpy >= 2
    ("numpy.core.numeric", "_frombuffer"): np.empty(0).__reduce_ex__(5)[0],  # protocol 5, numpy < 2
    ("numpy._core.numeric", "_frombuffer"): np.empty(0).__reduce_ex__(5)[0],  # protocol 5, numpy >= 2
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,  # bytes pickled by Python 3 with protocol < 3
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: any other global is refused before it is looked up."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _PICKLE_GLOBALS[(module, name)]
        except KeyError:
            raise DataSourceError(
                f"refused to unpickle the global {module}.{name}: a CIFAR-10 batch holds only numpy arrays"
            ) from None


def _read_cifar_pickles(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 python batches (dicts with ``b"data"`` [N, 3072] channel-major and ``b"labels"``) -> HWC, labels."""
    images, labels = [], []
    for path in paths:
        try:
            with open(path, "rb") as f:
                batch = _NumpyOnlyUnpickler(f, encoding="bytes").load()
            data, batch_labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"])
        except DataSourceError as e:
            raise DataSourceError(f"{path}: {e}") from None
        except Exception as e:  # any malformed pickle: UnpicklingError, EOFError, TypeError, KeyError, ...
            raise DataSourceError(f"{path} is not a CIFAR-10 python batch: {type(e).__name__}: {e}") from e
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or batch_labels.shape != data.shape[:1]:
            raise DataSourceError(
                f"{path}: expected uint8 data [N, 3072] and N labels, got {data.dtype} {data.shape} and "
                f"{batch_labels.shape} labels"
            )
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(batch_labels.astype(np.int64))
    return np.concatenate(images), np.concatenate(labels)


def _read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """An SVHN cropped-digits ``.mat`` file: ``X`` (32, 32, 3, N), ``y`` (N, 1) with 10 for the digit 0."""
    try:
        from scipy.io import loadmat
    except ImportError as e:
        raise MissingExtraError("scipy", "builder", "reading SVHN's .mat files") from e
    try:
        mat = loadmat(path, variable_names=("X", "y"))
        x, y = mat["X"], mat["y"]
    except (ValueError, NotImplementedError, KeyError, TypeError, OSError) as e:  # v7.3 files: NotImplementedError
        raise DataSourceError(f"cannot read the SVHN file {path}: {type(e).__name__}: {e}") from e
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or y.size != x.shape[3]:
        raise DataSourceError(f"{path}: expected X (32, 32, 3, N) and y (N, 1), got X {x.shape} and y {y.shape}")
    y = y.reshape(-1).astype(np.int64)
    return np.ascontiguousarray(x.transpose(3, 0, 1, 2), dtype=np.uint8), np.where(y == 10, 0, y)


def _read_stl10(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """STL-10 binary: uint8 images 3x96x96 each stored column-major (channel, column, row); labels 1..10."""
    data, labels = np.fromfile(images_path, np.uint8), np.fromfile(labels_path, np.uint8)
    if data.size % (3 * 96 * 96):
        raise DataSourceError(f"{images_path}: {data.size} bytes is not a whole number of 3x96x96 images")
    if labels.size and (labels.min() < 1 or labels.max() > 10):
        raise DataSourceError(f"{labels_path}: labels should be 1..10, found {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 96, 96).transpose(0, 3, 2, 1), labels.astype(np.int64) - 1


# ---------------------------------------------------------------------------------------------- Hugging Face Hub


def _load_hub(name: str) -> ImageSet:
    spec = HUB_DATASETS[name]
    reason = offline_reason()
    if reason:  # decided in at most a few seconds, instead of datasets' retries
        raise DataSourceError(
            f"{name!r} is not in the image cache and the Hugging Face Hub ({spec.repo}) is not reachable ({reason}); "
            "pass --image-root pointing at the original files"
        )
    try:
        import datasets

        splits = [datasets.load_dataset(spec.repo, spec.config, split=s) for s in ("train", "test")]
    except Exception as e:  # no network, unknown repo, gated repo, disk full, ...
        config = f", config {spec.config!r}" if spec.config else ""
        raise DataSourceError(
            f"could not load {name!r} from the Hugging Face Hub ({spec.repo}{config}): {type(e).__name__}: {e}\n"
            f"without network access, pass --image-root (root=...) pointing at the original files instead"
        ) from e
    return _hub_to_imageset(name, *splits, origin=f"hub:{spec.repo}")


def _hub_to_imageset(name: str, train: Any, test: Any, origin: str) -> ImageSet:
    """Convert two ``datasets.Dataset`` splits (PIL images or arrays, integer labels) to a preprocessed ImageSet."""
    spec = HUB_DATASETS[name]
    out = []
    for split, ds in (("train", train), ("test", test)):
        missing = {spec.image, spec.label} - set(ds.column_names)
        if missing:
            raise DataSourceError(f"{origin} {split} split has no column {sorted(missing)}; has {ds.column_names}")
        images, labels = [], []
        for batch in ds.iter(batch_size=1000):
            images.extend(_image_array(img, name in _GREY) for img in batch[spec.image])
            labels.extend(batch[spec.label])
        try:
            stacked = np.stack(images) if images else np.zeros((0, 32, 32, 3), np.uint8)
        except ValueError as e:
            raise DataSourceError(f"{origin} {split} split: images of different sizes ({e})") from e
        out += [_to_32x32x3(stacked), np.asarray(labels, np.int64)]
    return ImageSet(name, *out, origin=origin)


def _image_array(image: Any, grey: bool) -> np.ndarray:
    """One decoded image (PIL image or array) as uint8 ``[H, W, 1]`` if ``grey`` else ``[H, W, 3]``."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        image = Image.fromarray(np.asarray(image).squeeze().astype(np.uint8))
    if image.mode.startswith("I") or image.mode == "F":  # 16/32-bit grey, e.g. arrays stored without a dtype
        array = np.clip(np.asarray(image), 0, 255).astype(np.uint8)
        array = array[..., None] if grey else np.repeat(array[..., None], 3, axis=2)
    else:
        array = np.asarray(image.convert("L" if grey else "RGB"))
        array = array[..., None] if grey else array
    return array
