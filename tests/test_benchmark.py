"""weightzoo.baselines.benchmark: the accuracy-prediction protocol (final snapshot, permutation split, Kendall tau
and R^2 over seeds) and its command; the StatNN features as the literature computes them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.zoos import write_synthetic_zoo
from weightzoo.baselines.benchmark import benchmark_split, main, run_benchmark
from weightzoo.baselines.features import STATNN_STATS, kind_tensors, tensor_stats
from weightzoo.errors import ConfigError
from weightzoo.zoo import open_zoo


def _accuracy(weights: dict[str, np.ndarray]) -> float:
    """A final test accuracy the weights decide: every tensor of the last snapshot shifted by one amount per
    network (drawn from its own weights), the accuracy rising with it."""
    shift = float(np.clip(weights["out.bias"][-1, 0], -2, 2)) / 2
    for array in weights.values():
        array[-1] += shift
    return 0.5 + 0.2 * shift


@pytest.fixture(scope="module")
def learnable_zoo(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "zoo"
    write_synthetic_zoo(path, 40, preset="nws_fixed", diverged=(7,), final_accuracy=_accuracy)
    return path


def test_the_split_is_by_network_fixed_and_sized_as_the_literatures():
    split = benchmark_split(range(100), split_seed=0)
    assert [len(split[s]) for s in ("train", "val", "test")] == [40, 10, 50]
    assert not set(split["train"]) & set(split["val"]) and not set(split["train"] + split["val"]) & set(split["test"])
    assert split == benchmark_split(list(reversed(range(100))), split_seed=0)  # a function of the ids, not order
    assert split != benchmark_split(range(100), split_seed=1)


def test_the_benchmark_ranks_a_learnable_target_and_chance_does_not(learnable_zoo):
    result = run_benchmark(learnable_zoo, ["statnn", "linear", "chance"], seeds=2)
    rows = {r["model"]: r for r in result.rows}
    assert result.sizes == {"train": 15, "val": 4, "test": 20}  # 39 usable networks: the diverged one left out
    assert result.excluded == {7: "diverged"}
    assert rows["linear"]["test_kendall_tau"]["mean"] > 0.6  # every tensor's mean carries the target
    assert rows["statnn"]["test_kendall_tau"]["mean"] > 0.6
    assert np.isnan(rows["chance"]["test_kendall_tau"]["mean"])  # a constant prediction ranks nothing
    assert len(rows["linear"]["test_r2"]["values"]) == 2


def test_the_command_prints_and_writes_the_table(learnable_zoo, tmp_path, capsys):
    out = tmp_path / "bench"
    assert main([str(learnable_zoo), "--model", "linear", "chance", "--seeds", "2", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "| linear |" in printed and "Kendall τ" in printed
    table = json.loads((out / "benchmark.json").read_text())
    assert [r["model"] for r in table["rows"]] == ["linear", "chance"] and table["seeds"] == [0, 1]
    assert (out / "benchmark.md").read_text().startswith("Accuracy prediction on")
    assert (out / "benchmark.png").read_bytes()[:4] == b"\x89PNG"


def test_too_small_a_zoo_is_refused_with_the_split_it_would_give(tmp_path):
    write_synthetic_zoo(tmp_path / "small", 6, preset="nws_fixed", diverged=())
    with pytest.raises(ConfigError, match=r"6 usable networks give a split of \[2, 1, 3\]"):
        run_benchmark(tmp_path / "small", ["chance"], seeds=1)


def test_statnn_features_are_the_literatures(learnable_zoo):
    """Per layer weight and bias (no batch norm): mean, variance (not std) and the quantiles 0..100 %."""
    zoo = open_zoo(learnable_zoo)
    arrays = zoo.read_arrays(0)
    names = kind_tensors(arrays, "statnn")
    assert names == [n for n in arrays if "_bn." not in n]
    features = tensor_stats(arrays, (20,), "statnn")
    assert features.shape == (1, len(names) * len(STATNN_STATS))
    w = arrays["conv1.weight"][-1].astype(np.float64).ravel()
    k = names.index("conv1.weight") * len(STATNN_STATS)
    expected = [w.mean(), w.var(), *np.quantile(w, [0, 0.25, 0.5, 0.75, 1])]
    np.testing.assert_allclose(features[0, k : k + 7], expected, rtol=1e-12)
