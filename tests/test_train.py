"""The trainer: snapshot policy, determinism by (seed, id), balancing, early stopping, divergence kept; the rules
of the original code (``classifier.py``) checked against transcriptions of it, not against this package."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.engine.member import DeviceImages, EarlyStopping, balanced_subset, fixed_test_subset
from builder.engine.sources import ImageSet, load_images
from builder.engine.space import get_preset
from builder.engine.train import TrainConfig, snapshot_epochs, train_network
from builder.engine.train_config import epoch_limit
from weightzoo.errors import ConfigError
from weightzoo.format.layout import METRICS
from weightzoo.hparams import HyperParameters
from weightzoo.model import NWSNet, initialize_, state_tensors


def _tiny_images(n_train=400, n_test=80, seed=0, name="digits"):
    """A learnable toy problem: the label is which horizontal band is bright."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = rng.integers(0, 4, n)
        x = rng.integers(0, 40, (n, 32, 32, 3), dtype=np.uint8)
        for i, label in enumerate(y):
            x[i, label * 8 : label * 8 + 8] = 230
        return x, y.astype(np.int64)

    (a, b), (c, d) = make(n_train), make(n_test)
    return ImageSet(name, a, b, c, d, origin="test")


HP = HyperParameters("digits", 2e-3, 32, False, "adam", "relu", "glorot_uniform", 3, 3, 2, 4, 64)


def test_snapshot_policy():
    assert snapshot_epochs(19) == list(range(20))
    assert snapshot_epochs(1) == [0] * 10 + [1] * 10
    e = snapshot_epochs(1000)
    assert e[0] == 0 and e[-1] == 1000 and e == sorted(e)


def test_snapshot_one_is_the_initialisation_and_twenty_the_end():
    images = _tiny_images()
    r = train_network(HP, images, zoo_seed=3, network_id=7, config=TrainConfig(bn_decay=0.9, max_epochs=4))
    assert r.status == "completed" and r.n_epochs == 4
    assert r.snapshot_epochs == snapshot_epochs(4)
    net = initialize_(
        NWSNet(HP.architecture, "relu"),
        "glorot_uniform",
        torch.Generator().manual_seed(__import__("builder.engine.space").engine.space.torch_seed(3, 7, "init")),
    )
    for name, tensor in state_tensors(net).items():
        assert np.array_equal(r.weights[name][0], tensor.numpy())
    assert not np.array_equal(r.weights["conv0.weight"][-1], r.weights["conv0.weight"][0])
    assert all(len(r.history[m]) == 5 for m in METRICS)
    assert all(len(r.snapshot_metrics[m]) == 20 for m in METRICS)
    assert r.snapshot_metrics["test_accuracy"][-1] > 0.9  # the toy problem is easy
    # batch-norm statistics are part of the vector and move during training
    assert not np.array_equal(r.weights["conv0_bn.running_mean"][-1], r.weights["conv0_bn.running_mean"][0])


def test_same_network_same_weights():
    images = _tiny_images()
    cfg = TrainConfig(bn_decay=0.9, max_epochs=2)
    hp = HyperParameters("digits", 1e-3, 32, True, "sgd_momentum", "elu", "glorot_normal", 3, 3, 2, 4, 64)
    a = train_network(hp, images, zoo_seed=0, network_id=5, config=cfg)
    torch.manual_seed(1234)  # the global generator's state must not matter
    b = train_network(hp, images, zoo_seed=0, network_id=5, config=cfg)
    c = train_network(hp, images, zoo_seed=0, network_id=6, config=cfg)
    for k in a.weights:
        assert a.weights[k].tobytes() == b.weights[k].tobytes()
    assert not np.array_equal(a.weights["fc0.weight"], c.weights["fc0.weight"])
    assert a.history == b.history


def test_class_balancing_subsamples_each_class_to_the_smallest():
    images = _tiny_images(n_train=400)
    keep = np.flatnonzero(images.train_labels != 0)
    keep = np.concatenate([keep, np.flatnonzero(images.train_labels == 0)[:20]])  # class 0 rare
    small = ImageSet(
        "digits",
        images.train_images[keep],
        images.train_labels[keep],
        images.test_images,
        images.test_labels,
        origin="test",
    )
    r = train_network(HP, small, zoo_seed=0, network_id=0, config=TrainConfig(bn_decay=0.9, max_epochs=1))
    # 90 % of the rare class (about 18) times 4 classes, in full batches of 32
    assert r.images_seen <= 4 * 20 and r.images_seen % 32 == 0


