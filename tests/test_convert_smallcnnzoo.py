"""builder.convert_smallcnnzoo: a fake Small CNN Zoo folder in the release's exact files (weights.npy,
metrics.csv.gz with config.* columns, layout.csv with Keras names, NFN's split file with its extra leading 0)
converted and read back: rows value for value, metrics, crashed runs, the Keras forward pass, NFN's split, the
benchmark, load_dataset; broken folders (every problem reported together)."""

from __future__ import annotations

import gzip
import json
import random

import numpy as np
import pytest
import torch

import weightzoo
from builder.convert import main as convert_main
from builder.convert_smallcnnzoo import STEPS, convert
from tests.fake_sources import write_nfn_split, write_smallcnnzoo
from weightzoo.baselines.benchmark import nfn_split, run_benchmark
from weightzoo.errors import ReleaseError


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    root = tmp_path_factory.mktemp("smallcnnzoo")
    info = write_smallcnnzoo(root / "mnist", runs=24, crashed=2)
    perm = write_nfn_split(root / "mnist_split.csv", len(info["weights"]))
    convert(root / "mnist", root / "zoo", split_file=root / "mnist_split.csv", progress=False)
    return root, info, perm


def test_every_row_and_metric_comes_back_exactly(fake):
    root, info, _ = fake
    zoo = weightzoo.open_zoo(root / "zoo", verify=True)
    meta = info["meta"]
    assert zoo.num_snapshots == 9 and zoo.manifest.format_version == 2 and len(zoo) == 24
    seen = 0
    for nid in zoo.ids:
        row = zoo.row(nid)
        rows = [int(r) for r in row["source_rows"].split(",")]
        arrays = zoo.read_arrays(nid)
        for k, r in enumerate(rows):  # the snapshot's flat vector is the weights.npy row, bit for bit
            assert np.array_equal(zoo.flat(nid, k + 1).numpy(), info["weights"][r])
            assert meta[r]["modeldir"] == row["modeldir"] and meta[r]["step"] == row["snapshot_epochs"][k]
            for metric in ("test_accuracy", "test_loss", "train_accuracy", "train_loss"):
                assert row[metric][k] == pytest.approx(meta[r][metric], abs=0)
            assert row["activation"] == meta[r]["config.activation"]
            assert row["learning_rate"] == meta[r]["config.learning_rate"]
            assert row["train_fraction"] == meta[r]["config.train_fraction"]
            seen += 1
        assert np.isnan(row["val_accuracy"]).all()
        for k in range(len(rows), 9):  # a crashed run's missing checkpoints: NaN, epoch -1
            assert row["snapshot_epochs"][k] == -1 and all(np.isnan(a[k]).all() for a in arrays.values())
    assert seen == len(info["weights"])  # no row lost


def test_crashed_runs_are_kept_as_diverged(fake):
    root, _, _ = fake
    zoo = weightzoo.open_zoo(root / "zoo")
    diverged = zoo.filter(status="diverged")
    assert len(diverged) == 2 and zoo.manifest.status_counts == {"completed": 22, "diverged": 2}
    for nid in diverged.ids:
        row = zoo.row(nid)
        assert row["snapshot_epochs"][:6] == [0, 1, 2, 3, 20, 21] and row["final_row"] == -1
        assert row["nfn_position"] == -1 and row["n_epochs"] == 21
    complete = zoo.filter(status="completed")
    assert all(zoo.row(n)["snapshot_epochs"] == list(STEPS) for n in complete.ids)


def _keras_forward(w: dict[str, np.ndarray], x: np.ndarray, act) -> np.ndarray:
    """The Small CNN Zoo's Keras model written out in numpy: NHWC input, HWIO kernels, valid 3x3 stride-2
    convolutions, activation, global average pooling, dense logits."""
    h = x
    for i in range(3):
        windows = np.lib.stride_tricks.sliding_window_view(h, (3, 3), axis=(1, 2))[:, ::2, ::2]  # N,H',W',C,3,3
        h = act(np.einsum("nyxcij,ijco->nyxo", windows, w[f"conv{i}.weight"]) + w[f"conv{i}.bias"])
    return h.mean(axis=(1, 2)) @ w["out.weight"] + w["out.bias"]


