"""builder.convert_nws: fake releases in the authors' exact format (headerless float64 files, split CSVs with the
authors' absolute paths) converted and read back: flat vectors, split, metrics, epochs, verify, load_dataset;
broken releases (every problem reported together), non-finite values, --resume, --subset, --float64."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import weightzoo
from builder import convert_nws
from builder.convert_nws import convert, main
from builder.nws_release import CSV_COLUMNS, parse_code, resolve_folder, snapshot_file, split_file
from weightzoo.architecture import Architecture
from weightzoo.errors import ConfigError, ReleaseError, ShardError
from weightzoo.format.layout import METRICS
from weightzoo.format.shards import ShardReader, ShardWriter

FOREIGN = "/home/gabei62/nws/data"  # where the authors' CSVs say the networks are
SMALL = {"filter_size": 3, "depth_conv": 3, "depth_fc": 2, "width_conv": 4, "width_fc": 64}
DEEP = {"filter_size": 3, "depth_conv": 5, "depth_fc": 4, "width_conv": 4, "width_fc": 64}
MID = {"filter_size": 5, "depth_conv": 4, "depth_fc": 3, "width_conv": 4, "width_fc": 64}
FIXED = {"filter_size": 5, "depth_conv": 3, "depth_fc": 2, "width_conv": 8, "width_fc": 128}

# (subset, split, architecture, dataset, optimizer, activation, initialization, exports)
NETWORKS = [
    ("fixed", "train", FIXED, "mnist", 0, 0, 2, 23),
    ("fixed", "train", FIXED, "cifar10", 1, 3, 3, 41),
    ("fixed", "test", FIXED, "fashion", 2, 1, 0, 20),
    ("main", "train", SMALL, "svhn", 1, 2, 1, 57),
    ("main", "train", DEEP, "stl10", 2, 0, 3, 1001),
    ("main", "test", MID, "mnist", 0, 1, 2, 33),
]


def _network(root: Path, subset: str, number: int, arch: Architecture, exports: int, rng) -> dict:
    """One network folder in the released format; returns what was written."""
    folder = root / f"nws_{subset}" / f"{number:04d}"
    (folder / "weights").mkdir(parents=True)
    vectors = rng.standard_normal((20, arch.num_params))
    for s in range(20):
        vectors[s].astype("<f8").tofile(folder / "weights" / f"{s + 1:03d}.bin")
    errors = np.column_stack(
        [np.arange(exports) * 100.0, *(rng.uniform(0, 100, exports) for _ in range(4))]
    )  # step, train, valid, test, smoothed valid error %
    errors.astype("<f8").tofile(folder / "error.bin")
    stat = np.array([exports, (exports - 1) * 100.0, exports - 1.0, 12.5 * exports])
    stat.astype("<f8").tofile(folder / "stat.bin")
    (folder / "meta.csv").write_text("dataset,lrate\nmnist,0.001\n")
    return {"folder": folder, "vectors": vectors, "errors": errors, "stat": stat}


def write_release(root: Path, networks=NETWORKS, seed: int = 0) -> dict[tuple[str, int], dict]:
    """A fake release: network folders under nws_<subset>/, nws_fixed CSVs at the root, nws_main CSVs one folder
    below; the CSVs in the original column order with the authors' absolute paths. Returns {(csv, row): written}."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list[list]] = {split_file(s, p): [] for s in ("fixed", "main") for p in ("train", "test")}
    written = {}
    for number, (subset, split, arch_kw, dataset, opt, act, init, exports) in enumerate(networks, start=1):
        arch = Architecture(**arch_kw)
        net = _network(root, subset, number, arch, exports, rng)
        name = split_file(subset, split)
        rows[name].append(
            [dataset, float(rng.uniform(0.0002, 0.005)), 64, True, bool(number % 2), opt, act, init,
             *arch_kw.values(), arch.weightn_conv, arch.weightn_fc, f"{FOREIGN}/nws_{subset}/{number:04d}"]
        )  # fmt: skip
        written[(name, len(rows[name]))] = {**net, "row": rows[name][-1], "arch": arch}
    (root / "csv").mkdir(exist_ok=True)
    for name, body in rows.items():
        path = root / name if "fixed" in name else root / "csv" / name
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(CSV_COLUMNS)
            w.writerows(body)
    return written


def set_cell(root: Path, name: str, row: int, column: str, value: str) -> None:
    path = next(root.rglob(name))
    lines = list(csv.reader(path.open(newline="")))
    lines[row][lines[0].index(column)] = value
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(lines)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("release") / "nws"
    return root, write_release(root)