def test_balanced_subset_takes_classes_in_turn_and_keeps_the_order():
    gen = torch.Generator().manual_seed(0)
    labels = torch.cat([torch.zeros(50), torch.ones(30), torch.full((5,), 2.0)]).long()
    order = torch.randperm(len(labels), generator=gen)
    sub = balanced_subset(order, labels[order], 40)
    counts = torch.bincount(labels[sub], minlength=3).tolist()
    assert len(sub) == 40 and len(set(sub.tolist())) == 40
    assert counts == [18, 17, 5]  # the rare class gives all it has, the others share the rest
    positions = [order.tolist().index(i) for i in sub.tolist()]
    assert positions == sorted(positions)  # a subsequence of the random order


def test_budget_options_cap_training_and_test_images():
    images = _tiny_images(n_train=400, n_test=80)
    cfg = TrainConfig(bn_decay=0.9, max_epochs=2, train_images=100, test_images=40, train_eval_images=30)
    a = train_network(HP, images, zoo_seed=0, network_id=3, config=cfg)
    b = train_network(HP, images, zoo_seed=0, network_id=3, config=cfg)
    assert all(a.weights[k].tobytes() == b.weights[k].tobytes() for k in a.weights)
    # 90 of the 100 images train (10 validate); 4 classes of about 22 each, full batches of 32, two epochs
    assert a.images_seen == 2 * 64
    _x, y = fixed_test_subset(DeviceImages(images, "cpu"), 40)
    assert len(y) == 40 and torch.equal(fixed_test_subset(DeviceImages(images, "cpu"), 40)[1], y)
    assert all(a.history[m][0] * 40 == round(a.history[m][0] * 40) for m in ["test_accuracy"])
    full = train_network(HP, images, zoo_seed=0, network_id=3, config=TrainConfig(bn_decay=0.9, max_epochs=2))
    assert full.images_seen > a.images_seen
    with pytest.raises(ConfigError, match="train_images"):
        TrainConfig(train_images=5)


def test_divergence_is_kept_with_status():
    hp = HyperParameters("digits", 1e30, 32, False, "sgd_momentum", "relu", "normal", 3, 3, 2, 4, 64)
    r = train_network(hp, _tiny_images(), zoo_seed=0, network_id=0, config=TrainConfig(bn_decay=0.9, max_epochs=10))
    assert r.status == "diverged" and r.n_epochs < 10
    assert r.snapshot_epochs[-1] == r.n_epochs
    assert not np.isfinite(r.weights["out.weight"][-1]).all()  # the diverged weights are kept, not hidden
    assert np.isfinite(r.weights["out.weight"][0]).all()


def test_on_divergence_continue_trains_on_as_the_original_and_is_still_recorded_diverged():
    """The original did not stop at a non-finite export: it trained on until a counter fired (with constant
    accuracy: 30 unchanged epochs) or its cap. "continue" does that; the default stops there. Both: "diverged",
    the non-finite weights kept, the engine and the reference loop agreeing on the epochs."""
    from tests.reference_trainer import reference_train

    hp = HyperParameters("digits", 1e30, 32, False, "sgd_momentum", "relu", "normal", 3, 3, 2, 4, 64)
    images = _tiny_images()
    runs = {}
    for mode in ("stop", "continue"):
        cfg = TrainConfig(max_epochs=24, epoch_cap="epochs", on_divergence=mode)
        runs[mode] = train_network(hp, images, zoo_seed=0, network_id=0, config=cfg)
        ref = reference_train(hp, images, zoo_seed=0, network_id=0, config=cfg)
        assert (runs[mode].status, runs[mode].n_epochs) == (ref.status, ref.n_epochs) == ("diverged", ref.n_epochs)
        assert not np.isfinite(runs[mode].weights["out.weight"][-1]).all()
    assert runs["stop"].n_epochs < 5 and runs["continue"].n_epochs == 24  # the cap: no counter fired before it
    with pytest.raises(ConfigError, match="on_divergence"):
        TrainConfig(on_divergence="ignore")


