"""The deep meta-classifier: slices and regions, a planted signal found through fit(), determinism, regression."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("sklearn")

from tests.test_baselines import _one_thread, write_planted_zoo  # noqa: F401
from weightzoo import open_zoo
from weightzoo.baselines import fit
from weightzoo.baselines.dmc import DMCClassifier, DMCRegressor, build_dmc
from weightzoo.errors import ConfigError, UnknownNameError

TINY = {"slice_length": 256, "channels": (4, 8), "dense": (32,), "eval_slices": 8, "batch_size": 32}


@pytest.fixture(scope="module")
def planted_everywhere(tmp_path_factory):
    path = tmp_path_factory.mktemp("dmc") / "planted"
    write_planted_zoo(path, n=30, everywhere=True, shift=1.0, diverged=(2,))
    return open_zoo(path)


def test_planted_signal_found_and_reported_with_single_slice_accuracy(planted_everywhere):
    result = fit(planted_everywhere, "optimizer", "dmc", "17..20", epochs=16, **TINY)
    est, report = result
    assert report.metrics["accuracy"] > 0.9, report
    assert report.metrics["single_slice_accuracy"] > 0.8, report
    assert report.excluded == {"2": "diverged"}
    assert list(est.classes_) == [0, 1, 2] and len(est.history_) == 16 and est.samples_per_second_ > 0
    probs = est.predict_proba(result.test.weights)
    assert probs.shape == (len(result.test), 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_shuffled_labels_stay_near_chance(planted_everywhere):
    _, report = fit(planted_everywhere, "optimizer", "dmc", "19..20", epochs=4, shuffle_labels=True, **TINY)
    assert report.metrics["accuracy"] < 0.7, report


def _toy(n=16, length=600, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.standard_normal((n, length)).astype(np.float32)
    X[:, 300:] += y[:, None] * 2.0  # the signal sits in the second ("dense") part only
    return X, y


def test_regions_and_slice_positions():
    X, y = _toy()
    est = DMCClassifier(region="dense", **{**TINY, "slice_length": 128}, epochs=15, random_state=0)
    est.fit(X, y, weightn_conv=300)
    assert est.score(X, y, weightn_conv=300) == 1.0
    conv = DMCClassifier(region="conv", **{**TINY, "slice_length": 128}, epochs=1, random_state=0)
    lo, end = conv._bounds(X, np.full(len(X), 300))
    assert lo.max() == 0 and end.max() == 300 - 128 + 1
    probs = est.predict_slices(X, 5, weightn_conv=300)
    assert probs.shape == (16, 5, 2)
    with pytest.raises(ConfigError, match="needs weightn_conv"):
        conv.fit(X, y)
    with pytest.raises(ConfigError, match="longer than"):
        DMCClassifier(slice_length=400, region="conv").fit(X, y, weightn_conv=300)
    with pytest.raises(UnknownNameError):
        DMCClassifier(region="middle").fit(X, y)
    with pytest.raises(ConfigError, match="not fitted"):
        DMCClassifier().predict(X)
    with pytest.raises(ConfigError, match="too short"):
        build_dmc(16, 2, (4, 4, 4, 4, 4), (8,), 0.5)


def test_deterministic_by_random_state_and_ragged_input():
    X, y = _toy()
    a = DMCClassifier(**TINY, epochs=2, random_state=3).fit(X, y).predict_proba(X)
    b = DMCClassifier(**TINY, epochs=2, random_state=3).fit(X, y).predict_proba(X)
    assert np.allclose(a, b)
    ragged = [row[: 500 + i] for i, row in enumerate(X)]
    est = DMCClassifier(**TINY, epochs=1, random_state=0).fit(ragged, y)
    assert est.predict(ragged).shape == (16,)
    assert est.get_params()["slice_length"] == 256 and est.set_params(epochs=3).epochs == 3


def test_regressor():
    X, y = _toy()
    target = y * 0.004 + 0.001
    est = DMCRegressor(**{**TINY, "batch_size": 8}, epochs=10, random_state=0).fit(X, target)
    pred = est.predict(X)
    assert pred[y == 1].min() > pred[y == 0].max() and est.score(X, target) > 0.5
    assert est.predict_slices(X, 3).shape == (16, 3)


def test_where_accuracy_by_slice_position(tmp_path):
    from weightzoo.baselines.analysis import accuracy_vs_position, plot_vs_position
    from weightzoo.baselines.features import Samples

    X, y = _toy(n=24)
    est = DMCClassifier(**{**TINY, "slice_length": 128}, epochs=15, random_state=0).fit(X, y)
    samples = Samples(np.arange(24), np.full(24, 20), y, np.full(24, 300), weights=X)
    where = accuracy_vs_position(est, samples, positions=9)
    assert len(where["accuracy"]) == 9 and where["offset"][0] == 0 and where["offset"][-1] == 600 - 128
    # the signal sits in [300, 600): slices there are classified, slices in [0, 300) are not
    assert where["accuracy"][-1] > 0.9 and where["accuracy"][0] < 0.8
    assert plot_vs_position(where, tmp_path / "where.png").stat().st_size > 1000


def test_deeper_variant_above_40000_keeps_the_first_dense_layer_small():
    from weightzoo.baselines.dmc import BASE_CHANNELS, default_channels

    assert default_channels(5000) == default_channels(40_000) == BASE_CHANNELS
    for length in (40_001, 92_868, 388_172):
        channels = default_channels(length)
        assert len(channels) > len(BASE_CHANNELS) and set(channels[len(BASE_CHANNELS) :]) == {256}
        net = build_dmc(length, 3, channels, (64,), 0.5)
        first_dense = next(m for m in net if isinstance(m, torch.nn.Linear))
        assert first_dense.in_features <= 256 * (5000 // 64)


def test_normalize_slices_shape_scale_channels_and_constant_slices():
    from weightzoo.baselines.dmc import normalize_slices

    rng = np.random.default_rng(0)
    batch = np.stack([rng.normal(5.0, 100.0, 300), rng.normal(-0.001, 0.01, 300), np.full(300, 0.1)])
    x = normalize_slices(batch)
    assert x.shape == (3, 3, 300) and x.dtype == np.float32 and np.isfinite(x).all()
    assert np.allclose(x[:2, 0].mean(axis=1), 0, atol=1e-5) and np.allclose(x[:2, 0].std(axis=1), 1, atol=1e-4)
    assert np.allclose(x[2, 0], 0)  # a constant slice (constant initialisation) has no shape, only a scale
    assert np.allclose(x[:, 1:], x[:, 1:, :1])  # the scale channels are constant along the slice
    assert x[0, 1, 0] == pytest.approx(2, abs=0.05) and x[1, 1, 0] == pytest.approx(-2, abs=0.05)
    assert x[2, 2, 0] == pytest.approx(np.arcsinh(10)) and x[2, 1, 0] < -10


def _scaled_toy(signal: str, n=32, length=600, seed=0):
    """Classes that differ only in the shape of the values (each network at its own scale, over four orders of
    magnitude) or only in their scale."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.standard_normal((n, length))
    if signal == "shape":
        X[y == 1] = np.abs(X[y == 1]) * np.where(np.arange(length) % 2, 1, -1)  # one class alternates in sign
        X *= 10.0 ** rng.uniform(-3, 1, (n, 1))
    else:
        X *= np.where(y == 1, 0.1, 0.01)[:, None]
    return X.astype(np.float32), y


@pytest.mark.parametrize("signal", ["shape", "scale"])
def test_slice_input_norm_finds_shape_whatever_the_scale_and_scale_alone(signal):
    X, y = _scaled_toy(signal)
    Xt, yt = _scaled_toy(signal, seed=1)
    params = {**TINY, "slice_length": 128, "batch_size": 8}
    est = DMCClassifier(**params, epochs=20, input_norm="slice", random_state=0).fit(X, y)
    assert est.module_[0].in_channels == 3 and "input_norm='slice'" in repr(est)
    assert est.score(Xt, yt) > 0.9
    with pytest.raises(UnknownNameError, match="input_norm"):
        DMCClassifier(input_norm="minmax").fit(X, y)


def test_cli_passes_dmc_options():
    from weightzoo.baselines.__main__ import _params, build_parser

    argv = ["--data-dir", "z", "--input-norm", "slice", "--dense", "256", "64", "--dropout", "0"]
    args = build_parser().parse_args([*argv, "--learning-rate", "3e-4"])
    assert _params(args, "dmc") == {"input_norm": "slice", "dense": (256, 64), "dropout": 0.0, "learning_rate": 3e-4}
    assert _params(args, "stats") == {}
