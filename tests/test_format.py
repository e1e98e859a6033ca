"""The on-disk format: shard layout (golden bytes), index schema, manifest versioning, atomic writes."""

import json
import struct

import fsspec
import numpy as np
import pyarrow.parquet as pq
import pytest

from builder.engine.space import get_preset
from tests.conftest import write_synthetic_zoo
from weightzoo.architecture import Architecture
from weightzoo.errors import FormatVersionError, OutputPathError, ShardError, ZooFormatError
from weightzoo.format.index import INDEX_SCHEMA, NetworkRecord, read_index
from weightzoo.format.layout import FORMAT_VERSION, METRICS, READABLE_VERSIONS, parse_tensor_name, tensor_name
from weightzoo.format.manifest import FileEntry, Manifest, sha256_file
from weightzoo.format.shards import ShardReader, ShardWriter
from weightzoo.format.writer import ZooWriter, prepare_output


def _weights(arch, value):
    return {p.name: np.full((20, *p.shape), value, np.float32) for p in arch.params}


def test_shard_bytes_follow_safetensors_and_networks_are_contiguous():
    fs = fsspec.filesystem("memory")
    arch = Architecture(3, 3, 2, 4, 64)
    w = ShardWriter(fs, "/golden", "train", max_bytes=10**9, generator="test")
    for net in (3, 10, 11):
        w.add(net, _weights(arch, float(net)))
    entry, loc = w.flush()
    data = fs.cat_file(f"/golden/{entry.path}")
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    assert header.pop("__metadata__") == {
        "format": "weightzoo",
        "format_version": str(FORMAT_VERSION),
        "generator": "test",
    }
    assert len(header) == 3 * len(arch.params)
    for net in (3, 10, 11):
        start, length = loc[net]["byte_offset"], loc[net]["byte_length"]
        assert length == 20 * arch.num_params * 4
        block = np.frombuffer(data[start : start + length], "<f4")
        assert np.all(block == net)  # exactly this network's bytes, nothing else
        names = sorted(k for k in header if parse_tensor_name(k)[0] == net)
        assert [parse_tensor_name(k)[2] for k in names] == [p.name for p in arch.params]
        assert header[names[0]]["shape"] == [20, *arch.params[0].shape] and header[names[0]]["dtype"] == "F32"
    assert entry.bytes == len(data)


def test_tensor_names_round_trip():
    assert parse_tensor_name(tensor_name(123, 7, "fc0_bn.running_var")) == (123, 7, "fc0_bn.running_var")
    with pytest.raises(ZooFormatError, match="network id"):
        parse_tensor_name("conv0")


def test_shards_respect_the_size_cap(tmp_path):
    write_synthetic_zoo(tmp_path / "z", n=6, preset="nws_fixed", max_shard_bytes=2 * 20 * 92_868 * 4)
    shards = sorted(p.name for p in (tmp_path / "z" / "shards").iterdir())
    # 5 train + 1 test networks, 2 per train shard
    assert shards == [
        "test-00000.safetensors",
        "train-00000.safetensors",
        "train-00001.safetensors",
        "train-00002.safetensors",
    ]


def test_index_schema_and_manifest_checksums(synthetic_zoo):
    path, written = synthetic_zoo
    table = pq.read_table(path / "index.parquet")
    assert table.schema.equals(INDEX_SCHEMA, check_metadata=False)
    assert table.column("network_id").to_pylist() == sorted(written)
    assert set(table.column("split").to_pylist()) == {"train", "test"}
    assert table.column("status").to_pylist()[2] == "diverged"
    manifest = Manifest.from_json((path / "manifest.json").read_text(), source="m")
    assert manifest.num_networks == len(written) and manifest.format_version == FORMAT_VERSION
    fs = fsspec.filesystem("file")
    for entry in manifest.files:
        assert sha256_file(fs, str(path / entry.path)) == (entry.sha256, entry.bytes)
    assert {e.path for e in manifest.shards} == set(table.column("shard").to_pylist())


def test_manifest_version_errors_name_file_and_command():
    m = Manifest("z", 7, 3, {"train": 3}, {"completed": 3}, {"preset": "nws_fixed"}, [FileEntry("a", "0" * 64, 1)])
    data = json.loads(m.to_json())
    data["format_version"] = max(READABLE_VERSIONS) + 1
    with pytest.raises(FormatVersionError, match="pip install -U weightzoo") as e:
        Manifest.from_json(json.dumps(data), source="/x/manifest.json")
    assert "/x/manifest.json" in str(e.value)
    data["format_version"] = 0
    with pytest.raises(FormatVersionError, match="--preset nws_fixed --seed 7"):
        Manifest.from_json(json.dumps(data), source="/x/manifest.json")
    with pytest.raises(ZooFormatError, match="not valid JSON"):
        Manifest.from_json("{", source="/x/manifest.json")


