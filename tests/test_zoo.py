"""The reader: round trips, filters, snapshots, flat vectors, modules, verification and bad input."""

import json
from typing import ClassVar

import fsspec
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from tests.conftest import write_synthetic_zoo
from weightzoo import open_zoo
from weightzoo.errors import (
    ChecksumError,
    ConfigError,
    FormatVersionError,
    ShardError,
    UnknownNameError,
    ZooFormatError,
    ZooNotFoundError,
)
from weightzoo.format.index import table_to_bytes
from weightzoo.model import to_flat


def test_weights_round_trip_bit_exactly(synthetic_zoo):
    path, written = synthetic_zoo
    zoo = open_zoo(path)
    assert len(zoo) == len(written) and zoo.ids == sorted(written)
    for nid, weights in written.items():
        snaps = zoo.snapshots(nid, check=True)
        assert list(snaps) == list(weights)  # reference order
        for name, array in weights.items():
            assert np.array_equal(snaps[name].numpy(), array, equal_nan=True)
            assert snaps[name].numpy().tobytes() == array.tobytes()  # bit-exact, NaNs included
        w5 = zoo.weights(nid, snapshot=5)
        assert all(torch.equal(w5[k], torch.from_numpy(v[4])) for k, v in weights.items() if np.isfinite(v[4]).all())
        arch = zoo.architecture(nid)
        flat = zoo.flat(nid, snapshot=1)
        assert flat.shape == (arch.num_params,)
        assert torch.equal(flat, to_flat({k: torch.from_numpy(v[0]) for k, v in weights.items()}, arch))
        assert torch.equal(flat[: arch.weightn_conv][:10], torch.from_numpy(weights["conv0.weight"][0].ravel()[:10]))


def test_filter_and_split(synthetic_zoo):
    path, _ = synthetic_zoo
    zoo = open_zoo(path)
    test = zoo.split("test")
    assert test.ids == [4]
    assert set(zoo.filter(status="diverged").ids) == {2}
    optimizers = set(zoo.networks.optimizer)
    some = sorted(optimizers)[:1]
    sub = zoo.filter(optimizer=some, learning_rate=lambda lr: lr > 0)
    assert set(sub.networks.optimizer) == set(some) and len(sub) >= 1
    assert sub.weights(sub.ids[0])["out.bias"].shape == (20,)
    with pytest.raises(UnknownNameError, match="learning_rate"):
        zoo.filter(lr=0.1)
    with pytest.raises(UnknownNameError, match="train, test|test, train"):
        zoo.split("validation")
    with pytest.raises(ConfigError, match="from 1"):
        zoo.weights(0, snapshot=0)
    with pytest.raises(ZooFormatError, match="no network 99"):
        zoo.weights(99)


def test_model_from_zoo_matches_weights(tmp_path):
    write_synthetic_zoo(tmp_path / "z", n=2, preset="nws_fixed", diverged=())
    zoo = open_zoo(tmp_path / "z")
    net = zoo.model(0, snapshot=20)
    assert not net.training
    state = net.state_dict()
    for name, tensor in zoo.weights(0, snapshot=20).items():
        assert torch.equal(state[name], tensor)
    # A zoo that records no batch-norm epsilon predates generation version 2: rebuilt with 1e-3, as trained.
    assert zoo.manifest.generation_version == 1 and net.conv0_bn.eps == 1e-3


def test_model_uses_the_batch_norm_epsilon_the_zoo_records(tmp_path):
    generation = {"preset": "nws_fixed", "generation_version": 2, "train": {"bn_eps": 1e-5}}
    write_synthetic_zoo(tmp_path / "v2", n=1, preset="nws_fixed", diverged=(), generation=generation)
    zoo = open_zoo(tmp_path / "v2")
    assert zoo.manifest.generation_version == 2 and zoo.model(0).conv0_bn.eps == 1e-5