def test_model_computes_what_the_keras_model_computes(fake):
    root, _, _ = fake
    zoo = weightzoo.open_zoo(root / "zoo")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (3, 28, 28, 1)).astype(np.float64)
    for nid in zoo.filter(status="completed").ids[:4]:
        row = zoo.row(nid)
        w = {k: v.numpy().astype(np.float64) for k, v in zoo.weights(nid).items()}
        act = np.tanh if row["activation"] == "tanh" else (lambda v: np.maximum(v, 0))
        expected = _keras_forward(w, x, act)
        got = zoo.model(nid)(torch.as_tensor(x, dtype=torch.float32).permute(0, 3, 1, 2)).detach().numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_nfn_split_follows_the_file(fake):
    root, info, perm = fake
    zoo = weightzoo.open_zoo(root / "zoo")
    final = {r: m["modeldir"] for r, m in enumerate(info["meta"]) if m["step"] == 86}
    in_order = [final[r] for r in perm.tolist() if r in final]  # the file's order, its leading 0 dropped
    by_dir = {zoo.row(n)["modeldir"]: n for n in zoo.ids}
    assert [zoo.row(by_dir[d])["nfn_position"] for d in in_order] == list(range(len(in_order)))
    half = len(in_order) // 2
    assert {zoo.row(by_dir[d])["split"] for d in in_order[half:]} == {"test"}
    assert {zoo.row(by_dir[d])["split"] for d in in_order[:half]} == {"train"}
    assert "extra leading line 0" in zoo.manifest.generation["source"]["split"]
    # NFN's own code (experiments/data_utils.py _split_indices_iid) on the positions
    idcs = list(range(half))
    random.Random(0).shuffle(idcs)
    point = int(0.8 * half)
    split = nfn_split({by_dir[d]: k for k, d in enumerate(in_order)})
    assert split["train"] == sorted(by_dir[in_order[i]] for i in idcs[:point])
    assert split["val"] == sorted(by_dir[in_order[i]] for i in idcs[point:])
    assert split["test"] == sorted(by_dir[d] for d in in_order[half:])


def test_benchmark_uses_nfn_split_and_load_dataset_reads_it(fake, tmp_path):
    root, _, _ = fake
    result = run_benchmark(root / "zoo", ["stats", "statnn"], seeds=1)
    assert result.split == "nfn" and result.sizes == {"train": 8, "val": 3, "test": 11}
    assert len(result.excluded) == 2  # the crashed runs
    import datasets

    ds = datasets.load_dataset("weightzoo", data_dir=str(root / "zoo"), cache_dir=str(tmp_path / "c"),
                               snapshots="8..9", granularity="snapshot")  # fmt: skip
    zoo = weightzoo.open_zoo(root / "zoo")
    row = ds["test"][1]
    assert row["snapshot"] == 9 and len(row["weights"]) == 4970
    assert np.array_equal(np.asarray(row["weights"], np.float32), zoo.flat(row["network_id"], 9).numpy())
    assert ds["test"].features["activation"].dtype == "string"