@pytest.fixture(scope="module")
def converted(release, tmp_path_factory):
    out = tmp_path_factory.mktemp("converted") / "zoo"
    convert(release[0], out, progress=False, max_shard_bytes=2**20)
    return out


@pytest.fixture
def small_release(tmp_path):
    """nws_main only, three small networks (fast to break and convert)."""
    root = tmp_path / "release"
    nets = [NETWORKS[3], NETWORKS[5], ("main", "train", MID, "cifar10", 1, 1, 1, 25), NETWORKS[4]]
    return root, write_release(root, nets, seed=1)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _ids(written):
    """Network id of each written (csv, row): the subset's base, the train file's rows, then the test file's."""
    counts = {name: sum(1 for n, _ in written if n == name) for name, _ in written}
    ids = {}
    for name, row in written:
        subset, split = name.removesuffix(".csv").split("_")[1:]
        before = counts.get(split_file(subset, "train"), 0) if split == "test" else 0
        ids[(name, row)] = convert_nws.ID_BASE[subset] + before + row - 1
    return ids


def test_round_trip_split_metrics_and_epochs(release, converted):
    _, written = release
    zoo = weightzoo.open_zoo(converted)
    ids = _ids(written)
    assert sorted(zoo.ids) == sorted(ids.values()) == [0, 1, 2, 100_000, 100_001, 100_002]
    for key, net in written.items():
        nid, row = ids[key], zoo.row(ids[key])
        assert row["split"] == key[0].removesuffix(".csv").split("_")[2]
        for s in (1, 2, 11, 20):  # float32-rounded released vector, value for value
            assert torch.equal(zoo.flat(nid, s), torch.from_numpy(net["vectors"][s - 1].astype(np.float32)))
        n_exports = net["errors"].shape[0]
        rows = np.round(np.linspace(0, net["stat"][0] - 1, 20)).astype(int)  # the authors' util.import_weights
        assert row["n_epochs"] == n_exports - 1 and row["snapshot_epochs"] == rows.tolist()
        for column, part in enumerate(("train", "val", "test"), start=1):
            np.testing.assert_allclose(row[f"{part}_accuracy"], 1 - net["errors"][rows, column] / 100, rtol=1e-12)
            np.testing.assert_allclose(row[f"history_{part}_accuracy"], 1 - net["errors"][:, column] / 100)
            assert np.isnan(row[f"{part}_loss"]).all() and len(row[f"history_{part}_loss"]) == n_exports
        assert row["final_test_accuracy"] == row["test_accuracy"][-1]
        assert row["status"] == ("completed" if n_exports > 1000 else "early_stopped")
        assert row["images_seen"] == int(net["stat"][1]) * 64
        assert zoo.provenance["train_seconds"][str(nid)] == net["stat"][3]
        assert row["num_params"] == net["arch"].num_params and row["weightn_conv"] == net["row"][-3]
    hp = zoo.hyperparameters(1)  # codes 1, 3, 3: RMSprop, tanh, Glorot normal
    assert (hp.dataset, hp.optimizer, hp.activation, hp.initialization) == (
        "cifar10",
        "rmsprop",
        "tanh",
        "glorot_normal",
    )
    assert zoo.hyperparameters(100_001).architecture == Architecture(**DEEP)


def test_model_verify_manifest_and_card(release, converted):
    root, _ = release
    zoo = weightzoo.open_zoo(converted)
    assert zoo.verify(progress=False)["index.parquet"] == "ok"
    net = zoo.model(100_000, snapshot=20)
    weights = zoo.weights(100_000, 20)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in weights.items())
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 20) and net.conv0_bn.eps == 1e-5
    source = zoo.manifest.generation["source"]
    assert source["kind"] == "nws_release" and source["subset"] == "all" and source["skipped"] == []
    for entry in source["split_files"]:
        path = next(root.rglob(entry["file"]))
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert zoo.manifest.generation["dtype"] == "float32" and zoo.manifest.zoo_seed == -1
    assert "preset" not in zoo.manifest.generation and zoo.manifest.generation["evaluation"] == "released"
    card = (converted / "README.md").read_text()
    assert "released NWS zoo, converted" in card and "EJRUY20" in card and "Losses are not in the release" in card
    assert source["split_files"][0]["sha256"] in card


