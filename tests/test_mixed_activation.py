"""Several activations over one tensor (builder.engine.mixed_activation): the split-and-join path's bits."""

import pytest
import torch
import torch.nn.functional as F

from builder.engine.mixed_activation import mixed_activation
from builder.engine.op_count import OpCounter

_ACT = {"relu": F.relu, "elu": F.elu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}


def _joined(x, dim, sizes, names):
    return torch.cat([_ACT[n](part) for n, part in zip(names, x.split(sizes, dim), strict=True)], dim)


@pytest.mark.parametrize(
    ("shape", "dim", "sizes", "names"),
    [
        ((8, 24, 6, 6), 1, [8, 4, 12], ["elu", "relu", "tanh"]),  # a conv layer's [B, P*C, H, W]
        ((16, 5, 33), 0, [3, 2, 4, 6, 1], ["relu", "sigmoid", "elu", "tanh", "relu"]),  # dense [P, B, n]
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_values_and_gradients_are_the_split_and_joined_ones_bit_for_bit(shape, dim, sizes, names, dtype):
    g = torch.Generator().manual_seed(0)
    base = torch.randn(shape, generator=g, dtype=dtype) * 3
    base.view(-1)[::7] = 0.0  # exact zeros: where relu's and elu's gradients switch
    dy = torch.randn(shape, generator=g, dtype=dtype)
    a, b = base.clone().requires_grad_(), base.clone().requires_grad_()
    ya, yb = mixed_activation(a, dim, sizes, names), _joined(b, dim, sizes, names)
    (ga,), (gb,) = torch.autograd.grad(ya, a, dy), torch.autograd.grad(yb, b, dy)
    assert torch.equal(ya, yb) and torch.equal(ga, gb)


def test_a_non_contiguous_input_and_gradient():
    """A dense layer's activations arrive as a transposed view, and so may their gradients."""
    x = torch.randn(16, 6, 10).transpose(0, 1).requires_grad_()
    dy = torch.randn(16, 6, 10).transpose(0, 1)
    sizes, names = [2, 4], ["tanh", "elu"]
    y = mixed_activation(x, 0, sizes, names)
    (g,) = torch.autograd.grad(y, x, dy)
    x2 = x.detach().clone().requires_grad_()
    (g2,) = torch.autograd.grad(_joined(x2, 0, sizes, names), x2, dy)
    assert torch.equal(y, _joined(x.detach(), 0, sizes, names)) and torch.equal(g, g2)


def test_no_concatenation_and_fewer_kernels_than_split_and_join():
    x = torch.randn(8, 24, 6, 6, requires_grad=True)
    sizes, names = [8, 8, 8], ["relu", "elu", "tanh"]
    counts = []
    for f in (mixed_activation, _joined):
        with OpCounter() as count:
            torch.autograd.grad(f(x, 1, sizes, names).sum(), x)
        counts.append(count)
    ours, theirs = counts
    assert "cat" not in ours.ops and ours.kernels == theirs.kernels - 2 and ours.bytes < theirs.bytes
