"""The trainer: snapshot policy, determinism by (seed, id), balancing, early stopping, divergence kept."""

import numpy as np
import pytest
import torch

from builder.sources import ImageSet, load_images
from builder.space import get_preset
from builder.train import (
    DeviceImages,
    TrainConfig,
    _balanced_subset,
    _EarlyStopping,
    _test_subset,
    snapshot_epochs,
    train_network,
)
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
        torch.Generator().manual_seed(__import__("builder.space").space.torch_seed(3, 7, "init")),
    )
    for name, tensor in state_tensors(net).items():
        assert np.array_equal(r.weights[name][0], tensor.numpy())
    assert not np.array_equal(r.weights["conv0.weight"][-1], r.weights["conv0.weight"][0])
    assert all(len(r.history[m]) == 5 for m in METRICS)
    assert all(len(r.snapshots[m]) == 20 for m in METRICS)
    assert r.snapshots["test_accuracy"][-1] > 0.9  # the toy problem is easy
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
    sub = _balanced_subset(order, labels[order], 40)
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
    _x, y = _test_subset(DeviceImages(images, "cpu"), 40)
    assert len(y) == 40 and torch.equal(_test_subset(DeviceImages(images, "cpu"), 40)[1], y)
    assert all(a.history[m][0] * 40 == round(a.history[m][0] * 40) for m in ["test_accuracy"])
    full = train_network(HP, images, zoo_seed=0, network_id=3, config=TrainConfig(bn_decay=0.9, max_epochs=2))
    assert full.images_seen > a.images_seen
    with pytest.raises(ConfigError, match="train_images"):
        TrainConfig(train_images=5)


def test_divergence_is_kept_with_status():
    hp = HyperParameters("digits", 0.005, 32, False, "sgd_momentum", "relu", "normal", 3, 3, 2, 4, 64)
    images = _tiny_images()
    import builder.train as train_mod

    original = train_mod._optimizer

    def exploding(h, params):
        return torch.optim.SGD(params, lr=1e30)

    train_mod._optimizer = exploding
    try:
        r = train_network(hp, images, zoo_seed=0, network_id=0, config=TrainConfig(bn_decay=0.9, max_epochs=10))
    finally:
        train_mod._optimizer = original
    assert r.status == "diverged" and r.n_epochs < 10
    assert r.snapshot_epochs[-1] == r.n_epochs
    assert not np.isfinite(r.weights["out.weight"][-1]).all()  # the diverged weights are kept, not hidden
    assert np.isfinite(r.weights["out.weight"][0]).all()


def test_early_stopping_rules():
    cfg = TrainConfig(min_epochs=20)
    s = _EarlyStopping(cfg)
    # falling 5 epochs in a row before epoch 20 does not stop; after it does
    accs = [0.5 + 0.01 * i for i in range(15)] + [0.6 - 0.01 * i for i in range(10)]
    stops = [s.update(e + 1, a) for e, a in enumerate(accs)]
    assert not any(stops[:19]) and stops.index(True) == 19  # 5th fall at epoch 20
    s = _EarlyStopping(cfg)
    stops = [s.update(e + 1, 0.7) for e in range(40)]
    assert stops.index(True) + 1 == 31  # unchanged 30 epochs in a row
    s = _EarlyStopping(cfg)
    stops = [s.update(e + 1, 0.5 + 0.001 * e) for e in range(100)]
    assert not any(stops)  # still improving


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
    assert r.snapshots["test_accuracy"][-1] > 0.85
    assert r.snapshots["test_accuracy"][0] < 0.3  # the initialisation knows nothing
    assert get_preset("demo").sample(0, 0).dataset == "digits"


def test_real_mnist_one_epoch_reaches_high_accuracy(shared_data, tmp_path):
    """One epoch of a ReLU / Adam nws_fixed network on the real MNIST files."""
    images = load_images("mnist", shared_data, cache_dir=tmp_path)
    hp = HyperParameters("mnist", 1e-3, 128, False, "adam", "relu", "glorot_uniform")
    r = train_network(hp, images, zoo_seed=0, network_id=0, config=TrainConfig(max_epochs=1, train_eval_images=1000))
    assert r.status == "completed" and r.images_seen > 45_000  # balanced: 10 x the smallest class of 54,000
    assert r.snapshots["test_accuracy"][-1] > 0.95
    assert r.snapshots["test_accuracy"][0] < 0.2
