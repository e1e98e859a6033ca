"""Search spaces: the reference presets exactly, determinism by (seed, id), independence of draws."""

from collections import Counter

import pytest

from builder.engine.space import PRESETS, get_preset, rng_for, split_of
from weightzoo.errors import ConfigError, UnknownNameError
from weightzoo.hparams import HyperParameters, code_of


def test_nws_main_is_the_reference_space():
    s = get_preset("nws_main")
    assert set(s.choices["dataset"]) == {"mnist", "cifar10", "svhn", "stl10", "fashion"}
    assert s.learning_rate == (0.0002, 0.005)
    assert s.choices["batch_size"] == (32, 64, 128, 256)
    assert s.choices["batch_norm"] == (True,)
    assert s.choices["augmentation"] == (False, True)
    assert s.choices["optimizer"] == ("adam", "rmsprop", "sgd_momentum")
    assert s.choices["activation"] == ("relu", "elu", "sigmoid", "tanh")
    assert s.choices["initialization"] == ("constant", "normal", "glorot_uniform", "glorot_normal")
    assert s.choices["filter_size"] == (3, 5, 7)
    assert s.choices["depth_conv"] == (3, 4, 5) and s.choices["depth_fc"] == (2, 3, 4)
    assert s.choices["width_conv"] == (4, 8, 12) and s.choices["width_fc"] == (64, 128, 192)


def test_nws_fixed_fixes_only_the_architecture():
    fixed, main = get_preset("nws_fixed"), get_preset("nws_main")
    arch = {"filter_size": (5,), "depth_conv": (3,), "depth_fc": (2,), "width_conv": (8,), "width_fc": (128,)}
    for k, v in fixed.choices.items():
        assert v == arch.get(k, main.choices[k])
    for i in range(20):
        assert fixed.sample(0, i).architecture.num_params == 92_868


def test_same_network_same_hyperparameters_whatever_else():
    s = get_preset("nws_main")
    alone = s.sample(7, 123)
    batch = [s.sample(7, i) for i in range(200)]
    assert batch[123] == alone
    assert s.sample(8, 123) != alone  # another zoo seed, another network
    # restricting the dataset draw leaves every other draw of every network as it was
    r = s.restrict(dataset=["mnist", "fashion"])
    for i in range(50):
        a, b = s.sample(7, i), r.sample(7, i)
        assert b.dataset in ("mnist", "fashion")
        assert (a.optimizer, a.activation, a.learning_rate, a.filter_size) == (
            b.optimizer,
            b.activation,
            b.learning_rate,
            b.filter_size,
        )


def test_draws_are_uniform_and_cover_the_space():
    s = get_preset("nws_main")
    hps = [s.sample(0, i) for i in range(2000)]
    for name, options in s.choices.items():
        counts = Counter(getattr(h, name) for h in hps)
        assert set(counts) == set(options), name
        expected = len(hps) / len(options)
        assert all(abs(c - expected) < 5 * expected**0.5 for c in counts.values()), (name, counts)
    lrs = [h.learning_rate for h in hps]
    assert 0.0002 <= min(lrs) < 0.0004 and 0.0048 < max(lrs) <= 0.005


def test_split_by_whole_networks():
    splits = [split_of(i) for i in range(100)]
    assert splits.count("test") == 20
    assert split_of(4) == "test" and split_of(5) == "train"


def test_streams_are_independent():
    a = rng_for(0, 1, "init").random(4)
    assert not (a == rng_for(0, 1, "data").random(4)).all()
    assert (a == rng_for(0, 1, "init").random(4)).all()
    with pytest.raises(ConfigError):
        rng_for(-1, 0, "x")


def test_bad_names():
    with pytest.raises(UnknownNameError, match="nws_fixed") as e:
        get_preset("nws_big")
    assert e.value.valid == tuple(PRESETS)
    with pytest.raises(UnknownNameError, match="mnist"):
        get_preset("nws_main").restrict(dataset=["imagenet"])
    with pytest.raises(UnknownNameError, match="hyper-parameter"):
        get_preset("nws_main").restrict(momentum=[0.9])
    with pytest.raises(UnknownNameError, match="sgd_momentum"):
        HyperParameters("mnist", 1e-3, 64, False, "sgd", "relu", "constant")
    assert code_of("initialization", "glorot_normal") == 3