def original_exports(n_images: int, batch: int, epochs: int) -> int:
    """classifier.py's loop, transcribed: the exports of ``for i in range(int(epochs*N/batch_size) + 1)`` with
    ``if i % int(N/batch_size) == 0`` (the first is the initialisation), when no early stopping fires."""
    return sum(1 for i in range(int(epochs * n_images / batch) + 1) if i % int(n_images / batch) == 0)


@settings(max_examples=300, deadline=None)
@given(st.integers(32, 60_000), st.sampled_from([32, 64, 128, 256]), st.integers(1, 1000))
def test_the_epoch_cap_is_the_originals_loop_bound(n_images, batch, epochs):
    if n_images < batch:
        return
    cfg = TrainConfig(max_epochs=epochs)
    assert epoch_limit(cfg, n_images, batch) == original_exports(n_images, batch, epochs) - 1
    assert epoch_limit(TrainConfig(max_epochs=epochs, epoch_cap="epochs"), n_images, batch) == epochs


def test_a_network_trains_to_the_originals_cap_not_exactly_max_epochs():
    """Balanced epochs of 48 images (of this network's 63 training images) at batch 32: one step an epoch, and the
    original's loop ran int(2 * 48 / 32) + 1 = 4 steps for --epochs 2, exporting at each: 3 epochs after the
    initialisation. epoch_cap="epochs": 2."""
    images = _tiny_images(n_train=70)
    cfg = TrainConfig(max_epochs=2, min_epochs=50)
    capped = train_network(HP, images, zoo_seed=0, network_id=4, config=cfg)
    exact = train_network(HP, images, zoo_seed=0, network_id=4, config=TrainConfig(max_epochs=2, epoch_cap="epochs"))
    per_epoch = capped.images_seen // capped.n_epochs
    assert per_epoch == 32 and capped.status == exact.status == "completed"
    assert (capped.n_epochs, exact.n_epochs) == (3, 2)
    for k in exact.weights:  # the same network: its third epoch comes on top
        assert np.array_equal(capped.weights[k][0], exact.weights[k][0])


def original_stop(curve: list[float], max_epochs: int = 1000) -> int:
    """classifier.py's epoch loop, transcribed: ``curve[k]`` is the validation accuracy at export k + 1 (export 1
    is the initialisation). Returns the number of trained epochs when it stops (ii - 1)."""
    es = esS = esP = 0
    curr_acc = curr_acc_smooth = 0.0
    for k, acc in enumerate(curve[: max_epochs + 1]):
        ii = k + 1
        if ii > 1 and acc < curr_acc:
            es += 1
            esS = 0
        elif ii > 1 and np.abs(acc - curr_acc) < 1e-8:
            esS += 1
        else:
            es = 0
            esS = 0
        curr_acc = acc
        curr_acc_smooth = curr_acc if ii == 1 else 0.5 * curr_acc_smooth + 0.5 * acc
        if ii > 1 and curr_acc < curr_acc_smooth:
            esP += 1
        if (es >= 5 or esP >= 30 or esS >= 30) and ii >= 20:
            return ii - 1
    return min(len(curve) - 1, max_epochs)


def our_stop(curve: list[float], config: TrainConfig | None = None) -> int:
    config = config or TrainConfig()
    stopper = EarlyStopping(config)
    for epoch, acc in enumerate(curve[: config.max_epochs + 1]):
        if stopper.update(epoch, acc):
            return epoch
    return min(len(curve) - 1, config.max_epochs)


