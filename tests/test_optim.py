"""The zoo's optimizers against float64 transcriptions of TensorFlow 1's update rules (not against our code)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from weightzoo.errors import UnknownNameError
from weightzoo.optim import TF1Adam, TF1RMSprop, make_optimizer

STEPS = 200


def tf1_rmsprop(w, grads, lr, decay=0.9, eps=1e-10):
    """tf.train.RMSPropOptimizer, momentum 0: ms starts at ONES, epsilon inside the root."""
    ms = np.ones_like(w)
    out = []
    for g in grads:
        ms = decay * ms + (1 - decay) * g * g
        w = w - lr * g / np.sqrt(ms + eps)
        out.append(w)
    return np.array(out)


def tf1_adam(w, grads, lr, b1=0.9, b2=0.999, eps=1e-8):
    """tf.train.AdamOptimizer: lr_t = lr sqrt(1 - b2^t) / (1 - b1^t); w -= lr_t m / (sqrt(v) + eps)."""
    m, v = np.zeros_like(w), np.zeros_like(w)
    out = []
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * np.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps)
        out.append(w)
    return np.array(out)


def tf1_momentum(w, grads, lr, momentum=0.95):
    """tf.train.MomentumOptimizer(lr, 0.95), not Nesterov: accum = momentum accum + g; w -= lr accum."""
    acc = np.zeros_like(w)
    out = []
    for g in grads:
        acc = momentum * acc + g
        w = w - lr * acc
        out.append(w)
    return np.array(out)


def torch_rmsprop_zeros(w, grads, lr):
    """PyTorch's RMSprop (alpha 0.9, eps 1e-10 outside the root): the rule the zoo used before, for contrast."""
    p = torch.nn.Parameter(torch.tensor(w, dtype=torch.float64))
    opt = torch.optim.RMSprop([p], lr=lr, alpha=0.9, eps=1e-10)
    out = []
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
        out.append(p.detach().numpy().copy())
    return np.array(out)


def gradients(scale: float, seed: int = 0) -> np.ndarray:
    """200 steps of gradients for 64 weights at a given magnitude, with sign changes and a slow drift."""
    rng = np.random.default_rng(seed)
    return scale * (rng.standard_normal((STEPS, 64)) + 0.3 * np.sin(np.arange(STEPS) / 10)[:, None])


def run(name: str, w0: np.ndarray, grads: np.ndarray, lr: float) -> np.ndarray:
    p = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float32))
    opt = make_optimizer(name, [p], lr)
    out = []
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float32)
        opt.step()
        out.append(p.detach().double().numpy().copy())
    return np.array(out)


REFERENCE = {"rmsprop": tf1_rmsprop, "adam": tf1_adam, "sgd_momentum": tf1_momentum}


@pytest.mark.parametrize("name", sorted(REFERENCE))
@pytest.mark.parametrize("scale", [1.0, 1e-3, 1e-6])
@pytest.mark.parametrize("lr", [0.0002, 0.005])
def test_trajectory_matches_tf1_rule_over_200_steps(name, scale, lr):
    rng = np.random.default_rng(1)
    # Starting weights on the gradients' scale, so float32 can resolve the displacement being compared.
    w0 = (rng.standard_normal(64) * scale).astype(np.float32).astype(np.float64)
    grads = gradients(scale).astype(np.float32).astype(np.float64)
    ours = run(name, w0, grads, lr)
    ref = REFERENCE[name](w0, grads, lr)
    # Compare the displacement from the start: float32 arithmetic against float64, relative to how far it moved.
    moved = np.abs(ref - w0).max()
    assert moved > 0
    err = np.abs((ours - w0) - (ref - w0)).max()
    assert err <= 2e-3 * moved, (name, scale, lr, err, moved)


@pytest.mark.parametrize("scale", [1e-3, 1e-6])
def test_rmsprop_parts_from_pytorch_where_the_rules_differ(scale):
    """The two rules give visibly different trajectories for small gradients: the test above can tell them apart."""
    w0 = np.zeros(64)
    grads = gradients(scale)
    ref, torch_rule = tf1_rmsprop(w0, grads, 0.001), torch_rmsprop_zeros(w0, grads, 0.001)
    assert np.abs(torch_rule[9] - w0).max() > 5 * np.abs(ref[9] - w0).max()


def test_adam_epsilon_hat_differs_from_pytorch_for_tiny_gradients():
    grads = gradients(1e-6)
    w0 = np.zeros(64)
    ref = tf1_adam(w0, grads, 0.001)
    p = torch.nn.Parameter(torch.zeros(64, dtype=torch.float64))
    opt = torch.optim.Adam([p], lr=0.001, eps=1e-8)
    for g in grads[:1]:
        p.grad = torch.tensor(g)
        opt.step()
    ours = run("adam", w0, grads[:1], 0.001)[0]
    assert np.allclose(ours, ref[0], rtol=1e-4, atol=0)
    assert not np.allclose(p.detach().numpy(), ref[0], rtol=0.05, atol=0)


def test_state_of_several_parameters_is_kept_apart():
    a, b = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2))
    for cls in (TF1Adam, TF1RMSprop):
        opt = cls([a, b], lr=0.01)
        a.grad, b.grad = torch.ones(3), None  # a parameter without a gradient is skipped
        opt.step()
        assert b not in opt.state and a in opt.state


def test_unknown_optimizer_names_the_choices():
    with pytest.raises(UnknownNameError, match="sgd_momentum"):
        make_optimizer("sgd", [torch.nn.Parameter(torch.zeros(1))], 0.01)
