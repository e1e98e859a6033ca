"""A zoo is untrusted input (weightzoo.format.confine): hostile zoos (paths leaving the folder, links, devices,
FIFOs, folders, wrong sizes, malformed manifests and shard headers) are refused with typed errors naming the file,
never read outside the zoo, never read without bound, never block."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import stat
import struct
from pathlib import Path

import fsspec
import pytest

from builder.push import main as push_main
from tests.conftest import write_synthetic_zoo
from weightzoo import open_zoo
from weightzoo.cli import exit_code
from weightzoo.errors import (
    ChecksumError,
    ShardError,
    UnsafePathError,
    WeightZooError,
    ZooFormatError,
)
from weightzoo.format.confine import check_relpath
from weightzoo.format.shards import ShardReader


@pytest.fixture
def zoo(tmp_path):
    path = tmp_path / "zoo"
    write_synthetic_zoo(path, n=4, diverged=())
    return path


@contextlib.contextmanager
def deadline(seconds: int = 20):
    """Fail instead of hanging (a FIFO opened for reading would block until a writer comes)."""

    def alarm(*_):
        raise TimeoutError(f"blocked for {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _edit_manifest(path: Path, edit) -> None:
    m = json.loads((path / "manifest.json").read_text())
    edit(m)
    (path / "manifest.json").write_text(json.dumps(m))


def _list(path: Path, rel: str, data: bytes) -> None:
    """Add ``rel`` to the manifest with the sha256 and size of ``data`` (a hostile zoo states them correctly)."""
    entry = {"path": rel, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    _edit_manifest(path, lambda m: m["files"].append(entry))


def _first_shard(path: Path) -> Path:
    return sorted((path / "shards").iterdir())[0]


@pytest.mark.parametrize(
    "rel",
    ["../x", "/etc/hostname", "shards/../../x", "C:/x", "shards\\..\\x", "hf://x", "a//b", "./x", "", "x?y", "*"],
)
def test_paths_that_leave_the_folder_or_are_not_plain_are_refused(rel):
    with pytest.raises(UnsafePathError, match="manifest.json names"):
        check_relpath(rel, "manifest.json")


@pytest.mark.parametrize("rel", ["../secret.txt", "/SECRET"])
def test_a_manifest_naming_a_file_outside_is_refused_by_every_reader_and_by_push(zoo, tmp_path, rel, capsys):
    secret = tmp_path / "secret.txt"
    secret.write_text("the user's private key")
    _list(zoo, rel.replace("/SECRET", str(secret)), secret.read_bytes())
    with pytest.raises(UnsafePathError, match="leaves the zoo's folder"):
        open_zoo(zoo)
    assert exit_code(push_main, [str(zoo), "--repo", "org/zoo", "--dry-run", "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert "secret" not in out and err.count("\n") == 1 and "leaves the zoo's folder" in err


def test_an_index_row_pointing_outside_is_refused(zoo, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from weightzoo.format.index import table_to_bytes

    outside = tmp_path / "evil"
    outside.mkdir()
    shutil.copy(_first_shard(zoo), outside / "train-00000.safetensors")
    table = pq.read_table(zoo / "index.parquet")
    rel = "../evil/train-00000.safetensors"
    table = table.set_column(table.schema.get_field_index("shard"), "shard", pa.array([rel] * table.num_rows))
    data = table_to_bytes(table)
    (zoo / "index.parquet").write_bytes(data)

    def fix(m):
        for f in m["files"]:
            if f["path"] == "index.parquet":
                f["sha256"], f["bytes"] = hashlib.sha256(data).hexdigest(), len(data)

    _edit_manifest(zoo, fix)
    with pytest.raises(ZooFormatError, match="does not list"):  # not in the manifest
        open_zoo(zoo)
    _list(zoo, rel, (outside / "train-00000.safetensors").read_bytes())
    with pytest.raises(UnsafePathError, match=r"\.\./evil"):  # and the manifest may not name it
        open_zoo(zoo)


def test_a_link_leaving_the_folder_is_refused_by_reads_verify_and_load_dataset(zoo, tmp_path):
    import datasets

    shard = _first_shard(zoo)
    elsewhere = tmp_path / "elsewhere.safetensors"
    shard.rename(elsewhere)
    shard.symlink_to(elsewhere)  # same bytes, outside the zoo
    z = open_zoo(zoo)
    first = z.filter(shard=f"shards/{shard.name}").ids[0]
    with pytest.raises(UnsafePathError, match="outside the zoo's folder"):
        z.weights(first)
    with pytest.raises(ChecksumError, match="outside the zoo's folder"):
        z.verify(progress=False)
    with pytest.raises(WeightZooError, match=f"{shard.name}.*outside the zoo's folder"):
        datasets.load_dataset("weightzoo", data_dir=str(zoo), cache_dir=str(tmp_path / "cache"), snapshots=20)
    # a link that stays inside the folder is fine
    shard.unlink()
    shutil.copy(elsewhere, zoo / "shards" / "copy.bin")
    shard.symlink_to("copy.bin")
    assert open_zoo(zoo).weights(first)


def test_devices_are_never_read(zoo):
    (zoo / "index.parquet").unlink()
    (zoo / "index.parquet").symlink_to("/dev/zero")
    with deadline(), pytest.raises(UnsafePathError, match="outside the zoo's folder"):
        open_zoo(zoo)
    (zoo / "index.parquet").unlink()
    try:
        os.mknod(zoo / "index.parquet", stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero, inside the zoo
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD")
    with deadline(), pytest.raises(UnsafePathError, match="a character device"):
        open_zoo(zoo)


def test_fifos_and_folders_do_not_block_or_crash(zoo):
    z = open_zoo(zoo)
    shard = _first_shard(zoo)
    first = z.filter(shard=f"shards/{shard.name}").ids[0]
    shard.unlink()
    os.mkfifo(shard)
    with deadline():
        with pytest.raises(UnsafePathError, match="FIFO"):
            z.weights(first)
        with pytest.raises(ChecksumError, match="FIFO"):
            z.verify(progress=False)
    shard.unlink()
    shard.mkdir()
    with pytest.raises(UnsafePathError, match="a folder"):
        z.weights(first)
    shard.rmdir()
    shutil.rmtree(zoo / "shards")
    (zoo / "shards").write_text("a file where the shards folder should be")
    with pytest.raises(ZooFormatError, match="is a file, not a folder"):
        open_zoo(zoo).weights(first)


@pytest.mark.parametrize(("change", "match"), [(b"extra", "longer than written"), (None, "truncated")])
def test_a_shard_of_another_size_than_stated_is_named(zoo, change, match):
    shard = _first_shard(zoo)
    data = shard.read_bytes()
    shard.write_bytes(data + change if change else data[:-8])
    z = open_zoo(zoo)
    first = z.filter(shard=f"shards/{shard.name}").ids[0]
    with pytest.raises(ShardError, match=f"{shard.name}.*{match}"):
        z.weights(first)
    with pytest.raises(ChecksumError, match=f"{shard.name}: size"):
        z.verify(progress=False)


def test_a_huge_manifest_is_not_read_whole(zoo, monkeypatch):
    monkeypatch.setattr("weightzoo.format.confine.MAX_METADATA_BYTES", 1000)
    monkeypatch.setattr("weightzoo.zoo.read_member.__kwdefaults__", {"expected_bytes": None, "max_bytes": 1000})
    with pytest.raises(ZooFormatError, match="manifest.json: longer than 1000 bytes"):
        open_zoo(zoo)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m: m.update(generation=["not", "a", "mapping"]), "generation is"),
        (lambda m: m.update(num_networks="4"), "num_networks is '4'"),
        (lambda m: m.update(splits={"train": -1}), "splits is"),
        (lambda m: m["files"][0].update(sha256="xyz"), "sha256 of"),
        (lambda m: m["files"][0].update(bytes=-5), "size of"),
        (lambda m: m["files"].append(dict(m["files"][0])), "each file listed once"),
        (lambda m: m.update(num_networks=99), "num_networks is 99, but the index"),
        (lambda m: m.update(splits={"train": 3, "test": 1}), "splits is"),
        (lambda m: m.update(status_counts={"completed": 3, "diverged": 1}), "status_counts is"),
    ],
)
def test_a_malformed_or_edited_manifest_is_refused_at_open(zoo, edit, match):
    _edit_manifest(zoo, edit)
    with pytest.raises(ZooFormatError, match=match):
        open_zoo(zoo)


def test_verify_checks_the_counts_too(zoo):
    z = open_zoo(zoo)
    z.manifest.num_networks = 5  # as a manifest edited after the zoo was opened
    with pytest.raises(ZooFormatError, match="num_networks is 5"):
        z.verify(progress=False)


def _rewrite_header(shard: Path, edit) -> None:
    """Change a shard's header (its length kept: the byte ranges of the index stay valid)."""
    data = shard.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    text = edit(data[8 : 8 + n].decode())
    assert len(text) == n
    shard.write_bytes(data[:8] + text.encode() + data[8 + n :])


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda h: h.replace('"F32"', '"F16"', 1), "header entry '.*' is .*expected"),
        (lambda h: h.replace('"shape":[20,', '"shape":[21,', 1), "spans bytes .* its shape and dtype need"),
        (lambda h: h.replace('"data_offsets":[0,', '"data_offsets":"0,', 1).replace("],", '",', 1), "header entry"),
        (lambda h: "[" + " " * (len(h) - 2) + "]", "JSON list"),
    ],
)
def test_malformed_shard_headers_raise_shard_errors_naming_the_file(zoo, edit, match, capsys):
    from weightzoo.baselines.__main__ import main as baselines_main

    shard = _first_shard(zoo)
    _rewrite_header(shard, edit)
    with pytest.raises(ShardError, match=f"{shard.name}: .*{match}"):
        ShardReader(fsspec.filesystem("file"), str(zoo), f"shards/{shard.name}")
    code = exit_code(baselines_main, [str(zoo), "--model", "chance", "--target", "optimizer", "--quiet",
                                      "--out", str(zoo.parent / "b"), "--test-fraction", "0.5"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and shard.name in err and "Traceback" not in err, err


def test_a_hostile_zoo_on_a_remote_file_system_is_refused_too(zoo):
    fs = fsspec.filesystem("memory")
    fs.put(str(zoo), "/hostile", recursive=True)
    fs.pipe("/secret.txt", b"secret")
    m = json.loads(fs.cat_file("/hostile/manifest.json"))
    m["files"].append({"path": "../secret.txt", "sha256": hashlib.sha256(b"secret").hexdigest(), "bytes": 6})
    fs.pipe("/hostile/manifest.json", json.dumps(m).encode())
    with pytest.raises(UnsafePathError, match=r"'\.\./secret\.txt', which leaves"):
        open_zoo("memory://hostile")
    fs.rm("/hostile", recursive=True)
    fs.rm("/secret.txt")