def test_load_dataset(converted, tmp_path):
    import datasets

    datasets.disable_progress_bars()
    ds = datasets.load_dataset("weightzoo", data_dir=str(converted), snapshots=20, cache_dir=str(tmp_path))
    zoo = weightzoo.open_zoo(converted)
    assert ds["train"].num_rows == 4 and ds["test"].num_rows == 2
    for row in ds["test"]:
        flat = np.asarray(row["weights"][0], dtype=np.float32)
        assert np.array_equal(flat, zoo.flat(row["network_id"], 20).numpy())


def test_baselines_fit_reads_a_converted_zoo(converted):
    from weightzoo.baselines import fit

    _, report = fit(converted, target="test_accuracy", model="linear", snapshots="19..20")
    assert report.networks == {"train": 4, "test": 2} and report.samples == {"train": 8, "test": 4}


def test_float64_keeps_the_released_values(release, tmp_path):
    root, written = release
    out = tmp_path / "zoo64"
    assert main([str(root), "--out", str(out), "--subset", "main", "--float64", "--quiet"]) == 0
    zoo = weightzoo.open_zoo(out)
    assert zoo.ids == [100_000, 100_001, 100_002] and zoo.manifest.record.preset == "nws_main"
    assert zoo.manifest.dtype == "float64"  # the writer states how it stored the weights
    assert zoo.manifest.record.is_converted and zoo.manifest.record.license_stated == "other"
    ids = _ids(written)
    for key, net in written.items():
        if key[0].startswith("nws_main"):
            for s in (1, 20):
                flat = zoo.flat(ids[key], s)
                assert flat.dtype == torch.float64 and flat.numpy().tobytes() == net["vectors"][s - 1].tobytes()
    header_len = int.from_bytes((out / "shards" / "train-00000.safetensors").read_bytes()[:8], "little")
    header = json.loads((out / "shards" / "train-00000.safetensors").read_bytes()[8 : 8 + header_len])
    assert {v["dtype"] for k, v in header.items() if k != "__metadata__"} == {"F64"}
    zoo.verify(progress=False)
    assert zoo.model(100_002).state_dict()["out.bias"].dtype == torch.float32
    import datasets  # load_dataset keeps the stored float64 values too, as Zoo.flat returns them

    datasets.disable_progress_bars()
    ds = datasets.load_dataset("weightzoo", data_dir=str(out), snapshots=20, cache_dir=str(tmp_path / "cache"))
    assert ds["train"].features["weights"].feature.feature.dtype == "float64"
    row = ds["train"][0]
    assert np.asarray(row["weights"][0]).tobytes() == zoo.flat(row["network_id"], 20).numpy().tobytes()


def test_float64_shards_read_back_exactly_remote_and_local(tmp_path):
    """The format's float64 support (ShardWriter dtype, ShardReader F64): whole networks and single snapshots, read
    through a local memory map and through ranged reads (memory://)."""
    import fsspec

    arch = Architecture(**SMALL)
    rng = np.random.default_rng(3)
    weights = {p.name: rng.standard_normal((20, *p.shape)) for p in arch.params}
    for fs, root in ((fsspec.filesystem("memory"), "/f64-zoo"), (fsspec.filesystem("file"), str(tmp_path))):
        fs.makedirs(f"{root}/shards", exist_ok=True)
        writer = ShardWriter(fs, root, "train", dtype="float64")
        writer.add(5, weights)
        entry, where = writer.flush()
        reader = ShardReader(fs, root, entry.path)
        loc = (5, where[5]["byte_offset"], where[5]["byte_length"], arch)
        whole = reader.read_network(*loc, sha256=where[5]["sha256"])
        picked = reader.read_snapshots(*loc, [0, 19])
        for name, array in weights.items():
            assert whole[name].dtype == np.float64 and whole[name].tobytes() == array.tobytes()
            assert picked[name].tobytes() == array[[0, 19]].tobytes()
    with pytest.raises(ShardError, match="float16"):
        ShardWriter(fs, root, "train", dtype="float16")


def test_subset_selection_and_missing_split_files(release, tmp_path):
    root, _ = release
    fixed = convert(root, tmp_path / "fixed", subset="fixed", progress=False)
    assert fixed.num_networks == 3 and fixed.splits == {"train": 2, "test": 1}
    assert fixed.generation["preset"] == "nws_fixed" and fixed.name == "nws_fixed-release"
    assert weightzoo.open_zoo(tmp_path / "fixed").ids == [0, 1, 2]
    partial = tmp_path / "partial"
    shutil.copytree(root, partial, ignore=shutil.ignore_patterns("nws_main_*.csv"))
    with pytest.raises(ReleaseError, match=r"nws_main_train\.csv.*nws_main_test\.csv.*--subset"):
        convert(partial, tmp_path / "none", progress=False)
    with pytest.raises(ConfigError, match="subset"):
        convert(root, tmp_path / "none", subset="both", progress=False)