def test_early_stopping_hand_made_curves():
    rise = [0.1 + 0.02 * e for e in range(25)]
    # Five falls in a row: stops at the fifth, but not before 19 trained epochs (the 20th export).
    falls = rise[:10] + [0.3 - 0.01 * e for e in range(1, 40)]
    assert original_stop(falls) == our_stop(falls) == 19
    late_falls = rise + [rise[-1] - 0.01 * e for e in range(1, 10)]
    assert original_stop(late_falls) == our_stop(late_falls) == 24 + 5
    # An unchanged epoch between falls neither counts nor resets the fall counter.
    ties = [*rise, 0.5, 0.49, 0.49, 0.48, 0.48, 0.47, 0.46, 0.46, 0.45]
    assert original_stop(ties) == our_stop(ties) == 24 + 7  # the 5th fall, two ties in between
    # A plateau: 30 unchanged epochs in a row.
    plateau = rise + [rise[-1]] * 40
    assert original_stop(plateau) == our_stop(plateau) == 24 + 30
    # Differences below 1e-8 count as unchanged; a tiny fall below 1e-8 still counts as a fall (checked first).
    jitter = rise + [rise[-1] + (1e-9 if e % 2 else 0.0) for e in range(1, 40)]
    assert original_stop(jitter) == our_stop(jitter)
    # Noisy rises: below the smoothed value now and then, never reset: stops at the 30th such epoch in all.
    noisy = [0.1]
    for e in range(1, 400):
        noisy.append(noisy[-1] + (0.004 if e % 3 else -0.006))
    expected = original_stop(noisy)
    assert our_stop(noisy) == expected == 90  # every third epoch dips: the 30th dip
    # A steady rise never stops: the cap.
    steady = [0.1 + 1e-4 * e for e in range(1201)]
    assert original_stop(steady) == our_stop(steady) == 1000


def test_smoothed_counter_is_cumulative_not_consecutive():
    """Dips below the smoothed value separated by rises: the original counts them in all (30 -> stop); a
    consecutive counter would never stop this curve."""
    curve = [0.1]
    for e in range(1, 300):
        curve.append(curve[-1] + (0.01 if e % 2 else -0.008))  # every second epoch dips below the smoothed value
    stop = our_stop(curve)
    assert stop == original_stop(curve) == 60  # the 30th dip; never two in a row


def test_smoothed_value_is_seeded_with_the_initialisation():
    # A high initial accuracy keeps the smoothed value above the first epochs: each counts as below it.
    curve = [0.9] + [0.5 + 0.001 * e for e in range(1, 200)]
    assert our_stop(curve) == original_stop(curve)
    stopper = EarlyStopping(TrainConfig())
    stopper.update(0, 0.9)
    stopper.update(1, 0.5)
    assert stopper.smoothed == pytest.approx(0.7) and stopper.below == 1


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([0.0, 0.01, -0.01, 0.02, -0.003, 1e-9, 0.05]), min_size=1, max_size=300),
    st.sampled_from([0.1, 0.5, 0.9]),
)
def test_early_stopping_matches_the_transcription_on_any_curve(steps, start):
    """Random walks with exact ties, tiny steps, falls and rises: the same stop epoch as the original."""
    curve = list(np.cumsum([start, *steps]))
    config = TrainConfig(max_epochs=250)
    assert our_stop(curve, config) == original_stop(curve, max_epochs=250)


