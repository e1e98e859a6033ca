"""Image sources: small files in each real on-disk format, orientation, resize, cache, errors, and the real MNIST."""

from __future__ import annotations

import gzip
import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from builder.engine import sources
from builder.engine.sources import (
    NUM_CLASSES,
    SOURCES,
    ImageSet,
    cache_file_name,
    default_cache_dir,
    load_images,
    tf1_resize_bilinear,
)
from weightzoo.errors import DataSourceError, UnknownNameError

SHARED_DATA = Path(os.environ.get("WEIGHTZOO_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


# ------------------------------------------------------------------------------------------- writers of real formats


def write_idx(path: Path, array: np.ndarray, *, gz: bool) -> Path:
    """An IDX file exactly as the originals: big-endian magic 0x0000080<ndim>, big-endian dims, raw uint8."""
    header = (0x800 + array.ndim).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + np.ascontiguousarray(array, np.uint8).tobytes()
    path = path.with_name(path.name + ".gz") if gz else path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def grey_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """28x28 images, each constant at a known value except one bright pixel at (row 3, col 20); labels i % 10."""
    x = np.empty((n, 28, 28), np.uint8)
    x[:] = (np.arange(n, dtype=np.uint8) * 7 + seed)[:, None, None]
    x[:, 3, 20] = 255
    return x, (np.arange(n) % 10).astype(np.uint8)


def write_mnist(folder: Path, *, gz: bool, n_train: int = 12, n_test: int = 7) -> dict[str, np.ndarray]:
    (a, b), (c, d) = grey_images(n_train, 1), grey_images(n_test, 2)
    for stem, arr in zip(sources._IDX_FILES, (a, b, c, d), strict=True):
        write_idx(folder / stem, arr, gz=gz)
    return {"train_x": a, "train_y": b, "test_x": c, "test_y": d}


def colour_images(n: int, seed: int, size: int = 32) -> np.ndarray:
    """HWC images with distinct channels (R=10+i, G=100, B=200) and a marker pixel (row 2, col 29*size/32) = 255."""
    x = np.zeros((n, size, size, 3), np.uint8)
    x[..., 0] = (10 + np.arange(n) + seed)[:, None, None]
    x[..., 1], x[..., 2] = 100, 200
    x[:, 2, size * 29 // 32, :] = 255
    return x


def write_cifar(folder: Path, *, n: int = 4, protocol: int = 2, legacy_numpy_name: bool = True) -> None:
    """CIFAR-10 python batches: dicts with bytes keys, b"data" [N, 3072] channel-major, b"labels" a list."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, stem in enumerate(sources._CIFAR_FILES):
        x = colour_images(n, seed=10 * i)
        batch = {
            b"batch_label": f"batch {i}".encode(),
            b"labels": [(i + j) % 10 for j in range(n)],
            b"data": x.transpose(0, 3, 1, 2).reshape(n, 3072).copy(),
            b"filenames": [f"img_{j}.png".encode() for j in range(n)],
        }
        data = pickle.dumps(batch, protocol=protocol)
        if legacy_numpy_name:  # the originals were written by numpy 1.x: GLOBAL 'numpy.core.multiarray _reconstruct'
            assert protocol <= 3
            data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
        (folder / stem).write_bytes(data)


def write_svhn(folder: Path, n_train: int = 5, n_test: int = 3) -> None:
    from scipy.io import savemat

    folder.mkdir(parents=True, exist_ok=True)
    for stem, n in (("train_32x32.mat", n_train), ("test_32x32.mat", n_test)):
        x = colour_images(n, seed=0)
        y = (np.arange(n) % 10).astype(np.uint8)
        y[y == 0] = 10  # SVHN: the digit 0 has the label 10
        savemat(folder / stem, {"X": x.transpose(1, 2, 3, 0), "y": y[:, None]})  # X (32, 32, 3, N), y (N, 1)


def write_stl10(folder: Path, n_train: int = 3, n_test: int = 2) -> dict[str, np.ndarray]:
    """STL-10 binary: each image 3x96x96 in (channel, column, row) order; labels 1..10 as uint8."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = np.zeros((n, 96, 96, 3), np.uint8)  # HWC
        x[..., 1] = 60
        x[:, 0:6, 72:90, 0] = 240  # a red block in the top right corner: rows 0..5, columns 72..89
        x.transpose(0, 3, 2, 1).tofile(folder / f"{split}_X.bin")  # HWC -> (N, C, W, H): column-major
        labels = (np.arange(n) % 10 + 1).astype(np.uint8)
        labels.tofile(folder / f"{split}_y.bin")
        out[split] = x
    return out


# ------------------------------------------------------------------------------------------- per-format readers


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("sub", ["", "mnist", "MNIST/raw"])
def test_mnist_idx(tmp_path, gz, sub):
    truth = write_mnist(tmp_path / "root" / sub, gz=gz)
    s = load_images("mnist", tmp_path / "root", cache_dir=tmp_path / "cache")
    assert s.train_images.shape == (12, 32, 32, 3) and s.test_images.shape == (7, 32, 32, 3)
    assert s.train_images.dtype == np.uint8 and s.train_labels.dtype == np.int64
    assert s.train_images.flags.c_contiguous and s.train_images.flags.writeable
    np.testing.assert_array_equal(s.train_labels, truth["train_y"])
    np.testing.assert_array_equal(s.test_labels, truth["test_y"])
    assert s.origin == f"local:{(tmp_path / 'root' / sub).resolve()}"
    # grey -> 3 identical channels; the constant background survives the 28 -> 32 resize exactly
    assert (s.train_images[..., 0] == s.train_images[..., 1]).all() and (
        s.train_images[..., 0] == s.train_images[..., 2]
    ).all()
    assert (s.train_images[:, 31, 0, 0] == truth["train_x"][:, 27, 0]).all()
    # the bright pixel at (row 3, col 20) of 28 lands near (3.5 * 32/28, 20.5 * 32/28) - 0.5 = (3.5, 22.9)
    r, c = np.unravel_index(np.argmax(s.train_images[0, ..., 0]), (32, 32))
    assert (r, c) in {(3, 22), (3, 23), (4, 22), (4, 23)}


def test_to_32x32x3_resize():
    const = np.full((3, 28, 28), 123, np.uint8)
    np.testing.assert_array_equal(sources._to_32x32x3(const), np.full((3, 32, 32, 3), 123, np.uint8))
    rgb = np.zeros((2, 96, 96, 3), np.uint8)
    rgb[..., 2] = 77
    out = sources._to_32x32x3(rgb)
    assert out.shape == (2, 32, 32, 3) and (out[..., 2] == 77).all() and (out[..., :2] == 0).all()
    same = colour_images(2, 0)
    np.testing.assert_array_equal(sources._to_32x32x3(same), same)
    # chunking does not change the result
    x = np.random.default_rng(0).integers(0, 256, (25, 28, 28), dtype=np.uint8)
    full = sources._to_32x32x3(x)
    old = sources._CHUNK
    try:
        sources._CHUNK = 7
        np.testing.assert_array_equal(sources._to_32x32x3(x), full)
    finally:
        sources._CHUNK = old
    with pytest.raises(DataSourceError):
        sources._to_32x32x3(np.zeros((2, 28, 28, 2), np.uint8))


@pytest.mark.parametrize(("protocol", "legacy"), [(2, True), (2, False), (pickle.HIGHEST_PROTOCOL, False)])
def test_cifar10_pickles(tmp_path, protocol, legacy):
    write_cifar(tmp_path / "cifar-10-batches-py", protocol=protocol, legacy_numpy_name=legacy)
    s = load_images("cifar10", tmp_path, cache_dir=tmp_path / "cache")
    assert s.train_images.shape == (20, 32, 32, 3) and s.test_images.shape == (4, 32, 32, 3)
    np.testing.assert_array_equal(s.train_labels[:4], [0, 1, 2, 3])
    np.testing.assert_array_equal(s.test_labels, [5, 6, 7, 8])  # test_batch is the 6th file written
    np.testing.assert_array_equal(s.train_images[:4], colour_images(4, seed=0))  # channels and orientation exact
    np.testing.assert_array_equal(s.train_images[4:8], colour_images(4, seed=10))
    assert (s.test_images[:, 2, 29] == 255).all() and (s.test_images[:, 29, 2] != 255).all()


def test_cifar10_pickle_with_forbidden_global_is_refused_without_running(tmp_path):
    write_cifar(tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (tmp_path / "data_batch_3").write_bytes(pickle.dumps({b"data": Evil(), b"labels": [0]}, protocol=2))
    with pytest.raises(DataSourceError, match=r"data_batch_3.*refused.*system"):
        load_images("cifar10", tmp_path, cache_dir=tmp_path / "cache")
    assert not marker.exists()
    assert not (tmp_path / "cache" / cache_file_name("cifar10")).exists()


def test_cifar10_garbage_pickle(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "test_batch").write_bytes(b"not a pickle at all")
    with pytest.raises(DataSourceError, match="test_batch is not a CIFAR-10 python batch"):
        load_images("cifar10", tmp_path, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("sub", ["", "svhn"])
def test_svhn_mat(tmp_path, sub):
    pytest.importorskip("scipy")
    write_svhn(tmp_path / sub)
    s = load_images("svhn", tmp_path, cache_dir=tmp_path / "cache")
    assert s.train_images.shape == (5, 32, 32, 3) and s.test_images.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(s.train_labels, [0, 1, 2, 3, 4])  # 10 -> 0
    np.testing.assert_array_equal(s.test_labels, [0, 1, 2])
    np.testing.assert_array_equal(s.train_images, colour_images(5, seed=0))  # (32, 32, 3, N) -> (N, 32, 32, 3)


def test_stl10_column_major(tmp_path):
    truth = write_stl10(tmp_path / "stl10_binary")
    (tmp_path / "stl10_binary" / "unlabeled_X.bin").write_bytes(b"ignored")
    s = load_images("stl10", tmp_path, cache_dir=tmp_path / "cache")
    assert s.train_images.shape == (3, 32, 32, 3) and s.test_images.shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(s.train_labels, [0, 1, 2])
    np.testing.assert_array_equal(s.test_labels, [0, 1])
    img = s.train_images[0].astype(int)
    # the red block (rows 0..5, cols 72..89 of 96) lands in the top right (rows 0..2, cols 23..30 of 32, fully inside
    # the block at row 0, cols 25..28 given the 3x antialiasing filter's support); transposed it would be bottom left
    assert (img[0, 25:29, 0] == 240).all() and img[3:, :, 0].max() == 0 and img[:, :23, 0].max() == 0
    assert (img[..., 1] == 60).all() and (img[..., 2] == 0).all()
    # the reader itself, before resizing, gives the exact HWC image
    x, y = sources._read_stl10(tmp_path / "stl10_binary" / "test_X.bin", tmp_path / "stl10_binary" / "test_y.bin")
    np.testing.assert_array_equal(x, truth["test"])
    np.testing.assert_array_equal(y, [0, 1])


# ------------------------------------------------------------------------------------------- digits, hub conversion


def test_digits():
    pytest.importorskip("sklearn")
    s = load_images("digits", cache_dir="/nonexistent/never/written")
    assert s.origin == "embedded:sklearn.digits"
    assert s.train_images.shape == (1437, 32, 32, 3) and s.test_images.shape == (360, 32, 32, 3)
    assert s.train_images.dtype == np.uint8 and s.train_images.max() == 255 and s.train_images.min() == 0
    assert set(np.unique(s.train_labels)) == set(range(NUM_CLASSES))
    assert np.bincount(s.test_labels).min() >= 35  # stratified
    again = load_images("digits")
    np.testing.assert_array_equal(again.test_images, s.test_images)  # deterministic


def test_hub_conversion_pil_and_arrays():
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    grey, labels = grey_images(6, 0)
    ds = datasets.Dataset.from_dict({"image": [Image.fromarray(a) for a in grey], "label": labels.tolist()})
    ds = ds.cast_column("image", datasets.Image())
    s = sources._hub_to_imageset("mnist", ds, ds.select(range(2)), origin="hub:ylecun/mnist")
    assert s.origin == "hub:ylecun/mnist" and s.train_images.shape == (6, 32, 32, 3) and len(s.test_images) == 2
    np.testing.assert_array_equal(s.train_labels, labels)
    np.testing.assert_array_equal(s.train_images, sources._to_32x32x3(grey))  # same pixels as the IDX path

    colour = colour_images(4, 0, size=96)
    ds = datasets.Dataset.from_dict({"image": [Image.fromarray(a) for a in colour], "label": [3, 1, 4, 1]})
    ds = ds.cast_column("image", datasets.Image())
    s = sources._hub_to_imageset("stl10", ds, ds, origin="hub:tanganke/stl10")
    np.testing.assert_array_equal(s.test_images, sources._to_32x32x3(colour))

    # cifar10's image column is "img"; arrays (not PIL) and a grey image in a colour set are handled too
    x = colour_images(3, 0)
    items = [x[0], x[1], Image.fromarray(x[2]).convert("L")]
    ds = datasets.Dataset.from_dict({"img": [Image.fromarray(np.asarray(i)) for i in items], "label": [0, 1, 2]})
    ds = ds.cast_column("img", datasets.Image())
    s = sources._hub_to_imageset("cifar10", ds, ds, origin="hub:uoft-cs/cifar10")
    np.testing.assert_array_equal(s.train_images[:2], x[:2])
    assert (s.train_images[2, ..., 0] == s.train_images[2, ..., 1]).all()
    np.testing.assert_array_equal(sources._image_array(x[0], grey=False), x[0])

    with pytest.raises(DataSourceError, match="no column"):
        sources._hub_to_imageset("cifar10", ds.rename_column("img", "image"), ds, origin="hub:uoft-cs/cifar10")


def test_hub_failure_is_a_data_source_error(monkeypatch, tmp_path):
    datasets = pytest.importorskip("datasets")

    def offline(*args, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.setattr(sources, "offline_reason", lambda: None)  # the probe says online; the download then fails
    with pytest.raises(DataSourceError, match=r"(?s)uoft-cs/cifar10.*no route to host.*--image-root"):
        load_images("cifar10", cache_dir=tmp_path)
    with pytest.raises(DataSourceError, match="downloads are disabled"):
        load_images("svhn", cache_dir=tmp_path, allow_download=False)


def test_hub_table_covers_every_downloadable_source():
    assert set(sources.HUB_DATASETS) == set(SOURCES) - {"digits"}
    assert sources.HUB_DATASETS["svhn"].config == "cropped_digits" and sources.HUB_DATASETS["cifar10"].image == "img"


# ------------------------------------------------------------------------------------------- cache


def test_cache_round_trip(tmp_path):
    write_mnist(tmp_path / "root", gz=True)
    first = load_images("mnist", tmp_path / "root", cache_dir=tmp_path / "cache")
    cache = tmp_path / "cache" / cache_file_name("mnist")
    assert cache.is_file() and not list((tmp_path / "cache").glob("*.tmp"))
    for f in (tmp_path / "root").iterdir():
        f.unlink()  # the cache is read before the root is searched
    second = load_images("mnist", tmp_path / "root", cache_dir=tmp_path / "cache")
    assert second.origin == f"cache:{cache}"
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        np.testing.assert_array_equal(getattr(second, field), getattr(first, field))
        assert getattr(second, field).dtype == getattr(first, field).dtype
    with np.load(cache, allow_pickle=False) as f:
        assert str(f["source"]).startswith("local:")


def test_corrupt_cache(tmp_path):
    (tmp_path / cache_file_name("fashion")).write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(DataSourceError, match=r"fashion-v2\.npz.*delete it"):
        load_images("fashion", cache_dir=tmp_path)
    np.savez(tmp_path / cache_file_name("svhn"), train_images=np.zeros((2, 28, 28), np.uint8),
             train_labels=np.zeros(2, np.int64), test_images=np.zeros((1, 32, 32, 3), np.uint8),
             test_labels=np.zeros(1, np.int64))  # fmt: skip
    with pytest.raises(DataSourceError, match=r"svhn-v2\.npz.*delete it"):
        load_images("svhn", cache_dir=tmp_path)


def test_unwritable_cache_warns_and_continues(tmp_path):
    write_mnist(tmp_path / "root", gz=False)
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    with pytest.warns(UserWarning, match="could not write the image cache"):
        s = load_images("mnist", tmp_path / "root", cache_dir=blocker / "sub")
    assert s.train_images.shape == (12, 32, 32, 3)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("WEIGHTZOO_CACHE", str(tmp_path / "imgs"))
    assert default_cache_dir() == tmp_path / "imgs"
    monkeypatch.delenv("WEIGHTZOO_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "weightzoo" / "images"


# ------------------------------------------------------------------------------------------- errors


def test_unknown_name_lists_the_valid_ones(tmp_path):
    with pytest.raises(UnknownNameError) as e:
        load_images("imagenet", cache_dir=tmp_path)
    for name in SOURCES:
        assert name in str(e.value)
    assert isinstance(e.value, KeyError)


def test_missing_root_lists_paths_tried(tmp_path):
    (tmp_path / "mnist").mkdir()
    write_idx(tmp_path / "mnist" / "train-images-idx3-ubyte", grey_images(2, 0)[0], gz=True)
    with pytest.raises(DataSourceError) as e:
        load_images("mnist", tmp_path, cache_dir=tmp_path / "cache")
    msg = str(e.value)
    for tried in (tmp_path, tmp_path / "mnist", tmp_path / "MNIST" / "raw"):
        assert f"  {tried} (" in msg
    assert "t10k-labels-idx1-ubyte" in msg and "no such folder" in msg and ".gz" in msg
    with pytest.raises(DataSourceError, match="stl10_binary"):
        load_images("stl10", tmp_path, cache_dir=tmp_path / "cache")


def test_truncated_idx_names_the_file(tmp_path):
    write_mnist(tmp_path, gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(DataSourceError, match=rf"{path}.*truncated.*\b{len(data)} bytes.*\b{len(data) - 100} bytes"):
        load_images("mnist", tmp_path, cache_dir=tmp_path / "cache")
    path.write_bytes(b"\x00\x00\x08\x01" + data[4:])  # a label magic on an image file
    with pytest.raises(DataSourceError, match=rf"{path} is not an IDX image file.*0x801"):
        load_images("mnist", tmp_path, cache_dir=tmp_path / "cache")
    gz = write_idx(tmp_path / "gz" / "x", grey_images(3, 0)[0], gz=True)
    gz.write_bytes(gz.read_bytes()[:-20])
    with pytest.raises(DataSourceError, match="cannot read the IDX file"):
        sources._read_idx(gz, 0x803)


def test_imageset_validation():
    x = np.zeros((2, 32, 32, 3), np.uint8)
    with pytest.raises(DataSourceError, match="uint8"):
        ImageSet("t", x.astype(np.float32), np.zeros(2, int), x, np.zeros(2, int), "t")
    with pytest.raises(DataSourceError, match="labels"):
        ImageSet("t", x, np.zeros(3, int), x, np.zeros(2, int), "t")
    with pytest.raises(DataSourceError, match="outside"):
        ImageSet("t", x, np.array([0, 10]), x, np.zeros(2, int), "t")
    s = ImageSet("t", x[:, ::-1], np.array([1, 2], np.int32), x, np.zeros(2, np.uint8), "t")
    assert s.train_labels.dtype == np.int64 and s.train_images.flags.c_contiguous


# ------------------------------------------------------------------------------------------- the real files


@pytest.mark.parametrize(("name", "folder"), [("mnist", "mnist"), ("fashion", "fashion_mnist")])
def test_real_idx_files(tmp_path, name, folder):
    if not (SHARED_DATA / folder).is_dir():
        pytest.skip(f"real {name} files not found under {SHARED_DATA} (set WEIGHTZOO_TEST_DATA)")
    t0 = time.perf_counter()
    s = load_images(name, SHARED_DATA, cache_dir=tmp_path)
    cold = time.perf_counter() - t0
    assert s.origin == f"local:{(SHARED_DATA / folder).resolve()}"
    assert s.train_images.shape == (60000, 32, 32, 3) and s.test_images.shape == (10000, 32, 32, 3)
    for labels, n in ((s.train_labels, 60000), (s.test_labels, 10000)):
        counts = np.bincount(labels, minlength=NUM_CLASSES)
        assert len(counts) == NUM_CLASSES and counts.min() > 0.08 * n and counts.max() < 0.12 * n
    mean = s.train_images[:5000].mean()
    assert (20 < mean < 50) if name == "mnist" else (60 < mean < 95)  # MNIST ~33, Fashion-MNIST ~73
    assert (s.train_images[:100, ..., 0] == s.train_images[:100, ..., 2]).all()
    t0 = time.perf_counter()
    again = load_images(name, SHARED_DATA, cache_dir=tmp_path)
    warm = time.perf_counter() - t0
    assert again.origin.startswith("cache:")
    np.testing.assert_array_equal(again.test_images, s.test_images)
    print(f"{name}: cold {cold:.2f} s, from cache {warm:.2f} s")


def test_real_fashion_files_are_not_taken_for_mnist(tmp_path):
    folder = SHARED_DATA / "fashion_mnist"
    if not folder.is_dir():
        pytest.skip(f"real Fashion-MNIST files not found under {SHARED_DATA}")
    with pytest.raises(DataSourceError, match="hold fashion, not mnist"):
        load_images("mnist", folder, cache_dir=tmp_path)


def tf1_legacy_resize(image: np.ndarray, size: int) -> np.ndarray:
    """TF1 ResizeBilinear with align_corners=False and half_pixel_centers=False, transcribed for one [H, W] image:
    in = out * (H / size); the upper neighbour clamped to the last row / column."""
    h, w = image.shape
    out = np.empty((size, size))
    for y in range(size):
        iy = y * h / size
        y0 = int(np.floor(iy))
        y1, dy = min(y0 + 1, h - 1), iy - y0
        for x in range(size):
            ix = x * w / size
            x0 = int(np.floor(ix))
            x1, dx = min(x0 + 1, w - 1), ix - x0
            top = image[y0, x0] + (image[y0, x1] - image[y0, x0]) * dx
            bottom = image[y1, x0] + (image[y1, x1] - image[y1, x0]) * dx
            out[y, x] = top + (bottom - top) * dy
    return out


def test_grey_upsampling_is_tf1_legacy_bilinear():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (28, 28)).astype(np.float64)
    ours = tf1_resize_bilinear(torch.from_numpy(image).view(1, 1, 28, 28), 32)[0, 0].numpy()
    assert np.abs(ours - tf1_legacy_resize(image, 32)).max() < 1e-9
    # PyTorch's own bilinear (half-pixel centres) differs: the transcription can tell them apart.
    half = torch.nn.functional.interpolate(torch.from_numpy(image).view(1, 1, 28, 28), size=(32, 32), mode="bilinear")
    assert np.abs(half[0, 0].numpy() - tf1_legacy_resize(image, 32)).max() > 10
    # What load_images stores: the same, rounded to uint8, repeated to 3 channels.
    stored = sources._to_32x32x3(image.astype(np.uint8)[None])
    assert stored.shape == (1, 32, 32, 3) and np.array_equal(stored[0, :, :, 0], stored[0, :, :, 2])
    assert np.abs(stored[0, :, :, 0].astype(np.float64) - tf1_legacy_resize(image, 32)).max() <= 0.5 + 1e-9


def test_cache_file_name_carries_the_preprocessing_version():
    assert cache_file_name("mnist") == f"mnist-v{sources.CACHE_VERSION}.npz"