def test_every_problem_is_reported_together(small_release, tmp_path, capsys):
    root, written = small_release
    folders = [net["folder"] for net in written.values()]
    (folders[0] / snapshot_file(7)).unlink()  # missing snapshot file
    np.zeros(1234).astype("<f8").tofile(folders[1] / snapshot_file(5))  # wrong vector length
    set_cell(root, "nws_main_train.csv", 2, "optimizer", "7")  # unknown code
    shutil.rmtree(folders[3])  # unresolvable path
    out = tmp_path / "zoo"
    with pytest.raises(ReleaseError) as info:
        convert(root, out, progress=False)
    problems = info.value.problems
    assert len(problems) == 4, problems
    text = "\n".join(problems)
    assert f"{folders[0]}: snapshot file weights/007.bin is missing" in text
    assert f"{folders[1]}: weights/005.bin holds 1234 float64 values, expected weightn_conv + weightn_fc" in text
    assert "nws_main_train.csv row 2" in text and "optimizer '7' is not one of the release's codes" in text
    assert f"{FOREIGN}/nws_main/0004: network folder not found under {root}" in text
    assert not out.exists() or not any(out.iterdir())  # nothing written
    assert main([str(root), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "4 problem(s)" in err and all(p in err for p in problems)


def test_duplicate_rows_and_linked_folders_are_release_problems(small_release, tmp_path):
    """Two rows naming one folder would become two networks with the same weights and different labels; a linked
    network folder (or file) is not the release's. Both are reported with the other problems, nothing written."""
    root, written = small_release
    folders = [net["folder"] for net in written.values()]
    set_cell(root, "nws_main_test.csv", 1, "path", f"{FOREIGN}/nws_main/{folders[0].name}")  # names train row 1's
    elsewhere = tmp_path / "elsewhere"
    shutil.move(folders[2], elsewhere)
    folders[2].symlink_to(elsewhere, target_is_directory=True)
    out = tmp_path / "zoo"
    with pytest.raises(ReleaseError) as info:
        convert(root, out, progress=False)
    text = "\n".join(info.value.problems)
    assert len(info.value.problems) == 2, text
    assert f"{folders[0]}: named by nws_main_train.csv row 1 and again by nws_main_test.csv row 1" in text
    assert f"{folders[2]}: {folders[2]} is a symbolic link (to {elsewhere})" in text
    assert not out.exists()
    folders[2].unlink()
    shutil.move(elsewhere, folders[2])
    (folders[2] / "stat.bin").rename(tmp_path / "stat.bin")
    (folders[2] / "stat.bin").symlink_to(tmp_path / "stat.bin")  # a linked file inside the folder
    with pytest.raises(ReleaseError, match="stat.bin is a symbolic link"):
        convert(root, out, progress=False)


def test_skip_missing_converts_the_others_and_records_them(small_release, tmp_path):
    root, written = small_release
    folders = [net["folder"] for net in written.values()]
    (folders[2] / "stat.bin").unlink()
    shutil.rmtree(folders[3])
    with pytest.raises(ReleaseError, match="--skip-missing"):
        convert(root, tmp_path / "a", progress=False)
    manifest = convert(root, tmp_path / "zoo", skip_missing=True, progress=False)
    assert manifest.num_networks == 2
    skipped = manifest.generation["source"]["skipped"]
    assert len(skipped) == 2 and "stat.bin is missing" in skipped[0] and "0004: network folder not found" in skipped[1]
    assert "--skip-missing" in (tmp_path / "zoo" / "README.md").read_text()
    set_cell(root, "nws_main_test.csv", 1, "dataset", "imagenet")  # a wrong value is never skipped
    with pytest.raises(ReleaseError, match=r"nws_main_test\.csv row 1 .*dataset 'imagenet'"):
        convert(root, tmp_path / "b", skip_missing=True, progress=False)


def test_non_finite_values_are_kept_with_status_diverged(small_release, tmp_path):
    root, written = small_release
    net = written[("nws_main_train.csv", 1)]
    vector = net["vectors"][19].copy()
    vector[[3, 50]] = [np.nan, np.inf]
    vector.astype("<f8").tofile(net["folder"] / snapshot_file(20))
    convert(root, tmp_path / "zoo", progress=False)
    zoo = weightzoo.open_zoo(tmp_path / "zoo")
    assert zoo.row(100_000)["status"] == "diverged" and zoo.row(100_001)["status"] == "early_stopped"
    assert np.array_equal(zoo.flat(100_000, 20).numpy(), vector.astype(np.float32), equal_nan=True)
    assert zoo.manifest.status_counts["diverged"] == 1


def test_resume_after_an_interruption_writes_the_same_zoo(small_release, tmp_path, monkeypatch):
    root, _ = small_release
    whole = tmp_path / "whole"
    convert(root, whole, progress=False, max_shard_bytes=1)  # one network per shard
    real, calls = convert_nws.read_network_files, []

    def interrupted(net, dtype):
        calls.append(net.network_id)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(net, dtype)

    monkeypatch.setattr(convert_nws, "read_network_files", interrupted)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        convert(root, out, progress=False, max_shard_bytes=1)
    assert (out / ".progress").is_dir() and not (out / "manifest.json").exists()
    with pytest.raises(ConfigError, match="differs"):
        convert(root, out, progress=False, max_shard_bytes=1, resume=True, float64=True)
    monkeypatch.setattr(convert_nws, "read_network_files", real)
    calls.clear()
    monkeypatch.setattr(
        convert_nws, "read_network_files", lambda net, dtype: calls.append(net.network_id) or real(net, dtype)
    )
    convert(root, out, progress=False, max_shard_bytes=1, resume=True)
    assert calls == [100_002, 100_003]  # the two networks the interrupted run had not written
    for path in sorted(p.relative_to(whole) for p in whole.rglob("*") if p.is_file()):
        if path.name != "provenance.json":
            assert (out / path).read_bytes() == (whole / path).read_bytes(), path
    weightzoo.open_zoo(out).verify(progress=False)


def test_codes_spellings_and_path_resolution(tmp_path):
    where = "nws_main_train.csv row 3"
    assert [parse_code("dataset", v, where) for v in ("mnist", "Fashion-MNIST", "4", "1.0")] == [
        "mnist", "fashion", "fashion", "cifar10"
    ]  # fmt: skip
    assert [parse_code("initialization", str(i), where) for i in range(4)] == [
        "constant", "normal", "glorot_uniform", "glorot_normal"
    ]  # fmt: skip
    with pytest.raises(ReleaseError, match=r"row 3: activation '4' .*0 relu, 1 elu, 2 sigmoid, 3 tanh"):
        parse_code("activation", "4", where)
    with pytest.raises(ReleaseError, match="dataset 'digits'"):
        parse_code("dataset", "digits", where)  # this package's own source is not in the release
    (tmp_path / "nws_main" / "0042").mkdir(parents=True)
    (tmp_path / "0042").mkdir()
    assert resolve_folder(str(tmp_path), f"{FOREIGN}/nws_main/0042/") == str(tmp_path / "nws_main" / "0042")
    assert resolve_folder(str(tmp_path), "C:\\data\\other\\0042") == str(tmp_path / "0042")
    assert resolve_folder(str(tmp_path), f"{FOREIGN}/nws_main/0043") is None


def test_metrics_names_cover_the_index():
    assert {m.rsplit("_", 1)[1] for m in METRICS} == {"loss", "accuracy"}


def test_reproduce_says_a_converted_zoo_was_not_trained_here(converted):
    from builder.reproduce import reproduce
    from weightzoo.errors import FormatVersionError

    with pytest.raises(FormatVersionError, match=r"converted from .* by builder\.convert_nws.*not trained"):
        reproduce(weightzoo.open_zoo(converted), [0])


def test_convert_out_follows_the_writers_overwrite_rules(small_release, tmp_path):
    """convert --out with --overwrite: a converted zoo is replaced; a stranger's file in it stops the run before
    anything is deleted (the rules of weightzoo.format.output, which every writer goes through)."""
    from weightzoo.errors import OutputPathError

    root, _ = small_release
    out = tmp_path / "zoo"
    convert(root, out, progress=False)
    first = (out / "manifest.json").read_bytes()
    (out / "shards" / "thesis.pdf").write_bytes(b"keep")
    with pytest.raises(OutputPathError, match=r"shards/thesis\.pdf.*nothing was deleted"):
        convert(root, out, progress=False, overwrite=True)
    assert (out / "manifest.json").read_bytes() == first and (out / "shards" / "thesis.pdf").read_bytes() == b"keep"
    (out / "shards" / "thesis.pdf").unlink()
    convert(root, out, progress=False, overwrite=True)
    assert (out / "manifest.json").read_bytes() == first  # the same zoo again
