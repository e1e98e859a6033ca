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
    assert report.metrics["mean_slice_accuracy"] > 0.8 and "original's" in str(report), report
    assert report.excluded == {"2": "diverged"}
    assert list(est.classes_) == [0, 1, 2] and len(est.history_) > 16 and est.samples_per_second_ > 0
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
    # A slice longer than the conv part starts at 0 and runs into the dense part, as the original's
    # random.randint(0, max(0, wc - L)) did; the dense part has no such leeway.
    long_conv = DMCClassifier(slice_length=400, region="conv")
    lo, end = long_conv._bounds(X, np.full(len(X), 300))
    assert lo.max() == 0 and end.max() == 1
    with pytest.raises(ConfigError, match="longer than"):
        DMCClassifier(slice_length=400, region="dense").fit(X, y, weightn_conv=300)
    with pytest.raises(UnknownNameError):
        DMCClassifier(region="middle").fit(X, y)
    with pytest.raises(ConfigError, match="not fitted"):
        DMCClassifier().predict(X)
    with pytest.raises(ConfigError, match="too short"):
        build_dmc(16, 2, (8,), 0.5, channels=(4, 4, 4, 4, 4))


def test_deterministic_by_random_state_and_ragged_input():
    X, y = _toy()
    a = DMCClassifier(**TINY, epochs=2, random_state=3).fit(X, y).predict_proba(X)
    b = DMCClassifier(**TINY, epochs=2, random_state=3).fit(X, y).predict_proba(X)
    assert np.allclose(a, b)
    ragged = [row[: 500 + i] for i, row in enumerate(X)]
    est = DMCClassifier(**TINY, epochs=1, random_state=0).fit(ragged, y)
    assert est.predict(ragged).shape == (16,)
    assert est.get_params()["slice_length"] == 256 and est.set_params(epochs=3).epochs == 3


def test_a_scikit_learn_estimator():
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError

    est = DMCClassifier(**TINY, epochs=1, bn_at_test="batch", random_state=0)
    twin = clone(est)
    assert twin.get_params() == est.get_params() and not hasattr(twin, "module_")
    assert "bn_at_test='batch'" in repr(est)
    with pytest.raises(NotFittedError):
        est.predict(np.zeros((2, 600), np.float32))
    with pytest.raises(ValueError, match="nonsense"):
        est.set_params(nonsense=1)


def test_regressor_l1_on_the_raw_target_by_default_standardised_as_an_option():
    X, y = _toy()
    params = {**TINY, "batch_size": 8, "validation_fraction": 0.0, "dropout": 0.0, "random_state": 0}
    # The original's loss: L1 on the raw target (here accuracy-sized); it learns, slowly.
    raw = DMCRegressor(**params, epochs=20).fit(X, y * 0.5 + 0.2)
    assert (raw.y_mean_, raw.y_std_) == (0.0, 1.0)
    assert np.mean(raw.history_[-5:]) < 0.8 * np.mean(raw.history_[:3])
    # Standardised (an option) for learning-rate-sized targets: separates the classes.
    target = y * 0.004 + 0.001
    est = DMCRegressor(**params, epochs=40, standardize_target=True).fit(X, target)
    pred = est.predict(X)
    assert pred[y == 1].min() > pred[y == 0].max() and est.score(X, target) > 0.5
    assert (est.y_mean_, est.y_std_) == (pytest.approx(target.mean()), pytest.approx(target.std()))
    assert est.predict_slices(X, 3).shape == (16, 3)


def test_where_accuracy_by_slice_position(tmp_path):
    from weightzoo.baselines import Samples
    from weightzoo.baselines.analysis import accuracy_vs_position, plot_vs_position

    X, y = _toy(n=24)
    est = DMCClassifier(**{**TINY, "slice_length": 128}, epochs=15, random_state=0).fit(X, y)
    samples = Samples(np.arange(24), np.full(24, 20), y, np.full(24, 300), weights=X)
    where = accuracy_vs_position(est, samples, positions=9)
    assert len(where["accuracy"]) == 9 and where["offset"][0] == 0 and where["offset"][-1] == 600 - 128
    # the signal sits in [300, 600): slices there are classified, slices in [0, 300) are not
    assert where["accuracy"][-1] > 0.9 and where["accuracy"][0] < 0.8
    assert plot_vs_position(where, tmp_path / "where.png").stat().st_size > 1000


def _trainable(layers: list[tuple[int, int]], flatten: int, n_classes: int) -> int:
    """Trainable parameters from the specification: conv k5 (weights, bias, batch-norm beta and gamma), the
    dense head 1024 x 4 - 64 (each with batch norm) and the output layer."""
    conv = sum(5 * a * b + b + 2 * b for a, b in layers)
    dense, width = 0, flatten
    for d in (1024, 1024, 1024, 1024, 64):
        dense += width * d + d + 2 * d
        width = d
    return conv + dense + 64 * n_classes + n_classes


