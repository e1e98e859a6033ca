"""The ``datasets`` builder: registration, locations (local, memory://, hf:// stand-in, default), options,
features, exact rebuild of modules, streaming, the plain-parquet index, caching and bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import fsspec
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from packaging.specifiers import SpecifierSet

import weightzoo
import weightzoo.zoo as zoo_module
from builder.engine.space import PRESETS, get_preset, split_of
from tests.conftest import write_synthetic_zoo
from weightzoo import hf, model_from_row, open_zoo
from weightzoo.errors import (
    ConfigError,
    FormatVersionError,
    ShardError,
    UnknownNameError,
    WeightZooError,
    ZooFormatError,
    ZooNotFoundError,
)
from weightzoo.format.index import NetworkRecord
from weightzoo.format.layout import METRICS, NUM_SNAPSHOTS, STATUSES
from weightzoo.format.writer import ZooWriter
from weightzoo.hf import builder as hf_builder
from weightzoo.hf import registration
from weightzoo.hparams import CATEGORICAL, code_of
from weightzoo.model import NWSNet, initialize_, state_tensors

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _offline_datasets(monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_UPDATE_DOWNLOAD_COUNTS", False)
    datasets.disable_progress_bars()


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """(path, weights by id) of a 6-network nws_main zoo (network 4 is the test split, 2 diverged)."""
    path = tmp_path_factory.mktemp("hf") / "zoo"
    return path, write_synthetic_zoo(path, 6)


@pytest.fixture(scope="module")
def finite_zoo(tmp_path_factory):
    path = tmp_path_factory.mktemp("hf-finite") / "zoo"
    write_finite_zoo(path)
    return path


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("hf-cache"))


def load(*args, cache_dir, **kwargs):
    return datasets.load_dataset("weightzoo", *args, cache_dir=cache_dir, **kwargs)


def write_finite_zoo(path, n=3):
    """A small nws_fixed zoo whose networks compute finite outputs (initialised weights, positive variances)."""
    space, rng = get_preset("nws_fixed"), np.random.default_rng(0)
    generation = {"preset": "nws_fixed", "generation_version": 2, "train": {"bn_eps": 1e-5}}  # as generate records
    with ZooWriter(path, name="finite", zoo_seed=0, generation=generation) as writer:
        for i in range(n):
            hp = space.sample(0, i)
            net = initialize_(
                NWSNet(hp.architecture, hp.activation), "glorot_uniform", torch.Generator().manual_seed(i)
            )
            weights = {}
            for name, t in state_tensors(net).items():
                snaps = t.numpy()[None] + 0.05 * rng.standard_normal((NUM_SNAPSHOTS, *t.shape)).astype(np.float32)
                weights[name] = np.abs(snaps) + 0.5 if name.endswith("running_var") else snaps
            history = {m: list(rng.random(20)) for m in METRICS}
            record = NetworkRecord(i, split_of(i), "completed", 0, hp, 19, list(range(20)), history, history)
            writer.add(record, weights)


# ------------------------------------------------------------------------------------------------ registration


def test_registration_fails_loudly_if_datasets_changes(zoo, cache):
    """If a datasets release moves the internals the registration relies on, this fails (see hf.register)."""
    hf.register()  # raises WeightZooError naming the missing piece
    assert hf.is_registered()
    assert datasets.packaged_modules._PACKAGED_DATASETS_MODULES["weightzoo"][0] == "weightzoo.hf.builder"
    builder = datasets.load_dataset_builder("weightzoo", data_dir=str(zoo[0]), cache_dir=cache)
    assert isinstance(builder, hf_builder.WeightZoo) and builder.config.data_dir == str(zoo[0])
    pin = next(line for line in (ROOT / "pyproject.toml").read_text().splitlines() if '"datasets' in line)
    assert registration.SUPPORTED_DATASETS in pin, (
        f"pyproject pin {pin.strip()} and registration.SUPPORTED_DATASETS disagree"
    )
    assert datasets.__version__ in SpecifierSet(registration.SUPPORTED_DATASETS), "datasets outside the tested range"


def test_registration_names_what_a_datasets_release_removed(monkeypatch):
    monkeypatch.delattr(datasets.load, "PackagedDatasetModuleFactory")
    with pytest.raises(WeightZooError, match=r"PackagedDatasetModuleFactory.*datasets>=5\.2,<6"):
        hf.register()
    with pytest.warns(RuntimeWarning, match="cannot register"):  # what `import datasets` shows, never an error
        registration._register_quietly(datasets.load)


def python(code: str, *args: str) -> None:
    """Run ``code`` in a fresh interpreter without the start-up hook (``tests/test_autoregister.py`` tests that):
    here ``import weightzoo`` alone registers the builder."""
    env = {**os.environ, "WEIGHTZOO_AUTOREGISTER": "0"}
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code, *args], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_import_is_cheap_and_registers_when_datasets_is_imported():
    python(
        "import sys, weightzoo\n"
        "assert 'datasets' not in sys.modules, 'import weightzoo imported datasets'\n"
        "import datasets\n"
        "assert weightzoo.hf.is_registered(), 'not registered after import datasets'\n"
        "from datasets.load import PackagedDatasetModuleFactory as F\n"
        "csv = F(name='csv', data_files='pyproject.toml').get_module()  # other builders are untouched\n"
        "assert csv.module_path.endswith('csv'), csv.module_path\n"
    )


def test_index_loads_with_plain_datasets_then_registration_when_datasets_came_first(zoo, cache):
    python(
        "import sys, datasets\n"
        "datasets.config.HF_UPDATE_DOWNLOAD_COUNTS = False\n"
        "files = {'networks': sys.argv[1] + '/index.parquet'}\n"
        "index = datasets.load_dataset('parquet', data_files=files, cache_dir=sys.argv[2])['networks']\n"
        "assert index.num_rows == 6 and {'network_id', 'split', 'optimizer', 'test_accuracy'} <= set(index.features)\n"
        "assert 'weightzoo' not in sys.modules\n"
        "import weightzoo\n"
        "assert weightzoo.hf.is_registered(), 'not registered by import weightzoo after datasets'\n",
        str(zoo[0]),
        cache,
    )
    hf.register_lazily()  # datasets is imported here too: registers at once, idempotently
    assert hf.is_registered()


def test_configs_are_the_presets():
    assert set(hf_builder.PRESET_CONFIGS) == set(PRESETS)
    assert [c.name for c in hf_builder.WeightZoo.BUILDER_CONFIGS] == ["default", *hf_builder.PRESET_CONFIGS]


# ------------------------------------------------------------------------------------------------ contents


def test_local_zoo_network_rows_flat_view(zoo, cache):
    path, written = zoo
    ds = load(data_dir=str(path), cache_dir=cache)
    index = pq.read_table(path / "index.parquet").to_pylist()
    assert {s: ds[s].num_rows for s in ds} == {"train": 5, "test": 1}
    features = ds["train"].features
    for name, vocab in CATEGORICAL.items():
        assert isinstance(features[name], datasets.ClassLabel)
        assert features[name].names == [str(v).lower() if isinstance(v, bool) else str(v) for v in vocab]
    assert features["status"].names == list(STATUSES) and features["learning_rate"] == datasets.Value("float64")
    rows = {r["network_id"]: r for s in ds for r in ds[s].remove_columns("weights")}  # python values
    weights = {int(r["network_id"]): r["weights"] for s in ds for r in ds[s].with_format("numpy")}
    for ref in index:
        row = rows[ref["network_id"]]
        assert row["optimizer"] == code_of("optimizer", ref["optimizer"])
        assert features["batch_size"].int2str(int(row["batch_size"])) == str(ref["batch_size"])
        assert row["learning_rate"] == ref["learning_rate"] and list(row["snapshot"]) == list(range(1, 21))
        assert row["test_accuracy"] == ref["test_accuracy"] and row["history_val_loss"] == ref["history_val_loss"]
        w, got = written[ref["network_id"]], weights[ref["network_id"]]
        flat = np.stack([np.concatenate([a[s].ravel() for a in w.values()]) for s in range(NUM_SNAPSHOTS)])
        assert got.dtype == np.float32 and got.tobytes() == flat.tobytes()  # bit-exact, NaNs included
        conv = np.concatenate([a[19].ravel() for n, a in w.items() if n.startswith("conv")])
        assert row["weightn_conv"] == conv.size and np.array_equal(got[19][: conv.size], conv)


def test_snapshot_rows_and_range(zoo, cache):
    path, written = zoo
    ds = load(data_dir=str(path), cache_dir=cache, snapshots="11..20", granularity="snapshot", split="train")
    assert ds.num_rows == 5 * 10 and ds.features["snapshot"] == datasets.Value("int32")
    index = {r["network_id"]: r for r in pq.read_table(path / "index.parquet").to_pylist()}
    for row in ds.with_format("numpy"):
        nid, s = int(row["network_id"]), int(row["snapshot"])
        assert 11 <= s <= 20 and row["epoch"] == index[nid]["snapshot_epochs"][s - 1]
        assert row["val_accuracy"] == index[nid]["val_accuracy"][s - 1]
        flat = np.concatenate([a[s - 1].ravel() for a in written[nid].values()])
        assert row["weights"].tobytes() == flat.tobytes()
    picked = load(data_dir=str(path), cache_dir=cache, snapshots=[1, 20], split="test").with_format("numpy")[0]
    assert list(picked["snapshot"]) == [1, 20] and picked["weights"].shape[0] == 2


@pytest.mark.parametrize("granularity", ["network", "snapshot"])
def test_layers_view_has_shapes_and_exact_values(zoo, cache, granularity):
    path, written = zoo
    ds = load(data_dir=str(path), cache_dir=cache, view="layers", snapshots=[5, 20], granularity=granularity)
    assert "weights" not in ds["train"].column_names
    row = ds["test"].with_format("numpy")[0 if granularity == "network" else 1]  # network 4, snapshot 20
    layers = row["layers"]
    assert [entry["name"] for entry in layers] == list(written[4])
    for entry in layers:
        stored = written[4][entry["name"]]
        assert tuple(entry["shape"]) == stored.shape[1:]
        values = np.stack(list(entry["values"])) if granularity == "network" else entry["values"]
        expected = stored[[4, 19]] if granularity == "network" else stored[19]
        assert values.reshape(expected.shape).tobytes() == expected.tobytes()


@pytest.mark.parametrize("view", ["flat", "layers"])
@pytest.mark.parametrize("granularity", ["network", "snapshot"])
def test_model_from_torch_row_rebuilds_the_module_exactly(finite_zoo, cache, view, granularity, one_thread):
    zoo = open_zoo(finite_zoo)
    ds = load(data_dir=str(finite_zoo), cache_dir=cache, view=view, granularity=granularity, snapshots="19..20")
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for row in ds["train"].with_format("torch"):
        nid = int(row["network_id"])
        snapshot = None if granularity == "network" else int(row["snapshot"])
        net, ref = model_from_row(row), zoo.model(nid, snapshot or 20)
        assert type(net) is NWSNet and not net.training
        assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), ref.state_dict().values(), strict=True))
        with torch.no_grad():
            out = net(x)
            assert torch.isfinite(out).all() and torch.equal(out, ref(x))
        if granularity == "network":
            assert torch.equal(model_from_row(row, snapshot=19)(x), zoo.model(nid, 19)(x))
            with pytest.raises(ConfigError, match=r"holds snapshots \[19, 20\]"):
                model_from_row(row, snapshot=3)
    python_row = ds["train"][0]  # plain python lists rebuild the same module
    assert torch.equal(model_from_row(python_row)(x), model_from_row(ds["train"].with_format("torch")[0])(x))


# ------------------------------------------------------------------------------------------------ locations


def test_memory_url(cache):
    written = write_synthetic_zoo("memory://hf-memory-zoo", 3, preset="nws_fixed", diverged=())
    try:
        ds = load(data_dir="memory://hf-memory-zoo", cache_dir=cache, snapshots=20, split="train")
        row = ds.with_format("numpy")[0]
        assert (
            ds.num_rows == 3
            and row["weights"][0].tobytes() == np.concatenate([a[19].ravel() for a in written[0].values()]).tobytes()
        )
    finally:
        fsspec.filesystem("memory").rm("/hf-memory-zoo", recursive=True)


def test_hub_repository_through_hf_urls(zoo, hub, cache):
    path, written = zoo
    shutil.copytree(path, hub / "datasets" / "org" / "nws")
    ds = load(data_dir="hf://datasets/org/nws", cache_dir=cache, snapshots=20, split="test", token="hf_fake")
    assert (
        ds.with_format("numpy")[0]["weights"][0].tobytes()
        == np.concatenate([a[19].ravel() for a in written[4].values()]).tobytes()
    )
    streamed = next(iter(load(data_dir="hf://datasets/org/nws", cache_dir=cache, streaming=True, split="test")))
    assert streamed["network_id"] == 4


def test_default_location_and_named_zoos(tmp_path, monkeypatch, cache):
    monkeypatch.setenv("WEIGHTZOO_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    write_synthetic_zoo(tmp_path / "home" / "demo", 2, preset="demo", diverged=())
    write_synthetic_zoo(tmp_path / "home" / "nws_fixed", 5, preset="nws_fixed", diverged=())
    write_synthetic_zoo(tmp_path / "home" / "mnist24", 1, preset="nws_fixed", diverged=())
    assert load(cache_dir=cache, split="train").num_rows == 2  # plain load_dataset("weightzoo")
    assert load("demo", cache_dir=cache, split="train").num_rows == 2
    fixed = load("nws_fixed", cache_dir=cache, snapshots=20)
    assert {s: fixed[s].num_rows for s in fixed} == {"train": 4, "test": 1}
    assert load("mnist24", cache_dir=cache, split="train").num_rows == 1  # any zoo the builder wrote there
    with pytest.raises(ZooNotFoundError, match=r"builder.generate --preset nws_main.*demo, mnist24, nws_fixed"):
        load("nws_main", cache_dir=cache)


# ------------------------------------------------------------------------------------------------ streaming, cache


def test_streaming_reads_shards_lazily_and_matches(zoo, cache, monkeypatch):
    path, _ = zoo
    opened = []
    original = zoo_module.ShardReader

    def spy(fs, root, rel, **kwargs):
        opened.append(rel)
        return original(fs, root, rel, **kwargs)

    monkeypatch.setattr(zoo_module, "ShardReader", spy)  # the builder reads through Zoo
    stream = load(data_dir=str(path), cache_dir=cache, streaming=True, granularity="snapshot", snapshots=20)
    assert isinstance(stream["train"], datasets.IterableDataset) and opened == []
    first = next(iter(stream["train"].with_format("numpy")))
    assert len(opened) == 1  # one shard opened for the first row, nothing read ahead
    prepared = load(data_dir=str(path), cache_dir=cache, granularity="snapshot", snapshots=20, split="train")
    assert first["weights"].tobytes() == prepared.with_format("numpy")[0]["weights"].tobytes()
    assert [r["network_id"] for r in stream["train"]] == prepared["network_id"]


def test_cache_key_follows_options_and_manifest(tmp_path, cache):
    path = tmp_path / "zoo"
    write_synthetic_zoo(path, 2, preset="nws_fixed", seed=0, diverged=())
    ids = {
        datasets.load_dataset_builder("weightzoo", data_dir=str(path), cache_dir=cache, **kw).config_id
        for kw in ({}, {"snapshots": 20}, {"granularity": "snapshot"}, {"view": "layers"})
    }
    assert len(ids) == 4
    before = load(data_dir=str(path), cache_dir=cache, snapshots=20, split="train")["weights"][0][0][:4]
    shutil.rmtree(path)
    write_synthetic_zoo(path, 2, preset="nws_fixed", seed=1, diverged=())  # regenerated in place
    after = load(data_dir=str(path), cache_dir=cache, snapshots=20, split="train")["weights"][0][0][:4]
    assert before != after  # not served from the stale cache


# ------------------------------------------------------------------------------------------------ plain datasets


def test_index_config_of_the_card_loads_with_plain_datasets(zoo, tmp_path, cache):
    pytest.importorskip("jinja2")
    from builder.card import render_card

    repo = tmp_path / "repo"  # what a Hub repository holds, read as a local dataset folder by plain datasets
    shutil.copytree(zoo[0], repo)
    opened = open_zoo(repo)
    (repo / "README.md").write_text(render_card(opened.manifest, opened.index))
    from_card = datasets.load_dataset(str(repo), "index", cache_dir=cache)  # the card's YAML `configs`
    assert sum(d.num_rows for d in from_card.values()) == 6 and "shard" in from_card[next(iter(from_card))].features


# ------------------------------------------------------------------------------------------------ bad input


def test_unknown_config_option_and_split_list_the_valid_ones(zoo, cache):
    path = str(zoo[0])
    with pytest.raises(UnknownNameError, match="nws_mian.*default, demo, nws_fixed, nws_main"):
        load("nws_mian", data_dir=path, cache_dir=cache)
    with pytest.raises(UnknownNameError, match="granulrity.*snapshots, granularity, view"):
        load(data_dir=path, cache_dir=cache, granulrity="snapshot")
    with pytest.raises(UnknownNameError, match="pixels.*flat, layers"):
        load(data_dir=path, cache_dir=cache, view="pixels")
    with pytest.raises(ConfigError, match="from 1"):
        load(data_dir=path, cache_dir=cache, snapshots="0..3")
    with pytest.raises(ValueError, match=r"validation.*\['train', 'test'\]"):
        load(data_dir=path, cache_dir=cache, split="validation")
    with pytest.raises(ValueError, match=r"validation.*\['train', 'test'\]"):
        load(data_dir=path, cache_dir=cache, split="validation", streaming=True)
    with pytest.raises(ConfigError, match="data_dir"):
        load(data_files=str(zoo[0] / "index.parquet"), cache_dir=cache)
    with pytest.raises(ConfigError, match="preset 'nws_main'"):
        load("nws_fixed", data_dir=path, cache_dir=cache)


def test_not_a_zoo_and_other_format_version_name_the_file(zoo, tmp_path, cache):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.parquet").write_bytes(b"x")
    with pytest.raises(ZooNotFoundError, match=r"photos.*no manifest.json"):
        load(data_dir=str(tmp_path / "photos"), cache_dir=cache)
    with pytest.raises(ZooNotFoundError, match="no such folder"):
        load(data_dir=str(tmp_path / "nowhere"), cache_dir=cache)
    old = tmp_path / "old"
    shutil.copytree(zoo[0], old)
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["format_version"] = 0
    (old / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FormatVersionError, match=r"old/manifest.json.*version 0.*builder.generate"):
        load(data_dir=str(old), cache_dir=cache)


@pytest.mark.parametrize("streaming", [False, True])
def test_corrupted_or_truncated_shard_names_the_file(zoo, tmp_path, cache, streaming):
    bad = tmp_path / "bad"
    shutil.copytree(zoo[0], bad)
    shard = bad / open_zoo(bad).row(4)["shard"]  # the test split's shard
    data = bytearray(shard.read_bytes())
    data[-5] ^= 0xFF
    shard.write_bytes(bytes(data))

    def read():
        ds = load(data_dir=str(bad), cache_dir=cache, split="test", streaming=streaming)
        return list(ds) if streaming else ds

    with pytest.raises(ShardError, match=rf"{shard.name}.*sha256") as e:
        read()
    assert isinstance(e.value, datasets.exceptions.DatasetGenerationError)  # raised as is, not wrapped
    shard.write_bytes(bytes(data[:-100]))
    with pytest.raises(ShardError, match=rf"{shard.name}.*truncated"):
        read()


def test_model_from_row_rejects_foreign_rows():
    with pytest.raises(ZooFormatError, match="'filter_size'"):
        model_from_row({"weights": [0.0]})
    assert weightzoo.model_from_row is hf.model_from_row


def test_unknown_weight_dtype_in_the_manifest_is_refused_naming_it(finite_zoo, tmp_path, cache):
    """The features follow the manifest's dtype (float32, or float64 for converted float64 releases; older
    manifests kept it in generation.dtype); anything else is refused, naming the manifest and the value."""
    bad = tmp_path / "zoo"
    shutil.copytree(finite_zoo, bad)
    manifest = json.loads((bad / "manifest.json").read_text())
    for older in (False, True):
        if older:
            del manifest["dtype"]
            manifest["generation"]["dtype"] = "float16"
        else:
            manifest["dtype"] = "float16"
        (bad / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(ZooFormatError, match=r"manifest\.json: dtype is 'float16'; expected float32 or float64"):
            load(data_dir=str(bad), cache_dir=cache)


def test_public_load_dataset_equals_the_registered_builder_without_private_datasets_calls(zoo, cache, monkeypatch):
    """weightzoo.load_dataset drives the builder class with public datasets calls only: the same rows as
    load_dataset("weightzoo", ...), a split, streaming, and it works with the registration hook removed."""
    path, written = zoo
    via_name = load(data_dir=str(path), cache_dir=cache, snapshots=20, granularity="snapshot")
    import datasets.load

    def private(*args, **kwargs):
        pytest.fail("the name-resolving hook was used")

    monkeypatch.setattr(datasets.load.PackagedDatasetModuleFactory, "get_module", private)
    public = weightzoo.load_dataset(path, cache_dir=cache, snapshots=20, granularity="snapshot")
    assert sorted(public) == sorted(via_name) == ["test", "train"]
    for split in public:
        a, b = public[split].with_format("numpy")[:], via_name[split].with_format("numpy")[:]
        assert a["network_id"].tolist() == b["network_id"].tolist()
        pairs = zip(a["weights"], b["weights"], strict=True)
        assert all(np.asarray(x).tobytes() == np.asarray(y).tobytes() for x, y in pairs)
    train = weightzoo.load_dataset(str(path), split="train", cache_dir=cache, snapshots=20, granularity="snapshot")
    assert train.num_rows == public["train"].num_rows
    streamed = weightzoo.load_dataset(path, split="test", streaming=True, snapshots=20, granularity="snapshot")
    row = next(iter(streamed.with_format("numpy")))
    nid = int(row["network_id"])
    assert row["weights"].tobytes() == np.concatenate([a[19].ravel() for a in written[nid].values()]).tobytes()
    with pytest.raises(UnknownNameError):
        weightzoo.load_dataset(path, cache_dir=cache, colour="blue")


def test_every_private_touch_point_exists_in_the_installed_datasets():
    """registration.TOUCH_POINTS names every datasets internal weightzoo relies on; each must resolve here (a
    datasets release that drops one fails this test by name)."""
    import importlib

    for dotted, _why, _checked in registration.TOUCH_POINTS:
        parts = dotted.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
                break
            except ImportError:
                continue
        for attr in parts[cut:]:
            assert hasattr(obj, attr), f"datasets {datasets.__version__} lacks {dotted}"
            obj = getattr(obj, attr)