def test_mnist_pool_is_what_read_data_sets_called_train():
    """MNIST / Fashion-MNIST networks never see training images 0..4,999 (TF's own validation set)."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 40, (5400, 32, 32, 3), dtype=np.uint8)
    y = np.concatenate([np.arange(5000) % 10, np.arange(400) % 4])  # classes 4..9 only among the first 5,000
    test = _tiny_images(n_train=40, n_test=40)
    for name in ("mnist", "fashion"):
        images = ImageSet(name, x, y, test.test_images, test.test_labels, origin="test")
        hp = HyperParameters(name, 1e-3, 32, False, "adam", "relu", "glorot_uniform", 3, 3, 2, 4, 64)
        r = train_network(hp, images, zoo_seed=0, network_id=0, config=TrainConfig(max_epochs=1))
        # Classes 0..3 of the last 400 images, about 90 each after the split: at most 360 images an epoch.
        assert r.images_seen <= 360
    digits = ImageSet("digits", x, y, test.test_images, test.test_labels, origin="test")
    r = train_network(HP, digits, zoo_seed=0, network_id=0, config=TrainConfig(max_epochs=1))
    assert r.images_seen > 3000  # other sources use every training image


def test_validation_split_is_the_originals_int_point_nine_n():
    images = _tiny_images(n_train=105)
    cfg = TrainConfig(max_epochs=1, train_eval_images=None)
    r = train_network(HP, images, zoo_seed=0, network_id=0, config=cfg)
    # int(0.9 * 105) = 94 train, 11 validation: the validation accuracy is a multiple of 1/11.
    assert round(r.history["val_accuracy"][1] * 11, 6) == round(r.history["val_accuracy"][1] * 11)


def test_released_evaluation_updates_moving_statistics_and_is_recorded():
    images = _tiny_images()
    clean = train_network(HP, images, zoo_seed=0, network_id=2, config=TrainConfig(max_epochs=2))
    rel = train_network(HP, images, zoo_seed=0, network_id=2, config=TrainConfig(max_epochs=2, evaluation="released"))
    # Same initial weights; the exported moving statistics already differ at export 1 (the evaluation passes).
    assert np.array_equal(clean.weights["conv0.weight"][0], rel.weights["conv0.weight"][0])
    assert np.array_equal(clean.weights["conv0_bn.running_var"][0], np.ones(4, np.float32))
    assert not np.array_equal(rel.weights["conv0_bn.running_var"][0], clean.weights["conv0_bn.running_var"][0])
    # Per-batch means: the validation accuracy (40 images, batch 32: one batch) is a multiple of 1/32.
    v = rel.history["val_accuracy"][-1]
    assert round(v * 32, 6) == round(v * 32)
    with pytest.raises(Exception, match="clean"):
        TrainConfig(evaluation="tf")


def test_lr_decay_option():
    images = _tiny_images()
    r1 = train_network(HP, images, zoo_seed=0, network_id=1, config=TrainConfig(bn_decay=0.9, max_epochs=2))
    r2 = train_network(
        HP, images, zoo_seed=0, network_id=1, config=TrainConfig(bn_decay=0.9, max_epochs=2, lr_decay=0.5)
    )
    assert np.array_equal(r1.weights["fc0.weight"][10], r2.weights["fc0.weight"][10])  # epoch 1 identical
    assert not np.array_equal(r1.weights["fc0.weight"][-1], r2.weights["fc0.weight"][-1])  # epoch 2 differs


@pytest.mark.slow
def test_demo_network_learns_digits():
    hp = HyperParameters("digits", 1e-3, 64, False, "adam", "relu", "glorot_uniform")
    r = train_network(
        hp, load_images("digits"), zoo_seed=0, network_id=0, config=TrainConfig(bn_decay=0.9, max_epochs=8)
    )
    assert r.snapshot_metrics["test_accuracy"][-1] > 0.85
    assert r.snapshot_metrics["test_accuracy"][0] < 0.3  # the initialisation knows nothing
    assert get_preset("demo").sample(0, 0).dataset == "digits"


def test_real_mnist_one_epoch_reaches_high_accuracy(shared_data, tmp_path):
    """One epoch of a ReLU / Adam nws_fixed network on the real MNIST files."""
    images = load_images("mnist", shared_data, cache_dir=tmp_path)
    hp = HyperParameters("mnist", 1e-3, 128, False, "adam", "relu", "glorot_uniform")
    r = train_network(hp, images, zoo_seed=0, network_id=0, config=TrainConfig(max_epochs=1, train_eval_images=1000))
    # 55,000-image pool, 49,500 train: balanced to 10 x its smallest class (about 4,490 fives)
    assert r.status == "completed" and 43_000 < r.images_seen < 45_500
    assert r.snapshot_metrics["test_accuracy"][-1] > 0.95
    assert r.snapshot_metrics["test_accuracy"][0] < 0.2


def test_device_is_where_the_images_are_or_refused():
    """Every accepted parameter works: train_network(device=) with images already on a device either agrees or is
    refused, never silently ignored."""
    images = DeviceImages(_tiny_images(), "cpu")
    cfg = TrainConfig(max_epochs=1)
    a = train_network(HP, images, zoo_seed=0, network_id=0, config=cfg)
    b = train_network(HP, images, zoo_seed=0, network_id=0, config=cfg, device="cpu")
    assert all(a.weights[k].tobytes() == b.weights[k].tobytes() for k in a.weights)
    with pytest.raises(ConfigError, match="images given are on cpu"):
        train_network(HP, images, zoo_seed=0, network_id=0, config=cfg, device="meta")
