"""Rules of the original code that only a transcription of the original can check (issue "One training engine",
"the rules no test catches"): each test fails when its rule is broken (tried: flattening (c, h, w), dropping the
per-step accuracy passes of the released evaluation, a 0.8 split).

- The flat vector and the forward pass: a network built in the original's TensorFlow variable layout (NHWC
  activations, HWIO kernels, [in, out] dense matrices), flattened as ``model.print_all_vars`` writes it and run by
  a numpy transcription of ``model.deepnn`` (inference: TensorLayer batch norm on its moving statistics), gives the
  outputs the package's ``from_flat`` + ``NWSNet`` give for that vector.
- ``evaluation="released"``: between two exports the original runs, through its training graph (every pass
  updating the batch-norm moving statistics), one accuracy pass per training step, the training steps, then
  ``int(N_valid / bs)`` validation and ``int(N_test / bs)`` test passes (``classifier.py``'s loop).
- The per-network split is ``int(0.9 N)`` training images, the rest validation.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import builder.engine.member as member_module
from builder.engine.member import Member
from builder.engine.pack_lane import Lane
from builder.engine.sources import load_images
from builder.engine.space import get_preset
from builder.engine.train import DeviceImages, TrainConfig, network_split, train_network
from weightzoo.architecture import Architecture
from weightzoo.model import NWSNet, from_flat

pytestmark = pytest.mark.usefixtures("one_thread")


# -- the original's layout and forward pass, transcribed ----------------------------------------------------------


def _tf_variables(arch: Architecture, rng: np.random.Generator) -> list[np.ndarray]:
    """The variables ``model.deepnn`` creates, in creation order and TensorFlow layout: per conv layer the kernel
    [k, k, in, out] and bias, then its ``BatchNormLayer``'s beta, gamma, moving mean, moving variance; per dense
    layer the matrix [in, out], bias, and batch norm; the output layer's matrix and bias."""
    out: list[np.ndarray] = []
    c_in, k = 3, arch.filter_size
    for c_out in arch.conv_channels:
        out += [rng.normal(0, 0.3, (k, k, c_in, c_out)), rng.normal(0, 0.1, c_out)]
        out += _bn_variables(c_out, rng)
        c_in = c_out
    n_in = arch.flat_features
    for n_out in arch.fc_units:
        out += [rng.normal(0, 0.1, (n_in, n_out)), rng.normal(0, 0.1, n_out)]
        out += _bn_variables(n_out, rng)
        n_in = n_out
    out += [rng.normal(0, 0.1, (n_in, 20)), rng.normal(0, 0.1, 20)]
    return out


