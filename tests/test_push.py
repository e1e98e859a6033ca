"""``python -m builder.push``: verification first, card included, manifest last, against a local stand-in Hub."""

from __future__ import annotations

import fnmatch
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest

from builder import push as push_module
from builder.push import main, push, upload_plan
from tests.conftest import write_synthetic_zoo
from weightzoo import open_zoo
from weightzoo.errors import ChecksumError, ConfigError, ZooNotFoundError


class StandInApi:
    """The part of ``huggingface_hub.HfApi`` that push uses (2.x: ``upload_folder``), writing into a folder laid
    out like ``hf://``: ``<hub>/datasets/<org>/<name>``."""

    def __init__(self, root: Path):
        self.hub, self.calls = root, []

    def _repo(self, repo_id: str, repo_type: str) -> Path:
        assert repo_type == "dataset"
        return self.hub / "datasets" / repo_id

    def create_repo(self, repo_id, *, repo_type, private, exist_ok):
        self.calls.append(("create_repo", repo_id, private))
        self._repo(repo_id, repo_type).mkdir(parents=True, exist_ok=exist_ok)

    def create_branch(self, repo_id, *, repo_type, branch, exist_ok):
        self.calls.append(("create_branch", repo_id, branch))

    def _copy(self, folder_path, repo, allow_patterns):
        for file in sorted(Path(folder_path).rglob("*")):
            rel = file.relative_to(folder_path).as_posix()
            if file.is_file() and any(fnmatch.fnmatch(rel, p) for p in allow_patterns):
                (repo / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(file, repo / rel)
                self.calls.append(("file", rel))

    def upload_folder(self, *, repo_id, folder_path, repo_type, revision, allow_patterns, commit_message):
        self.calls.append(("upload_folder", repo_id, revision))
        self._copy(folder_path, self._repo(repo_id, repo_type), allow_patterns)

    def upload_file(self, *, path_or_fileobj, path_in_repo, repo_id, repo_type, revision, commit_message=None):
        data = path_or_fileobj if isinstance(path_or_fileobj, bytes) else Path(path_or_fileobj).read_bytes()
        (self._repo(repo_id, repo_type) / path_in_repo).write_bytes(data)
        self.calls.append(("file", path_in_repo))


class OldStandInApi(StandInApi):
    """huggingface_hub < 2, where the large-folder upload is ``upload_large_folder``."""

    def upload_large_folder(self, *, repo_id, folder_path, repo_type, revision, allow_patterns):
        self.calls.append(("upload_large_folder", repo_id, revision))
        self._copy(folder_path, self._repo(repo_id, repo_type), allow_patterns)

    def upload_folder(self, **kwargs):
        raise AssertionError("upload_large_folder should be preferred")


@pytest.fixture(autouse=True)
def _offline_datasets(monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_UPDATE_DOWNLOAD_COUNTS", False)


@pytest.mark.parametrize("api_class", [StandInApi, OldStandInApi])
def test_push_uploads_a_verified_zoo_that_loads_back(tmp_path, hub, api_class):
    written = write_synthetic_zoo(tmp_path / "zoo", 3, preset="nws_fixed", diverged=())
    (tmp_path / "zoo" / "notes.txt").write_text("not part of the zoo")
    api = api_class(hub)
    url = push(str(tmp_path / "zoo"), "org/nws-fixed", private=True, api=api, progress=False)
    assert url == "hf://datasets/org/nws-fixed"
    assert api.calls[0] == ("create_repo", "org/nws-fixed", True)
    uploaded = [c[1] for c in api.calls if c[0] == "file"]
    assert uploaded[-1] == "manifest.json" and "README.md" in uploaded  # card rendered, manifest committed last
    repo = hub / "datasets" / "org" / "nws-fixed"
    assert not (repo / "notes.txt").exists()
    for entry in open_zoo(tmp_path / "zoo").manifest.files:
        assert (repo / entry.path).read_bytes() == (tmp_path / "zoo" / entry.path).read_bytes()
    assert "config_name: index" in (repo / "README.md").read_text()
    open_zoo(url).verify()
    ds = datasets.load_dataset("weightzoo", data_dir=url, cache_dir=str(tmp_path / "cache"), snapshots=20)
    row = ds["train"].with_format("numpy")[0]
    assert row["weights"][0].tobytes() == np.concatenate([a[19].ravel() for a in written[0].values()]).tobytes()


def test_push_to_a_branch(tmp_path, hub):
    write_synthetic_zoo(tmp_path / "zoo", 1, preset="nws_fixed", diverged=())
    api = StandInApi(hub)
    assert push(str(tmp_path / "zoo"), "org/z", revision="v1", api=api, progress=False) == "hf://datasets/org/z@v1"
    assert ("create_branch", "org/z", "v1") in api.calls and ("upload_folder", "org/z", "v1") in api.calls


def test_push_refuses_bad_zoos_before_uploading(tmp_path, hub):
    write_synthetic_zoo(tmp_path / "zoo", 2, preset="nws_fixed", diverged=())
    api = StandInApi(hub)
    with pytest.raises(ConfigError, match="org or user"):
        push(str(tmp_path / "zoo"), "nws-fixed", api=api)
    with pytest.raises(ZooNotFoundError, match="not a zoo"):
        push(str(tmp_path / "empty"), "org/z", api=api)
    shard = next((tmp_path / "zoo" / "shards").glob("*.safetensors"))
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=shard.name):
        push(str(tmp_path / "zoo"), "org/z", api=api, progress=False)
    assert api.calls == []


def test_cli(tmp_path, hub, monkeypatch, capsys):
    write_synthetic_zoo(tmp_path / "zoo", 2, preset="nws_fixed", diverged=())
    assert main([str(tmp_path / "zoo"), "--repo", "org/z", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[: len(upload_plan(open_zoo(tmp_path / "zoo")))][-1] == "manifest.json"
    assert "would upload" in out and not (hub / "datasets" / "org" / "z").exists()
    api = StandInApi(hub)
    monkeypatch.setattr(push_module, "_hf_api", lambda token: api)
    assert main([str(tmp_path / "zoo"), "--repo", "org/z", "--private"]) == 0
    assert "hf://datasets/org/z" in capsys.readouterr().out and (hub / "datasets/org/z/manifest.json").exists()
    monkeypatch.setenv("WEIGHTZOO_HOME", str(tmp_path / "home"))
    assert main(["--repo", "org/z"]) == 2  # default location holds no zoo
    assert "not a zoo" in capsys.readouterr().err


def test_a_converted_release_is_published_only_with_a_stated_licence(tmp_path, hub, capsys):
    """The authors state no licence for their weight data: push refuses in one line, before uploading anything,
    until --license says which the uploader has; it goes into the commit message."""
    from builder.push import main as push_main

    zoo = tmp_path / "release"
    write_synthetic_zoo(zoo, 2, preset="nws_fixed", diverged=(), generation={"source": {"kind": "nws_release"}})
    api = StandInApi(hub)
    with pytest.raises(ConfigError, match="states no licence|state no licence"):
        push(str(zoo), "org/release", api=api, progress=False)
    assert api.calls == []
    assert push_main([str(zoo), "--repo", "org/release", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--license" in err and len(err.splitlines()) == 1
    assert push(str(zoo), "org/release", api=api, progress=False, license="other") == "hf://datasets/org/release"


@pytest.mark.parametrize("converted", [False, True])
def test_pushed_weights_load_with_stock_datasets_in_an_interpreter_without_weightzoo(tmp_path, hub, converted):
    """The card's `weights` configuration, of a generated zoo and of a converted release: parquet rows (network,
    snapshot) that plain datasets reads, streams and formats as torch, equal to Zoo.flat bit for bit, with
    weightzoo impossible to import."""
    import json
    import subprocess
    import sys

    from builder.card import render_card

    zoo_path = tmp_path / "zoo"
    generation = {"source": {"kind": "nws_release", "subset": "main"}} if converted else None
    write_synthetic_zoo(zoo_path, 6, preset="nws_main", diverged=(), generation=generation)
    push(str(zoo_path), "org/parquet", api=StandInApi(hub), progress=False, license="other" if converted else None)
    if converted:  # the converted release's own card (this synthetic zoo got the generated one's)
        opened = open_zoo(zoo_path)
        card = render_card(opened.manifest, opened.index, template="nws_release_card.md.j2")
        assert "config_name: weights" in card and "license: other" in card
    repo = hub / "datasets" / "org" / "parquet"
    assert sorted(p.name for p in (repo / "weights").iterdir())[0] == "layout.json"
    code = f"""
import json, sys
assert "weightzoo" not in sys.modules
sys.modules["weightzoo"] = None  # any import of weightzoo now fails
import datasets, numpy as np
repo = {str(repo)!r}
out = {{}}
ds = datasets.load_dataset(repo, "weights", cache_dir={str(tmp_path / "cache")!r})
for split in ds:
    for row in ds[split].with_format("numpy"):
        out[f"{{int(row['network_id'])}}.{{int(row['snapshot'])}}"] = row["weights"].astype(np.float32).tobytes().hex()
torch_row = ds["train"].with_format("torch")[0]
assert str(torch_row["weights"].dtype) == "torch.float32"
streamed = next(iter(datasets.load_dataset(repo, "weights", split="train", streaming=True)))
assert f"{{streamed['network_id']}}.{{streamed['snapshot']}}" in out
print(json.dumps(out))
"""
    env = {**__import__("os").environ, "WEIGHTZOO_AUTOREGISTER": "0", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    zoo = open_zoo(zoo_path)
    assert len(rows) == 6 * 20 and {k.split(".")[0] for k in rows} == {str(i) for i in zoo.ids}
    for key, hexed in rows.items():
        nid, snapshot = map(int, key.split("."))
        assert bytes.fromhex(hexed) == zoo.flat(nid, snapshot).numpy().tobytes(), key


def test_pushed_zoo_has_croissant_metadata_that_mlcroissant_validates_and_reads(tmp_path, hub):
    """croissant.json (MLCommons Croissant 1.0): validated by mlcroissant, whose records of both record sets are
    the zoo's (the index's network ids; the weights equal Zoo.flat)."""
    mlc = pytest.importorskip("mlcroissant")
    zoo_path = tmp_path / "zoo"
    write_synthetic_zoo(zoo_path, 3, preset="nws_fixed", diverged=())
    push(str(zoo_path), "org/croissant", api=StandInApi(hub), progress=False)
    repo = hub / "datasets" / "org" / "croissant"
    dataset = mlc.Dataset(jsonld=str(repo / "croissant.json"))  # raises on validation errors
    zoo = open_zoo(zoo_path)
    ids = sorted(int(r["networks/network_id"]) for r in dataset.records("networks"))
    assert ids == zoo.ids
    record = next(iter(dataset.records("weights")))
    nid, snapshot = int(record["weights/network_id"]), int(record["weights/snapshot"])
    values = np.asarray(record["weights/weights"], dtype=np.float32)
    assert values.tobytes() == zoo.flat(nid, snapshot).numpy().tobytes()


def test_a_converted_small_cnn_zoo_is_published_with_its_licence_weights_and_croissant(tmp_path, hub):
    """A converted zoo of another family whose authors state a licence (CC-BY 4.0) is pushed without --license;
    its weights parquet holds all 9 snapshots of every network, equal to Zoo.flat, with its own columns; its
    Croissant document validates and cites the source."""
    import pyarrow.parquet as pq

    from builder.convert_smallcnnzoo import convert
    from tests.fake_sources import write_smallcnnzoo

    write_smallcnnzoo(tmp_path / "mnist", runs=4, crashed=1)
    convert(tmp_path / "mnist", tmp_path / "zoo", progress=False)
    push(str(tmp_path / "zoo"), "org/scz", api=StandInApi(hub), progress=False)
    repo = hub / "datasets" / "org" / "scz"
    zoo = open_zoo(tmp_path / "zoo")
    table = pq.read_table(sorted((repo / "weights").glob("*.parquet")))
    assert table.num_rows == 4 * 9 and "activation" in table.column_names and "optimizer" in table.column_names
    for row in table.to_pylist():
        expected = zoo.flat(row["network_id"], row["snapshot"]).numpy()
        assert np.array_equal(np.asarray(row["weights"], np.float32), expected, equal_nan=True)
        assert row["epoch"] == zoo.row(row["network_id"])["snapshot_epochs"][row["snapshot"] - 1]
    assert "config_name: weights" in (repo / "README.md").read_text()
    mlc = pytest.importorskip("mlcroissant")
    dataset = mlc.Dataset(jsonld=str(repo / "croissant.json"))
    assert sorted(int(r["networks/network_id"]) for r in dataset.records("networks")) == zoo.ids
    assert "unterthiner2020predicting" in (repo / "croissant.json").read_text()