def _sequence(net: torch.nn.Module) -> list[str]:
    names = {torch.nn.Conv1d: "conv", torch.nn.MaxPool1d: "pool", torch.nn.Linear: "dense", torch.nn.ReLU: "relu"}
    return [names.get(type(m), "bn" if "BatchNorm" in type(m).__name__ else type(m).__name__) for m in net]


@pytest.mark.parametrize("n_classes", [2, 4, 5])
def test_network_is_the_originals_cnn1d_small_at_5000(n_classes):
    net = build_dmc(5000, n_classes)
    convs = [m for m in net if isinstance(m, torch.nn.Conv1d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (1, 8), (8, 16), (16, 32), (32, 64), (64, 128), (128, 256), *[(256, 256)] * 6
    ]  # fmt: skip
    assert all(c.kernel_size == (5,) and c.padding == (2,) for c in convs)
    seq = _sequence(net)
    # conv -> ReLU -> batch norm; pools: after 8 and 16, after 64, then before the 256-channel layers while the
    # length is above 50 (625 -> 312 -> 156 -> 78 -> 39), and a final one: 19 x 256 = 4,864 into the head.
    convs_and_pools = [t for t in seq if t in ("conv", "pool")]
    assert convs_and_pools[:12] == ["conv", "pool", "conv", "pool", "conv", "conv", "pool", "conv", "conv",
                                    "pool", "conv", "pool"]  # fmt: skip
    assert convs_and_pools.count("pool") == 8 and convs_and_pools[-1] == "pool"
    i = seq.index("conv")
    assert seq[i : i + 3] == ["conv", "relu", "bn"]
    dense = [m for m in net if isinstance(m, torch.nn.Linear)]
    assert [(d.in_features, d.out_features) for d in dense] == [
        (4864, 1024), (1024, 1024), (1024, 1024), (1024, 1024), (1024, 64), (64, n_classes)
    ]  # fmt: skip
    head = seq[seq.index("dense") :]
    assert head[:4] == ["dense", "relu", "bn", "Dropout"] and head[-1] == "dense" and head.count("bn") == 5
    count = sum(p.numel() for p in net.parameters())
    assert count == _trainable([(c.in_channels, c.out_channels) for c in convs], 4864, n_classes)
    assert count == 10_394_960 + 65 * n_classes


def test_network_above_40000_is_the_originals_cnn1d():
    net = build_dmc(92_868, 3)
    convs = [(m.in_channels, m.out_channels) for m in net if isinstance(m, torch.nn.Conv1d)]
    expected = [(1, 8), (8, 16), (16, 32), (32, 64), (64, 128), *[(128, 128)] * 5, (128, 256), *[(256, 256)] * 4]
    assert convs == expected and len(convs) == 15
    seq = [t for t in _sequence(net) if t in ("conv", "pool")]
    assert seq.count("pool") == 12 and seq[-1] == "pool"
    assert seq[-9:] == ["conv", "conv", "pool", "conv", "conv", "pool", "conv", "conv", "pool"]
    length = 92_868
    for _ in range(12):
        length //= 2
    first = next(m for m in net if isinstance(m, torch.nn.Linear))
    assert first.in_features == length * 256 == 22 * 256
    assert sum(p.numel() for p in net.parameters()) == _trainable(expected, 22 * 256, 3)
    assert _sequence(build_dmc(40_000, 3)).count("conv") == 12  # 40,000 still takes the small network


def test_initialisation_is_the_originals():
    net = build_dmc(5000, 4, generator=torch.Generator().manual_seed(0))
    dense = [m for m in net if isinstance(m, torch.nn.Linear)][1]  # 1024 x 1024
    std = (2 / 2048) ** 0.5 / 0.87962566103423978
    w = dense.weight.detach()
    assert float(w.abs().max()) <= 2 * std + 1e-7 and abs(float(w.std()) - (2 / 2048) ** 0.5) < 0.002
    assert all(
        float(m.bias.detach().abs().sum()) == 0 for m in net if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d))
    )
    bns = [m for m in net if "BatchNorm" in type(m).__name__]
    gamma = torch.cat([m.weight.detach() for m in bns])
    assert abs(float(gamma.mean()) - 1) < 0.001 and abs(float(gamma.std()) - 0.002) < 0.0005
    assert all(m.eps == 1e-5 and abs(m.momentum - 0.1) < 1e-12 for m in bns)


def test_validation_split_held_out_and_scored_every_epoch():
    X, y = _toy(n=40)
    est = DMCClassifier(**TINY, epochs=3, batching="epoch", random_state=0).fit(X, y)
    assert len(est.validation_history_) == 3 and all(0 <= v <= 1 for v in est.validation_history_)
    none = DMCClassifier(**TINY, epochs=3, validation_fraction=0.0, random_state=0).fit(X, y)
    assert none.validation_history_ == []
    with pytest.raises(ConfigError, match="validation_fraction"):
        DMCClassifier(**TINY, validation_fraction=1.0).fit(X, y)


