"""Baselines: the protocol (split by network, balancing, exclusions), planted signals found, shuffled labels not."""

from __future__ import annotations

import dataclasses
import json
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

from builder.engine.space import get_preset, split_of
from weightzoo import open_zoo
from weightzoo.baselines import fit, format_table, load_samples, parse_snapshots
from weightzoo.baselines.features import tensor_stats
from weightzoo.baselines.report import Report, kendall_tau
from weightzoo.errors import ConfigError, UnknownNameError
from weightzoo.format.index import NetworkRecord
from weightzoo.format.layout import METRICS, NUM_SNAPSHOTS
from weightzoo.format.writer import ZooWriter
from weightzoo.hparams import OPTIMIZERS

#: A small fixed architecture (21,260 values per snapshot) keeps the zoos a few MB.
SMALL = {"filter_size": [3], "width_conv": [4], "width_fc": [64]}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One thread for torch and OpenMP (scikit-learn): on a loaded 2-core machine the two runtimes' thread pools
    otherwise oversubscribe the cores and the gradient boosting runs ten times slower."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)


def write_planted_zoo(
    path,
    n: int = 60,
    *,
    seed: int = 0,
    shift: float = 1.0,
    everywhere: bool = False,
    diverged: tuple[int, ...] = (),
    nan_completed: tuple[int, ...] = (),
) -> None:
    """A zoo whose optimizer is planted in the weights: the mean of ``conv0.weight`` (or of every tensor) moves
    by ``shift * code * min(1, (snapshot - 1) / 9)``, so snapshot 1 carries no signal and snapshots 10..20 all of it.
    Optimizers cycle every 5 networks, so both splits hold every optimizer equally often; the other
    hyper-parameters are drawn by the preset."""
    space = get_preset("nws_fixed").restrict(**SMALL)
    rng = np.random.default_rng(seed)
    ramp = np.minimum(np.arange(NUM_SNAPSHOTS, dtype=np.float32) / 9, 1)[:, None]
    with ZooWriter(path, name="planted", zoo_seed=seed, generation={"preset": "nws_fixed"}) as writer:
        for i in range(n):
            hp = dataclasses.replace(space.sample(seed, i), optimizer=OPTIMIZERS[(i // 5) % 3])
            n_epochs = 5
            history = {m: list(rng.random(n_epochs + 1)) for m in METRICS}
            epochs = [int(e) for e in np.round(np.linspace(0, n_epochs, NUM_SNAPSHOTS))]
            weights = {}
            for p in hp.architecture.params:
                w = rng.standard_normal((NUM_SNAPSHOTS, *p.shape)).astype(np.float32)
                if everywhere or p.name == "conv0.weight":
                    code = OPTIMIZERS.index(hp.optimizer)
                    w += (shift * code * ramp).reshape(NUM_SNAPSHOTS, *([1] * len(p.shape)))
                weights[p.name] = w
            status = "diverged" if i in diverged else "completed"
            if i in diverged or i in nan_completed:
                weights["out.bias"][15:, :] = np.nan
            snapshots = {m: [history[m][e] for e in epochs] for m in METRICS}
            record = NetworkRecord(i, split_of(i), status, seed, hp, n_epochs, epochs, snapshots, history)
            writer.add(record, weights)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    path = tmp_path_factory.mktemp("baselines") / "planted"
    write_planted_zoo(path, diverged=(3, 12), nan_completed=(7,))
    return open_zoo(path)


def test_parse_snapshots():
    assert parse_snapshots("11..20") == tuple(range(11, 21))
    assert parse_snapshots([20, 1]) == (1, 20)
    for bad in (0, 21, "x", "5..30", True):
        with pytest.raises(ConfigError):
            parse_snapshots(bad)


def test_tensor_stats_match_numpy():
    rng = np.random.default_rng(0)
    arrays = {"a": rng.standard_normal((20, 4, 3)).astype(np.float32), "b": rng.standard_normal((20, 5))}
    got = tensor_stats(arrays, (1, 20))
    assert got.shape == (2, 14)
    v = arrays["b"][19]
    assert np.allclose(got[1, 7:], [v.mean(), v.std(), v.min(), *np.quantile(v, [0.25, 0.5, 0.75]), v.max()])


def test_protocol_splits_by_network_balances_and_counts_exclusions(planted):
    train, test, protocol = load_samples(planted, "activation", "11..20", random_state=1)
    assert not set(train.network_id) & set(test.network_id)
    rows = {r["network_id"]: r for r in planted.index.to_pylist()}
    assert all(rows[n]["split"] == "train" for n in train.network_id)
    assert all(rows[n]["split"] == "test" for n in test.network_id)
    for samples, split in ((train, "train"), (test, "test")):
        counts = np.bincount(samples.y, minlength=len(protocol.classes))
        assert len(set(counts)) == 1 and counts[0] > 0  # balanced: chance is 1/C
        assert set(protocol.class_counts[split].values()) == {counts[0] // 10}
        assert np.all(np.bincount(samples.snapshot)[11:] == len(samples) // 10)  # every snapshot of every network
    assert protocol.excluded == {3: "diverged", 7: "non-finite weights (status completed)", 12: "diverged"}
    assert not {3, 7, 12} & (set(train.network_id) | set(test.network_id))
    # before snapshot 16 network 7 is finite, so it is used
    _, _, protocol_early = load_samples(planted, "optimizer", "1..10")
    assert 7 not in protocol_early.excluded and set(protocol_early.excluded) == {3, 12}
    assert train.stats.shape[1] == len(protocol.feature_names) == 7 * len(planted.architecture(0).params)


def test_classes_absent_from_a_split_are_not_classes(planted):
    zoo = planted.filter(network_id=lambda i: not (i % 5 == 4 and (i // 5) % 3 == 2))  # no sgd in test
    _, test, protocol = load_samples(zoo, "optimizer", 20)
    assert protocol.classes == ["adam", "rmsprop"] and protocol.dropped_classes == ["sgd_momentum"]
    assert set(test.y) == {0, 1}


def test_planted_signal_found_by_stats_and_linear_shuffled_label_not(planted):
    for model in ("stats", "linear"):
        est, report = fit(planted, "optimizer", model, "11..20", max_iter=50 if model == "stats" else 2000)
        assert report.metrics["accuracy"] > 0.9, report
        assert report.metrics["chance"] == pytest.approx(1 / 3)
        assert hasattr(est, "classes_") or hasattr(est[-1], "classes_")
    _, shuffled = fit(planted, "optimizer", "stats", "11..20", shuffle_labels=True, max_iter=50)
    assert shuffled.metrics["accuracy"] < 0.6, shuffled
    _, chance = fit(planted, "optimizer", "chance", "11..20")
    assert chance.metrics["accuracy"] == pytest.approx(1 / 3)


def test_no_signal_at_initialisation(planted):
    _, report = fit(planted, "optimizer", "stats", 1, max_iter=50)
    assert report.metrics["accuracy"] < 0.75  # 12 test samples: chance 1/3, the planted signal gives 1.0


def test_report_contents_json_and_plots(planted, tmp_path):
    result = fit(planted, "optimizer", "stats", [1, 20], max_iter=30)
    report = result.report
    assert report.classes == list(OPTIMIZERS) and len(report.confusion) == 3
    assert sum(map(sum, report.confusion)) == report.samples["test"]
    assert set(report.per_snapshot) == {"1", "20"} and report.per_snapshot["20"] > report.per_snapshot["1"]
    assert report.excluded == {"3": "diverged", "7": "non-finite weights (status completed)", "12": "diverged"}
    assert Report.load(report.save(tmp_path / "r.json")) == report
    assert json.loads((tmp_path / "r.json").read_text())["metrics"]["chance"] == pytest.approx(1 / 3)
    paths = report.plot(tmp_path / "plots")
    assert [p.name for p in paths] == ["optimizer_stats_confusion.png", "optimizer_stats_per_snapshot.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
    text = str(report)
    assert "confusion" in text and "balanced_accuracy" in text
    assert "| optimizer | stats" in format_table([report])
    est = result.estimator
    assert np.array_equal(est.predict(result.inputs(result.test)), est.predict(result.test.stats))
    assert est.predict_proba(result.test.stats).shape == (len(result.test), 3)


def test_regression_targets(planted):
    _, report = fit(planted, "learning_rate", "linear", 20)
    assert report.task == "regression" and {"mae", "r2", "kendall_tau", "chance_mae"} <= set(report.metrics)
    _, chance = fit(planted, "test_accuracy", "chance", "19..20")
    assert chance.metrics["mae"] == pytest.approx(chance.metrics["chance_mae"])
    assert "R2" in format_table([report, chance])


def test_kendall_tau():
    assert kendall_tau(np.arange(5.0), np.arange(5.0) * 2) == pytest.approx(1.0)
    assert np.isnan(kendall_tau(np.ones(3), np.arange(3.0)))


def test_bad_arguments(planted, tmp_path):
    with pytest.raises(UnknownNameError):
        fit(planted, "colour", "stats")
    with pytest.raises(UnknownNameError):
        fit(planted, "optimizer", "forest")
    with pytest.raises(ConfigError, match="takes a Zoo, a zoo path"):
        fit(42, "optimizer", "stats")
    with pytest.raises(ConfigError, match="at least 2"):
        fit(planted.filter(optimizer="adam"), "optimizer", "stats")


def test_fit_accepts_a_path(planted):
    _, report = fit(str(planted.root), "optimizer", "chance", 20)
    assert report.source == str(planted.root)


def test_mixed_architectures_are_aligned_by_layer_role(tmp_path):
    from tests.conftest import write_synthetic_zoo
    from weightzoo.baselines.features import STATS, layer_slot

    write_synthetic_zoo(tmp_path / "main", n=12, preset="nws_main")
    zoo = open_zoo(tmp_path / "main")
    assert len({zoo.architecture(i).num_params for i in zoo.ids}) > 1
    train, _test, protocol = load_samples(zoo, "optimizer", (1, 20), balance=False, test_fraction=0.4)
    names = protocol.feature_names
    assert train.stats.shape[1] == len(names) and len(names) % len(STATS) == 0
    # every tensor's statistics sit in its role's columns, NaN in the roles the network lacks
    nid, row = int(train.network_id[-1]), len(train) - 1
    arch, arrays = zoo.architecture(nid), zoo.read_arrays(nid)
    own = {layer_slot(arch, p.name) for p in arch.params}
    for p in arch.params:
        col = names.index(f"{layer_slot(arch, p.name)}:mean")
        assert np.isclose(train.stats[row, col], arrays[p.name][19].astype(np.float64).mean())
    lacking = [i for i, n in enumerate(names) if n.split(":")[0] not in own]
    assert np.isnan(train.stats[row, lacking]).all() and not np.isnan(np.delete(train.stats[row], lacking)).any()
    for model in ("stats", "linear"):
        _est, report = fit(zoo, "optimizer", model, (1, 20), test_fraction=0.4, balance=False)
        assert 0 <= report.metrics["accuracy"] <= 1


def test_resplit_is_by_network_stratified_and_seeded(planted):
    train, test, protocol = load_samples(planted, "optimizer", 20, test_fraction=0.3, random_state=4)
    assert protocol.split.startswith("stratified") and not set(train.network_id) & set(test.network_id)
    assert len(set(np.bincount(test.y))) == 1 and len(set(test.y)) == 3
    again = load_samples(planted, "optimizer", 20, test_fraction=0.3, random_state=4)[1]
    assert np.array_equal(again.network_id, test.network_id)
    with pytest.raises(ConfigError, match="test_fraction"):
        load_samples(planted, "optimizer", 20, test_fraction=1.5)


def test_accuracy_vs_snapshot_rises_from_chance(planted, tmp_path):
    from weightzoo.baselines.analysis import accuracy_vs_snapshot, plot_vs_snapshot

    curve = accuracy_vs_snapshot(planted, "optimizer", "stats", [1, 10, 20], max_iter=30)
    assert list(curve) == [1, 10, 20] and all(r.snapshots == [s] for s, r in curve.items())
    # one snapshot: 45 train networks for 224 features; chance 1/3 at the initialisation, signal from 10 on
    assert curve[1].score < 0.6 < 0.75 < min(curve[10].score, curve[20].score)
    assert plot_vs_snapshot({"stats": curve}, tmp_path / "when.png").stat().st_size > 1000


def test_cli_prints_table_and_writes_reports_and_plots(planted, tmp_path, capsys):
    from weightzoo.baselines.__main__ import main

    out = tmp_path / "out"
    argv = [str(planted.root), "--target", "optimizer", "--model", "stats", "chance"]
    assert main([*argv, "--snapshots", "19..20", "--max-iter", "20", "--out", str(out), "--when"]) == 0
    text = capsys.readouterr().out
    assert "| optimizer | stats" in text and "| optimizer | chance" in text and "3 excluded" in text
    assert "optimizer / stats when: snapshot 1" in text
    names = {p.name for p in out.iterdir()}
    assert {"optimizer_stats.json", "optimizer_stats_confusion.png", "optimizer_when.png", "table.md"} <= names
    assert Report.load(out / "optimizer_chance.json").metrics["accuracy"] == pytest.approx(1 / 3)
    assert main(["--data-dir", str(tmp_path / "nothing"), "--target", "optimizer"]) == 2  # the former spelling
    assert "not a zoo" in capsys.readouterr().err
    assert main(["--target", "optimizer"]) == 2  # no zoo given: the demo zoo, not made yet here
    err = capsys.readouterr().err
    assert "demo" in err and "builder.generate" in err and len(err.strip().splitlines()) == 1
    assert main(["a", "--data-dir", "b"]) == 2
    assert "two zoos given" in capsys.readouterr().err


def test_missing_extras_name_the_extra(planted, monkeypatch, tmp_path):
    from weightzoo.errors import MissingExtraError

    report = fit(planted, "optimizer", "chance", 20).report
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(MissingExtraError, match=r"weightzoo\[baselines\]"):
        report.plot(tmp_path)
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(MissingExtraError, match="scikit-learn"):
        fit(planted, "optimizer", "stats", 20)


@pytest.mark.parametrize("granularity", ["network", "snapshot"])
def test_fit_accepts_a_datasetdict_from_the_builder(planted, tmp_path, granularity):
    datasets = pytest.importorskip("datasets")
    import weightzoo.hf  # noqa: F401  (registers the builder)

    ds = datasets.load_dataset(
        "weightzoo", data_dir=str(planted.root), snapshots="19..20", granularity=granularity, cache_dir=str(tmp_path)
    )
    from_ds = fit(ds, "optimizer", "stats", "19..20", max_iter=20).report
    from_zoo = fit(planted, "optimizer", "stats", "19..20", max_iter=20).report
    assert from_ds.metrics == from_zoo.metrics and from_ds.confusion == from_zoo.confusion
    assert from_ds.excluded == from_zoo.excluded and from_ds.networks == from_zoo.networks


def test_a_zoo_too_small_for_the_protocol_says_why_and_leaves_no_empty_folder(tmp_path, capsys):
    from tests.conftest import write_synthetic_zoo
    from weightzoo.baselines.__main__ import main as cli

    write_synthetic_zoo(tmp_path / "tiny", n=3, preset="nws_fixed", diverged=())  # ids 0..2: no test network
    out = tmp_path / "out"
    assert cli(["--data-dir", str(tmp_path / "tiny"), "--target", "optimizer", "--model", "chance", "--out",
                str(out)]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "no usable test networks" in err and "every fifth network" in err and "--test-fraction" in err
    assert not out.exists()


def test_balancing_keeps_the_first_networks_of_each_class_as_the_original_or_a_seeded_random_choice():
    """The original's import_weights kept the first k runs of each class in its CSV order (k: the smallest class);
    here the first in id order by default, a seeded random choice with balance="random"."""
    from weightzoo.baselines.protocol import balance_classes

    rows = {n: {"split": "train" if n < 30 else "test", "optimizer": ("adam", "adam", "rmsprop")[n % 3]}
            for n in range(45)}  # fmt: skip
    by_split = {"train": list(range(30)), "test": list(range(30, 45))}

    def kept(balance, seed=0):
        balanced = balance_classes(by_split, rows, "optimizer", np.random.default_rng(seed), balance=balance)
        return balanced.networks, balanced

    first, balanced = kept(True)
    adam = [n for n in range(30) if rows[n]["optimizer"] == "adam"]
    assert first["train"] == sorted(adam[:10] + list(range(2, 30, 3))) and balanced.order == "first"
    assert kept("first")[0] == first
    randoms = [kept("random", seed)[0]["train"] for seed in (0, 1)]
    assert randoms[0] != randoms[1] and all(len(r) == 20 for r in randoms)
    assert kept(False)[0]["train"] == list(range(30))
    with pytest.raises(UnknownNameError):
        kept("last")


def test_a_target_with_one_class_is_skipped_and_the_others_still_run(tmp_path, capsys):
    """The demo preset trains every network on digits: --target dataset has one class. It is reported and skipped;
    the other targets of the same command run; with nothing left to fit the command fails in one line."""
    from tests.zoos import write_synthetic_zoo
    from weightzoo.baselines.__main__ import main

    zoo = tmp_path / "demo"
    write_synthetic_zoo(zoo, 20, preset="demo", diverged=())
    out = tmp_path / "out"
    argv = [str(zoo), "--model", "chance", "--snapshots", "20", "--test-fraction", "0.3", "--out", str(out)]
    assert main([*argv, "--target", "dataset", "optimizer"]) == 0
    captured = capsys.readouterr()
    assert "skipped target dataset" in captured.err and "1 class" in captured.err
    assert "| optimizer | chance" in captured.out and (out / "optimizer_chance.json").exists()
    assert main([*argv, "--target", "dataset"]) == 2
    assert "no target could be fitted" in capsys.readouterr().err


def test_both_sources_satisfy_the_protocol_load_samples_reads(planted):
    """load_samples reads a ZooSource (index, url, architecture, iter_arrays): a Zoo, its filtered views and a
    DatasetZoo; fit recognises a DatasetDict by type once datasets is imported, without importing it itself."""
    import typing

    from weightzoo.baselines.dataset_zoo import DatasetZoo
    from weightzoo.baselines.samples import ZooSource

    hints = typing.get_type_hints(ZooSource.iter_arrays)
    assert "snapshots" in hints
    for source in (planted, planted.filter(split="train")):
        assert all(callable(getattr(source, m, None)) for m in ("architecture", "iter_arrays"))
        assert hasattr(source, "index") and hasattr(source, "url")
    assert all(callable(getattr(DatasetZoo, m, None)) for m in ("architecture", "iter_arrays"))