def test_read_index_rejects_foreign_parquet(tmp_path):
    import pyarrow as pa

    p = tmp_path / "x.parquet"
    pq.write_table(pa.table({"a": [1]}), p)
    with pytest.raises(ZooFormatError, match="lacks columns"):
        read_index(p.read_bytes(), source=str(p))
    with pytest.raises(ZooFormatError, match="not a readable parquet"):
        read_index(b"garbage", source="g")


def test_output_folder_checks(tmp_path):
    prepare_output(tmp_path / "missing" / "zoo")  # missing parents are created, as mkdir -p does
    assert (tmp_path / "missing" / "zoo" / "shards").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPathError, match="is a file"):
        prepare_output(tmp_path / "file")
    write_synthetic_zoo(tmp_path / "z", n=2)
    with pytest.raises(OutputPathError, match="already holds a finished zoo.*--overwrite"):
        prepare_output(tmp_path / "z")
    prepare_output(tmp_path / "z", overwrite=True)
    assert list((tmp_path / "z").iterdir()) == [tmp_path / "z" / "shards"]


def test_overwrite_never_deletes_what_weightzoo_did_not_write(tmp_path):
    """A folder of someone's files is refused, with or without --overwrite, and nothing in it is deleted."""
    mine = tmp_path / "thesis"
    (mine / "sub").mkdir(parents=True)
    (mine / "important.txt").write_text("keep")
    (mine / "sub" / "thesis.tex").write_text("keep")
    for overwrite in (False, True):
        with pytest.raises(OutputPathError, match="holds important.txt.*did not write") as err:
            prepare_output(mine, overwrite=overwrite)
        assert "pass --overwrite" not in str(err.value)
    assert (mine / "important.txt").read_text() == "keep" and (mine / "sub" / "thesis.tex").read_text() == "keep"
    # A zoo with a stranger's file beside it: refused too, the zoo and the file left as they are.
    write_synthetic_zoo(tmp_path / "z", n=2)
    (tmp_path / "z" / "notes.md").write_text("mine")
    with pytest.raises(OutputPathError, match="notes.md"):
        prepare_output(tmp_path / "z", overwrite=True)
    assert (tmp_path / "z" / "manifest.json").exists() and (tmp_path / "z" / "notes.md").read_text() == "mine"
    # ... and a stranger's file inside shards/.
    (tmp_path / "z" / "notes.md").unlink()
    (tmp_path / "z" / "shards" / "keep.bin").write_bytes(b"x")
    with pytest.raises(OutputPathError, match="keep.bin"):
        prepare_output(tmp_path / "z", overwrite=True)
    assert (tmp_path / "z" / "shards" / "keep.bin").exists()


def test_same_networks_same_shard_bytes():
    """The header is canonical: the same networks give byte-identical shards, save after save."""
    arch = Architecture(3, 3, 2, 4, 64)
    shards = []
    for attempt in range(3):
        fs = fsspec.filesystem("memory")
        w = ShardWriter(fs, f"/same{attempt}", "train", max_bytes=10**9, generator="weightzoo 0.1.0")
        for net in (1, 2):
            w.add(net, _weights(arch, float(net)))
        entry, _ = w.flush()
        shards.append(fs.cat_file(f"/same{attempt}/{entry.path}"))
    assert shards[0] == shards[1] == shards[2]
    (n,) = struct.unpack("<Q", shards[0][:8])
    assert n % 8 == 0 and list(json.loads(shards[0][8 : 8 + n])) == sorted(json.loads(shards[0][8 : 8 + n]))
    from safetensors.numpy import load

    assert load(shards[0])["0000001.000.conv0.weight"].shape == (20, 4, 3, 3, 3)


def test_non_writable_output(tmp_path):
    import os

    if os.geteuid() != 0:  # an ordinary user: a read-only folder
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        target = ro / "zoo"
    else:  # root writes anywhere on disk; sysfs still refuses
        target = "/sys/weightzoo-test"
    with pytest.raises(OutputPathError, match="not writable"):
        prepare_output(target)