def _bn_variables(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A ``BatchNormLayer``'s beta, gamma, moving mean and moving variance (trained-looking values)."""
    return [rng.normal(0, 0.1, n), rng.normal(1, 0.1, n), rng.normal(0, 0.1, n), rng.uniform(0.5, 2, n)]


def _print_all_vars(variables: list[np.ndarray]) -> np.ndarray:
    """``model.print_all_vars``: a 4-D variable output channel by output channel, within that input channel by
    input channel, each ``var[:, :, j, i]`` row-major; a 2-D one column by column (``var[:, i]``); 1-D as is."""
    parts = []
    for var in variables:
        if var.ndim == 4:
            parts += [var[:, :, j, i].reshape(-1) for i in range(var.shape[3]) for j in range(var.shape[2])]
        elif var.ndim == 2:
            parts += [var[:, i] for i in range(var.shape[1])]
        else:
            parts.append(var.reshape(-1))
    return np.concatenate(parts)


def _act(x: np.ndarray, name: str) -> np.ndarray:
    return {
        "relu": lambda v: np.maximum(v, 0),
        "elu": lambda v: np.where(v > 0, v, np.expm1(np.minimum(v, 0))),
        "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
        "tanh": np.tanh,
    }[name](x)


def _conv_same(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``tf.nn.conv2d(x, w, strides 1, 'SAME') + b`` for NHWC ``x`` and HWIO ``w`` (odd k: pad k // 2)."""
    k = w.shape[0]
    p = k // 2
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    n, h, wd, _ = x.shape
    out = np.zeros((n, h, wd, w.shape[3]))
    for dy in range(k):
        for dx in range(k):
            out += np.einsum("nhwc,co->nhwo", xp[:, dy : dy + h, dx : dx + wd, :], w[dy, dx])
    return out + b


def _bn(x: np.ndarray, beta, gamma, mean, var, eps: float = 1e-5) -> np.ndarray:
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _deepnn(x: np.ndarray, variables: list[np.ndarray], arch: Architecture, act: str) -> np.ndarray:
    """``model.deepnn`` at inference on NHWC images: conv + bias, batch norm, activation per conv layer, 2x2 max
    pool per block, ``tf.reshape`` to [N, h * w * c], dense + bias, activation, batch norm per dense layer, output."""
    it = iter(variables)
    for n_layers in arch.blocks:
        for _ in range(n_layers):
            w, b, beta, gamma, mean, var = (next(it) for _ in range(6))
            x = _act(_bn(_conv_same(x, w, b), beta, gamma, mean, var), act)
        n, h, wd, c = x.shape
        x = x.reshape(n, h // 2, 2, wd // 2, 2, c).max(axis=(2, 4))
    x = x.reshape(len(x), -1)  # NHWC flattened: (h, w, c) order
    for _ in arch.fc_units:
        w, b, beta, gamma, mean, var = (next(it) for _ in range(6))
        x = _bn(_act(x @ w + b, act), beta, gamma, mean, var)
    w, b = next(it), next(it)
    return x @ w + b


@pytest.mark.parametrize(
    ("arch", "act"),
    [
        (Architecture(3, 3, 2, 2, 16), "elu"),
        (Architecture(5, 4, 3, 2, 16), "tanh"),
        (Architecture(7, 5, 2, 2, 8), "relu"),
    ],
)
def test_the_flat_vector_and_forward_pass_are_the_originals(arch, act):
    rng = np.random.default_rng(arch.filter_size)
    variables = _tf_variables(arch, rng)
    vector = _print_all_vars(variables)
    assert len(vector) == arch.num_params
    images = rng.uniform(0, 1, (3, 32, 32, 3))  # NHWC, as the original feeds them
    expected = _deepnn(images, variables, arch, act)
    net = NWSNet(arch, act).double()  # float64 throughout: the comparison is exact up to summation order
    net.load_state_dict(from_flat(torch.from_numpy(vector), arch), strict=False)
    net.eval()
    got = net(torch.from_numpy(images).permute(0, 3, 1, 2)).detach().numpy()  # NCHW for PyTorch
    assert got.shape == (3, 20)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)


# -- the released evaluation's schedule of batch-norm updating passes ----------------------------------------------


def test_released_evaluation_runs_the_originals_passes_between_exports(monkeypatch):
    hp = next(h for h in (get_preset("demo").sample(0, i) for i in range(50)) if h.batch_size == 32)
    config = TrainConfig(max_epochs=3, evaluation="released", train_images=400, test_images=100, train_eval_images=40)
    passes = {"bn_train": 0, "steps": 0}
    log: list[dict[str, int]] = []
    splits = []

    real_forward, real_capture, real_split = Lane._forward, Member.capture, member_module.network_split

    def forward(self, S, x, masks, act_runs):  # every pass through the training graph moves the statistics
        passes["bn_train"] += 1
        passes["steps"] += masks is not None  # a training step (dropout on)
        return real_forward(self, S, x, masks, act_runs)

    def export(self, *args, **kwargs):  # the weights are copied for export
        log.append(dict(passes))
        return real_capture(self, *args, **kwargs)

    def split(*args):
        splits.append(real_split(*args))
        return splits[-1]

    monkeypatch.setattr(Lane, "_forward", forward)
    monkeypatch.setattr(Member, "capture", export)
    monkeypatch.setattr(member_module, "network_split", split)
    result = train_network(hp, load_images("digits"), zoo_seed=0, network_id=0, config=config)
    n_val, n_test = (len(splits[0].eval_sets[part][1]) for part in ("val", "test"))
    per_export = n_val // 32 + n_test // 32  # int(N_valid / bs) + int(N_test / bs)
    assert n_val // 32 >= 1 and n_test // 32 >= 2 and len(log) == result.n_epochs + 1 == 4
    assert log[0] == {"steps": 0, "bn_train": 1 + per_export}  # the first batch's accuracy, valid, test
    for before, after in itertools.pairwise(log):
        steps = after["steps"] - before["steps"]
        assert steps > 1
        # each step: an accuracy pass then the training step; at the export: the next batch's accuracy, valid, test
        assert after["bn_train"] - before["bn_train"] == 2 * steps + per_export


# -- the split ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("train_images", [None, 999, 400])
def test_the_split_is_int_0_9_n_training_images_and_the_rest_validation(train_images):
    hp = get_preset("demo").sample(0, 0)
    data = DeviceImages(load_images("digits"), "cpu")
    split = network_split(hp, data, TrainConfig(train_images=train_images), torch.Generator().manual_seed(0))
    pool = len(data.train_y) if train_images is None else train_images
    n_train = sum(len(p) for p in split.per_class)
    assert n_train == int(0.9 * pool)
    assert len(split.eval_sets["val"][1]) == pool - int(0.9 * pool)


def test_clean_metrics_use_whole_validation_and_test_sets_and_a_10000_image_train_subset():
    """What the README says the clean evaluation measures: every validation and test image, and at most 10,000
    training images for the train metric (a fixed subset of the network's own training images)."""
    from tests.test_train import _tiny_images

    images = _tiny_images(n_train=12_000, n_test=300, seed=4)
    data = DeviceImages(images, "cpu")
    hp = get_preset("demo").sample(0, 0)
    config = TrainConfig()
    assert config.evaluation == "clean" and config.train_eval_images == 10_000 and config.test_images is None
    split = network_split(hp, data, config, torch.Generator().manual_seed(0))
    n_train = sum(len(p) for p in split.per_class)
    assert n_train == int(0.9 * 12_000) > 10_000
    assert len(split.eval_sets["train"][1]) == 10_000
    assert len(split.eval_sets["val"][1]) == 12_000 - n_train and len(split.eval_sets["test"][1]) == 300