def test_reads_only_the_networks_bytes_from_remote_filesystems(tmp_path):
    fs = fsspec.filesystem("memory")
    written = write_synthetic_zoo("memory://remote-zoo", n=5, preset="nws_fixed", diverged=())
    zoo = open_zoo("memory://remote-zoo")
    calls = []
    original = fs.cat_file

    def spy(path, start=None, end=None, **kw):
        calls.append((path, start, end))
        return original(path, start=start, end=end, **kw)

    zoo.fs.cat_file = spy
    row = zoo.row(3)
    w = zoo.snapshots(3)
    assert np.array_equal(w["fc0.weight"].numpy(), written[3]["fc0.weight"])
    data_reads = [c for c in calls if c[1] is not None and c[1] > 0]
    assert data_reads == [(f"/remote-zoo/{row['shard']}", row["byte_offset"], row["byte_offset"] + row["byte_length"])]
    fs.rm("/remote-zoo", recursive=True)


def test_verify_names_the_corrupted_file(synthetic_zoo):
    path, _ = synthetic_zoo
    zoo = open_zoo(path)
    zoo.verify()  # raises on any bad file
    shard = path / zoo.row(0)["shard"]
    data = bytearray(shard.read_bytes())
    data[-3] ^= 0xFF  # flip bits inside the last network's weights
    shard.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=str(shard.name)) as e:
        open_zoo(path).verify()
    assert "corrupted" in str(e.value)
    last = open_zoo(path).filter(shard=zoo.row(0)["shard"]).ids[-1]
    with pytest.raises(ShardError, match="sha256"):
        open_zoo(path).snapshots(last, check=True)


def test_not_a_zoo_and_interrupted(tmp_path):
    """Each message says what the folder is and what to do: no folder, a plain folder, an interrupted run."""
    with pytest.raises(ZooNotFoundError, match="no such folder; make one with: python -m builder.generate"):
        open_zoo(tmp_path / "nothing")
    (tmp_path / "half").mkdir()
    with pytest.raises(ZooNotFoundError, match="without a manifest, not a zoo; make one") as err:
        open_zoo(tmp_path / "half")
    assert "interrupted" not in str(err.value).split(" is not a zoo")[1]
    (tmp_path / "half" / ".progress").mkdir()
    with pytest.raises(ZooNotFoundError, match="interrupted generation: continue it with .* --resume"):
        open_zoo(tmp_path / "half")