def test_interrupted_write_leaves_no_manifest(tmp_path):
    arch = Architecture()
    out = tmp_path / "zoo"

    class Boom(Exception):
        pass

    hp = get_preset("nws_fixed").sample(0, 0)
    m = {k: [0.0] * 20 for k in METRICS}
    with pytest.raises(Boom), ZooWriter(out, name="x", zoo_seed=0, generation={}, max_shard_bytes=1) as w:
        w.add(NetworkRecord(0, "train", "completed", 0, hp, 19, list(range(20)), m, m), _weights(arch, 1.0))
        raise Boom
    assert (out / "shards" / "train-00000.safetensors").exists()  # the finished shard stays
    assert not (out / "manifest.json").exists() and not (out / "index.parquet").exists()
    assert not list(out.rglob("*.partial"))


def test_truncated_shard_is_detected_on_open(synthetic_zoo):
    path, _ = synthetic_zoo
    shard = sorted((path / "shards").iterdir())[-1]
    data = shard.read_bytes()
    shard.write_bytes(data[:-100])
    with pytest.raises(ShardError, match="truncated") as e:
        ShardReader(fsspec.filesystem("file"), str(path), f"shards/{shard.name}")
    assert shard.name in str(e.value)
    shard.write_bytes(data[:5])
    with pytest.raises(ShardError, match="too short"):
        ShardReader(fsspec.filesystem("file"), str(path), f"shards/{shard.name}")


def test_a_network_cannot_be_written_twice(tmp_path):
    hp = get_preset("nws_fixed").sample(0, 0)
    m = {k: [0.0] * 20 for k in METRICS}
    rec = NetworkRecord(0, "train", "completed", 0, hp, 19, list(range(20)), m, m)
    w = ZooWriter(tmp_path / "z", name="x", zoo_seed=0, generation={}, max_shard_bytes=1)
    w.add(rec, _weights(hp.architecture, 1.0))  # flushed at once (tiny cap)
    with pytest.raises(OutputPathError, match="network 0 was already written"):
        w.add(rec, _weights(hp.architecture, 1.0))


def test_shard_names_round_trip_and_bad_names_are_named():
    from weightzoo.errors import ZooFormatError
    from weightzoo.format.layout import parse_shard_name, shard_name

    assert parse_shard_name(shard_name("train", 7)) == ("train", 7)
    for bad in ("shards/train-00001.bin", "shards/train.safetensors", "shards/-00001.safetensors"):
        with pytest.raises(ZooFormatError, match="not a shard name"):
            parse_shard_name(bad)


def test_resume_needs_an_interrupted_run(tmp_path):
    from weightzoo.format.writer import prepare_output

    (tmp_path / "empty").mkdir()
    with pytest.raises(OutputPathError, match=r"no \.progress/ record of an interrupted run"):
        prepare_output(tmp_path / "empty", resume=True)


@pytest.mark.parametrize("damage", ["empty", "truncated-rows", "garbage-options"])
def test_resume_treats_damaged_progress_records_as_missing(tmp_path, damage):
    """What a power cut leaves (an empty or half-written record) is not a traceback: those networks train again."""
    arch = Architecture()
    out = tmp_path / "zoo"
    hp = get_preset("nws_fixed").sample(0, 0)
    m = {k: [0.0] * 20 for k in METRICS}

    def record(i):
        return NetworkRecord(i, "train", "completed", 0, hp, 19, list(range(20)), m, m)

    w = ZooWriter(out, name="x", zoo_seed=0, generation={"preset": "nws_fixed"}, max_shard_bytes=1)
    for i in (0, 1):
        w.add(record(i), _weights(arch, float(i)))  # one network per shard, each recorded in .progress/
    progress = out / ".progress"
    if damage == "empty":
        (progress / "train-00000.json").write_bytes(b"")
    elif damage == "truncated-rows":
        rows = progress / "train-00001.parquet"
        rows.write_bytes(rows.read_bytes()[:20])
    else:
        (progress / "generation.json").write_bytes(b"\x00\x00")
    resumed = ZooWriter(out, name="x", zoo_seed=0, generation={"preset": "nws_fixed"}, max_shard_bytes=1, resume=True)
    assert resumed.damaged and len(resumed.done) == (0 if damage == "garbage-options" else 1)
    for i in (0, 1):
        if i not in resumed.done:
            resumed.add(record(i), _weights(arch, float(i)))
    resumed.close()
    from weightzoo import open_zoo

    zoo = open_zoo(out)
    zoo.verify()  # raises on a bad checksum
    assert zoo.ids == [0, 1]
    assert float(zoo.read_arrays(1)["out.bias"][0, 0]) == 1.0