def test_card_and_manifest_name_the_source(fake):
    root, _, _ = fake
    zoo = weightzoo.open_zoo(root / "zoo")
    source = zoo.manifest.generation["source"]
    card = (root / "zoo" / "README.md").read_text()
    assert "license: cc-by-4.0" in card and "unterthiner2020predicting" in card
    assert zoo.manifest.record.license_stated == "cc-by-4.0"
    import hashlib

    for entry in source["files"]:
        path = root / ("mnist" if entry["path"] != "mnist_split.csv" else "") / entry["path"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    assert set(source["not_kept"]) == {"Unnamed: 0", "laststep"}


def test_without_split_file_a_seeded_split_and_no_nfn_column(fake, tmp_path):
    root, _, _ = fake
    a = convert(root / "mnist", tmp_path / "a", progress=False)
    convert(root / "mnist", tmp_path / "b", progress=False)
    assert (tmp_path / "a" / "index.parquet").read_bytes() == (tmp_path / "b" / "index.parquet").read_bytes()
    assert "nfn_position" not in a.columns and a.splits == {"train": 12, "test": 12}
    assert run_benchmark(tmp_path / "a", ["statnn"], seeds=1).split.startswith("permutation")


def test_every_problem_is_reported_together(tmp_path, capsys):
    src = tmp_path / "cifar10"
    write_smallcnnzoo(src, runs=4, crashed=0, dataset="cifar10")
    layout = (src / "layout.csv").read_text().replace('"(16, 10)"', '"(10, 16)"')
    (src / "layout.csv").write_text(layout.replace("conv2d_1/bias:0", "conv2d_1/gamma:0"))
    with gzip.open(src / "metrics.csv.gz", "rt") as f:
        lines = f.read().splitlines()
    with gzip.open(src / "metrics.csv.gz", "wt") as f:  # one row short, and a run with epoch 20 twice
        f.write("\n".join(lines[:-1]).replace(",20,", ",3,", 1) + "\n")
    with pytest.raises(ReleaseError) as e:
        convert(src, tmp_path / "out", progress=False)
    problems = "\n".join(e.value.problems)
    assert "gamma" in problems and "shape (10, 16)" in problems and "rows; weights.npy has" in problems
    assert not (tmp_path / "out").exists()  # nothing written
    (src / "layout.csv").unlink()
    (src / "weights.npy").unlink()
    assert convert_main(["--format", "smallcnnzoo", str(src), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "layout.csv: missing" in err and "weights.npy: missing" in err


def test_a_split_file_that_is_not_a_permutation_is_refused(fake, tmp_path):
    root, info, _ = fake
    bad = tmp_path / "split.csv"
    bad.write_text("\n".join(map(str, range(len(info["weights"]) - 1))) + "\n")
    with pytest.raises(ReleaseError, match="expected a permutation"):
        convert(root / "mnist", tmp_path / "out", split_file=bad, progress=False)


def test_a_pickled_weights_file_is_never_loaded(tmp_path):
    src = tmp_path / "mnist"
    write_smallcnnzoo(src, runs=2, crashed=0)
    np.save(src / "weights.npy", np.array([{"not": "weights"}], dtype=object), allow_pickle=True)
    with pytest.raises(ReleaseError, match="not a readable .npy matrix"):
        convert(src, tmp_path / "out", progress=False)


def test_manifest_declares_architecture_columns_and_snapshots(fake):
    root, _, _ = fake
    data = json.loads((root / "zoo" / "manifest.json").read_text())
    assert data["format_version"] == 2 and data["num_snapshots"] == 9
    assert data["architecture"]["family"] == "smallcnnzoo" and data["architecture"]["input_shape"] == [1, 28, 28]
    assert [t[0] for t in data["architecture"]["tensors"]][:2] == ["conv0.bias", "conv0.weight"]
    assert data["columns"]["activation"] == "string" and data["columns"]["nfn_position"] == "int64"


def test_merge_and_reproduce_refuse_a_converted_zoo(fake, tmp_path):
    from builder.merge import merge
    from builder.reproduce import reproduce
    from weightzoo.errors import ConfigError, FormatVersionError

    root, _, _ = fake
    with pytest.raises(ConfigError, match="converted smallcnnzoo zoo"):
        merge([str(root / "zoo"), str(root / "zoo")], str(tmp_path / "merged"))
    with pytest.raises(FormatVersionError, match="converted from 'smallcnnzoo'"):
        reproduce(weightzoo.open_zoo(root / "zoo"), [0])
    with pytest.raises(Exception, match="no NWS hyper-parameters"):
        weightzoo.open_zoo(root / "zoo").hyperparameters(0)


def test_a_run_with_two_values_of_one_config_is_a_problem(tmp_path):
    src = tmp_path / "mnist"
    write_smallcnnzoo(src, runs=3, crashed=0, shuffle_rows=False)
    with gzip.open(src / "metrics.csv.gz", "rt") as f:
        lines = f.read().splitlines()
    lines[2] = lines[2].replace(",adam,", ",sgd,")  # run 0's second checkpoint
    with gzip.open(src / "metrics.csv.gz", "wt") as f:
        f.write("\n".join(lines) + "\n")
    with pytest.raises(ReleaseError) as e:
        convert(src, tmp_path / "out", progress=False)
    assert e.value.problems == ("{}: run '/tmp/run_000' has config.optimizer = ['adam', 'sgd']; a run's config is "
                                "one value".format(src / "metrics.csv.gz"),)  # fmt: skip


def test_a_linked_file_is_a_problem(tmp_path):
    src = tmp_path / "mnist"
    write_smallcnnzoo(src, runs=2, crashed=0)
    (src / "layout.csv").rename(tmp_path / "layout.csv")
    (src / "layout.csv").symlink_to(tmp_path / "layout.csv")
    with pytest.raises(ReleaseError, match="layout.csv: a symbolic link"):
        convert(src, tmp_path / "out", progress=False)