def test_other_format_version(synthetic_zoo):
    path, _ = synthetic_zoo
    m = json.loads((path / "manifest.json").read_text())
    m["format_version"] = 99
    (path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(FormatVersionError, match="manifest.json"):
        open_zoo(path)


def _rewrite_index(path, table) -> None:
    """Write an edited index and record its checksum, as a (buggy) writer would: the later checks must hold."""
    import hashlib

    data = table_to_bytes(table)
    (path / "index.parquet").write_bytes(data)
    m = json.loads((path / "manifest.json").read_text())
    for f in m["files"]:
        if f["path"] == "index.parquet":
            f["sha256"], f["bytes"] = hashlib.sha256(data).hexdigest(), len(data)
    (path / "manifest.json").write_text(json.dumps(m))


def test_an_edited_index_is_refused_at_open(synthetic_zoo, tmp_path):
    """A changed label (a valid parquet file) is caught when the zoo is opened, naming the file."""
    import shutil

    import pyarrow as pa

    path = tmp_path / "edited"
    shutil.copytree(synthetic_zoo[0], path)
    table = pq.read_table(path / "index.parquet")
    labels = table.column("optimizer").to_pylist()
    labels[0] = "adam" if labels[0] != "adam" else "rmsprop"
    table = table.set_column(table.schema.get_field_index("optimizer"), "optimizer", pa.array(labels))
    (path / "index.parquet").write_bytes(table_to_bytes(table))
    with pytest.raises(ChecksumError, match=r"index\.parquet.*changed or damaged"):
        open_zoo(path)


def test_index_row_outside_its_shard(synthetic_zoo):
    path, _ = synthetic_zoo
    table = pq.read_table(path / "index.parquet")
    offsets = table.column("byte_offset").to_pylist()
    offsets[1] = 10**9
    table = table.set_column(
        table.schema.get_field_index("byte_offset"), "byte_offset", __import__("pyarrow").array(offsets)
    )
    _rewrite_index(path, table)
    zoo = open_zoo(path)
    with pytest.raises(ShardError, match="outside the shard") as e:
        zoo.weights(1)
    assert zoo.row(1)["shard"] in str(e.value)


def test_index_pointing_to_unlisted_shard(synthetic_zoo):
    path, _ = synthetic_zoo
    table = pq.read_table(path / "index.parquet")
    shards = table.column("shard").to_pylist()
    shards[0] = "shards/elsewhere.safetensors"
    table = table.set_column(table.schema.get_field_index("shard"), "shard", __import__("pyarrow").array(shards))
    _rewrite_index(path, table)
    with pytest.raises(ZooFormatError, match="elsewhere"):
        open_zoo(path)


class _RangeCountingFS(fsspec.AbstractFileSystem):
    """An in-memory filesystem whose files are read as remote ones are: by byte ranges, each counted."""

    protocol = "rangecount"
    files: ClassVar[dict[str, bytes]] = {}
    fetched = 0

    def ls(self, path, detail=True, **kwargs):
        path = self._strip_protocol(path).rstrip("/")
        names = sorted({p for p in self.files if p.startswith(path + "/")})
        infos = [self.info(p) for p in names]
        return infos if detail else [i["name"] for i in infos]

    def info(self, path, **kwargs):
        path = self._strip_protocol(path)
        if path not in self.files:
            raise FileNotFoundError(path)
        return {"name": path, "size": len(self.files[path]), "type": "file"}

    def _open(self, path, mode="rb", block_size=None, autocommit=True, cache_options=None, **kwargs):
        # Like fsspec's HTTP files: a "bytes" cache that reads a block ahead, unless the caller asks otherwise.
        kwargs.setdefault("cache_type", "bytes")
        return _RangeFile(self, self._strip_protocol(path), mode, block_size or 3000, cache_options=cache_options,
                          **kwargs)  # fmt: skip

    def cat_file(self, path, start=None, end=None, **kwargs):
        data = self.files[self._strip_protocol(path)][start:end]
        type(self).fetched += len(data)
        return data


class _RangeFile(fsspec.spec.AbstractBufferedFile):
    def _fetch_range(self, start, end):
        data = self.fs.files[self.path][start:end]
        type(self.fs).fetched += len(data)
        return data


def test_remote_reads_fetch_only_what_they_need(synthetic_zoo):
    """verify() reads each file once (no overlapping read-ahead); one network reads its own byte range."""
    path, _ = synthetic_zoo
    fsspec.register_implementation("rangecount", _RangeCountingFS, clobber=True)
    _RangeCountingFS.files = {f"/zoo/{p.relative_to(path)}": p.read_bytes() for p in path.rglob("*") if p.is_file()}
    zoo = open_zoo("rangecount:///zoo")
    total = sum(f.bytes for f in zoo.manifest.files)
    _RangeCountingFS.fetched = 0
    zoo.verify(progress=False)
    assert total <= _RangeCountingFS.fetched <= 1.05 * total
    _RangeCountingFS.fetched = 0
    nid = zoo.ids[0]
    zoo.weights(nid)
    row = zoo.row(nid)
    assert _RangeCountingFS.fetched <= 1.05 * row["byte_length"] + 2**16  # the network, plus its shard's header


def test_sha256_of_a_remote_file_fetches_it_exactly_once():
    from weightzoo.format.manifest import sha256_file

    fsspec.register_implementation("rangecount", _RangeCountingFS, clobber=True)
    data = bytes(range(256)) * 400  # 100 kB, read in 4 kB chunks: 25 range requests
    _RangeCountingFS.files = {"/blob": data}
    _RangeCountingFS.fetched = 0
    digest, size = sha256_file(_RangeCountingFS(), "/blob", chunk=4096)
    assert size == len(data) and digest == __import__("hashlib").sha256(data).hexdigest()
    assert _RangeCountingFS.fetched == len(data)  # a read-ahead cache would fetch up to twice that


def test_one_snapshot_of_a_remote_network_fetches_only_that_snapshot(synthetic_zoo):
    path, written = synthetic_zoo
    fsspec.register_implementation("rangecount", _RangeCountingFS, clobber=True)
    _RangeCountingFS.files = {f"/zoo/{p.relative_to(path)}": p.read_bytes() for p in path.rglob("*") if p.is_file()}
    zoo = open_zoo("rangecount:///zoo")
    nid = zoo.ids[0]
    zoo.weights(nid, snapshot=1)  # opens the shard (its header) first
    _RangeCountingFS.fetched = 0
    w = zoo.weights(nid, snapshot=20)
    one_snapshot = zoo.row(nid)["byte_length"] // 20
    assert _RangeCountingFS.fetched <= 1.05 * one_snapshot
    assert all(np.array_equal(w[k].numpy(), written[nid][k][19]) for k in w)
    assert torch.equal(zoo.flat(nid, 20), torch.cat([t.reshape(-1) for t in w.values()]))
    # with check=True the network's sha256 covers every snapshot: all of its bytes are read
    _RangeCountingFS.fetched = 0
    zoo.weights(nid, snapshot=20, check=True)
    assert _RangeCountingFS.fetched >= zoo.row(nid)["byte_length"]


def test_open_shards_are_bounded_shared_by_views_and_closed(synthetic_zoo):
    from weightzoo.errors import ConfigError
    from weightzoo.zoo import Zoo

    path, written = synthetic_zoo
    opened = open_zoo(path)
    assert len(opened.manifest.shards) > 1
    with pytest.raises(ConfigError, match=r"max_open_shards=0; expected at least 1"):
        Zoo(opened.fs, opened.root, opened.manifest, opened.index, max_open_shards=0)
    with Zoo(opened.fs, opened.root, opened.manifest, opened.index, max_open_shards=1) as zoo:
        view = zoo.split("train")
        for nid in zoo.ids:  # networks across several shards, read through the zoo and a view of it
            source = view if nid in view.ids else zoo
            got = source.read_arrays(nid)
            assert all(np.array_equal(got[k], written[nid][k], equal_nan=True) for k in written[nid])
            assert len(zoo._shards._open) == 1  # the view shares the zoo's cache: never more than the bound
        arrays = zoo.read_arrays(zoo.ids[0])
    assert zoo._shards._open == {}  # closed on leaving the block; arrays already returned stay readable
    assert np.array_equal(arrays["out.bias"], written[zoo.ids[0]]["out.bias"], equal_nan=True)
    assert zoo.read_arrays(zoo.ids[-1])["out.bias"].shape[0] == 20  # reading again reopens


def test_read_arrays_takes_a_snapshot_selection_and_the_other_readers_agree(synthetic_zoo):
    path, written = synthetic_zoo
    with open_zoo(path) as zoo:
        nid = zoo.ids[0]
        some = zoo.read_arrays(nid, "19..20")
        listed = zoo.read_arrays(nid, [20, 19])  # a list keeps its own order
        for k, v in written[nid].items():
            assert some[k].tobytes() == v[18:20].tobytes() and listed[k][0].tobytes() == v[19].tobytes()
            assert zoo.weights(nid, 19)[k].numpy().tobytes() == v[18].tobytes()
        flat = np.concatenate([v[19].ravel() for v in written[nid].values()])
        assert zoo.flat(nid, 20).numpy().tobytes() == flat.tobytes()