def test_mean_slice_accuracy_is_the_mean_over_networks_of_per_network_slice_accuracy():
    X, y = _toy(n=16)
    est = DMCClassifier(**{**TINY, "slice_length": 128}, epochs=2, random_state=0).fit(X, y, weightn_conv=300)
    probs = est._even_slices(X, None)
    assert probs.shape == (16, 8, 2)
    per_network = (probs.argmax(axis=2) == y[:, None]).mean(axis=1)
    assert est.score_mean_slices(X, y) == pytest.approx(per_network.mean())
    assert est.score(X, y) == pytest.approx(np.mean(probs.mean(axis=1).argmax(axis=1) == y))


def test_bn_at_test_batch_uses_batch_statistics_and_leaves_the_model_alone():
    X, y = _toy(n=16)
    est = DMCClassifier(**TINY, epochs=2, random_state=0).fit(X, y)
    state = {k: v.clone() for k, v in est.module_.state_dict().items()}
    moving = est.predict_proba(X)
    est.set_params(bn_at_test="batch")
    batch = est.predict_proba(X)
    assert not np.allclose(moving, batch)
    # One network's evenly spaced slices form one batch: a network's prediction does not depend on the others.
    assert np.allclose(est.predict_proba(X[:3])[1], batch[1], atol=1e-5)
    assert all(torch.equal(v, est.module_.state_dict()[k]) for k, v in state.items())
    with pytest.raises(UnknownNameError, match="bn_at_test"):
        est.set_params(bn_at_test="train").predict(X)


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
    args = build_parser().parse_args(["--data-dir", "z", "--bn-at-test", "batch", "--standardize-target"])
    assert _params(args, "dmc") == {"bn_at_test": "batch", "standardize_target": True}


def original_schedule(epochs: int, n: int, batch: int) -> tuple[int, list[int]]:
    """meta_classifier.py's training loop, transcribed: its steps, and the steps at which it validated and saved a
    checkpoint (before that step's training)."""
    steps = int(epochs * n / batch) + 1
    return steps, [i for i in range(steps) if i % int(epochs * n / (batch * 50)) == 0]


def test_stream_batching_is_the_originals_schedule_and_keeps_checkpoint_50(monkeypatch):
    """Full batches from a wrap-around stream, int(epochs * N / batch) + 1 steps, a validated checkpoint every
    int(epochs * N / (batch * 50)) steps from step 0; the 50th is kept and the where-analysis uses it."""
    X, y = _toy(n=100, length=300)  # 90 train samples
    steps, checkpoints = [], []
    real_step, real_validate, real_keep = DMCClassifier._step, DMCClassifier._validate, DMCClassifier._keep_checkpoint

    def step(self, X, targets, rows, *args):
        steps.append(len(rows))
        return real_step(self, X, targets, rows, *args)

    def validate(self, *args):
        checkpoints.append(len(steps))
        return real_validate(self, *args)

    kept = []

    def keep(self):
        kept.append(len(steps))
        return real_keep(self)

    monkeypatch.setattr(DMCClassifier, "_step", step)
    monkeypatch.setattr(DMCClassifier, "_validate", validate)
    monkeypatch.setattr(DMCClassifier, "_keep_checkpoint", keep)
    params = {**TINY, "slice_length": 128, "batch_size": 16, "epochs": 30}
    est = DMCClassifier(**params, random_state=0).fit(X, y)
    n_steps, expected = original_schedule(30, 90, 16)
    assert len(steps) == n_steps == 169 and set(steps) == {16}  # every batch full (the stream wraps)
    assert checkpoints == expected and len(expected) == 57 and kept == [expected[49]]
    assert len(est.validation_history_) == len(expected)
    final = est.predict_slices(X, 4)
    at_50 = est.predict_slices(X, 4, checkpoint=True)
    assert not np.allclose(final, at_50)  # the checkpoint is not the final model
    again = DMCClassifier(**params, random_state=0)
    again.fit(X, y)
    again.module_.load_state_dict(again.checkpoint_state_)
    assert np.array_equal(again.predict_slices(X, 4), at_50)


def test_original_batch_norm_at_test_batches_networks_by_position_and_not_for_large_slices():
    """bn_at_test="batch": the where-analysis batched batch_size networks at one position (so a prediction depends
    on the other networks there), and above L = 40,000 the original's model used its moving statistics."""
    X, y = _toy(n=12, length=300)
    est = DMCClassifier(**{**TINY, "slice_length": 128, "batch_size": 4}, epochs=1, bn_at_test="batch",
                        random_state=0).fit(X, y)  # fmt: skip
    probs = est.predict_slices(X, 3)
    X2 = X.copy()
    X2[1] *= 10  # another network of the first batch of networks
    changed = est.predict_slices(X2, 3)
    assert not np.allclose(probs[0], changed[0])  # network 0 shares its batches with network 1 ...
    assert np.allclose(probs[4:], changed[4:])  # ... networks 4.. do not
    assert est._batch_stats_at_test()
    assert not DMCClassifier(slice_length=40_001, bn_at_test="batch")._batch_stats_at_test()
