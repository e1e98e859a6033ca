"""The lanes' batch norm (builder.engine.batch_norm): autograd's values, robust to offset inputs, per channel."""

import pytest
import torch

from builder.engine.batch_norm import batch_norm_train
from builder.engine.op_count import OpCounter

EPS = 1e-3


def _written_out(x, gamma, beta, eps):
    """The form generation version 5 used, differentiated by autograd."""
    dims = [0, *range(2, x.ndim)]
    shape = [1, -1] + [1] * (x.ndim - 2)
    var, mean = torch.var_mean(x, dim=dims, correction=0, keepdim=True)
    alpha = gamma.reshape(shape) / torch.sqrt(var + eps)
    return x * alpha + (beta.reshape(shape) - mean * alpha)


def _inputs(shape, dtype, offset=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = shape[1]
    x = (torch.randn(shape, generator=g, dtype=dtype) * 2 + offset).requires_grad_()
    gamma = (torch.rand(c, generator=g, dtype=dtype) + 0.5).requires_grad_()
    beta = torch.randn(c, generator=g, dtype=dtype).requires_grad_()
    dy = torch.randn(shape, generator=g, dtype=dtype)
    return x, gamma, beta, dy


def _grads(f, x, gamma, beta, dy):
    y = f(x, gamma, beta)
    return (y, *torch.autograd.grad(y, (x, gamma, beta), dy))


@pytest.mark.parametrize("shape", [(16, 6), (4, 6, 5, 5), (3, 10, 7, 7), (2, 4, 1, 1)])
def test_forward_and_gradients_equal_autograds_of_the_written_out_form(shape):
    x, gamma, beta, dy = _inputs(shape, torch.float64, offset=3.0)
    ours = _grads(lambda *a: batch_norm_train(*a, EPS)[0], x, gamma, beta, dy)
    theirs = _grads(lambda *a: _written_out(*a, EPS), x, gamma, beta, dy)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_channels_of_several_networks_with_strided_scales():
    """The lanes' call: x [B, P, C, H, W], scales and shifts [P, C] as views of a [P, N] buffer (not contiguous):
    the same as [B, P*C, H, W] with [P*C] scales, gradients shaped [P, C]."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(6, 3, 4, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    buffer = (torch.rand(3, 20, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    gamma, beta = buffer[:, 2:6], buffer[:, 10:14]
    dy = torch.randn(6, 3, 4, 5, 5, generator=g, dtype=torch.float64)
    y, mean, _ = batch_norm_train(x, gamma, beta, EPS)
    grads = torch.autograd.grad(y, (x, buffer), dy)
    flat = _grads(lambda *a: _written_out(*a, EPS), x.detach().flatten(1, 2).requires_grad_(),
                  gamma.detach().reshape(-1).requires_grad_(), beta.detach().reshape(-1).requires_grad_(),
                  dy.flatten(1, 2))  # fmt: skip
    assert mean.shape == (3, 4) and grads[1][:, :2].abs().max() == 0
    torch.testing.assert_close(y.flatten(1, 2), flat[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grads[0].flatten(1, 2), flat[1], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grads[1][:, 2:6].reshape(-1), flat[2], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grads[1][:, 10:14].reshape(-1), flat[3], rtol=1e-12, atol=1e-12)


def test_gradcheck():
    x, gamma, beta, _ = _inputs((5, 3, 4, 4), torch.float64)
    assert torch.autograd.gradcheck(lambda *a: batch_norm_train(*a, EPS)[0], (x, gamma, beta))


def test_statistics_are_the_batch_statistics_and_take_no_gradient():
    x, gamma, beta, _ = _inputs((8, 4, 3, 3), torch.float64)
    _, mean, var = batch_norm_train(x, gamma, beta, EPS)
    v, m = torch.var_mean(x.detach(), dim=(0, 2, 3), correction=0)
    assert torch.equal(mean, m) and torch.equal(var, v)
    assert not mean.requires_grad and not var.requires_grad


def test_float32_gradients_hold_for_inputs_far_from_zero():
    """Activations whose mean is a thousand standard deviations away: S2 is summed on centred values, so float32
    keeps the float64 gradients to 1e-4 (3.4e-5 measured; summing dy * x and subtracting mean * S1: 1.8e-4)."""
    x, gamma, beta, dy = _inputs((64, 4, 6, 6), torch.float64, offset=2000.0)
    exact = _grads(lambda *a: batch_norm_train(*a, EPS)[0], x, gamma, beta, dy)
    x32, g32, b32 = (t.detach().float().requires_grad_() for t in (x, gamma, beta))
    single = _grads(lambda *a: batch_norm_train(*a, EPS)[0], x32, g32, b32, dy.float())
    for a, b in zip(single[1:], exact[1:], strict=True):
        scale = b.abs().max()
        assert float((a.double() - b).abs().max() / scale) < 1e-4


def test_a_channels_bytes_do_not_depend_on_the_other_channels():
    """The pack's promise at this layer: a network's channels give the same bits among 2 or 24 channels."""
    x, gamma, beta, dy = _inputs((32, 24, 6, 6), torch.float32, seed=3)
    wide = _grads(lambda *a: batch_norm_train(*a, EPS)[0], x, gamma, beta, dy)
    xs, gs, bs = (t.detach()[:, :2].clone().requires_grad_() if t.ndim > 1 else t.detach()[:2].clone().requires_grad_()
                  for t in (x, gamma, beta))  # fmt: skip
    narrow = _grads(lambda *a: batch_norm_train(*a, EPS)[0], xs, gs, bs, dy[:, :2].contiguous())
    for a, b in zip(wide, narrow, strict=True):
        assert torch.equal(a[:, :2] if a.ndim > 1 else a[:2], b)


def test_fewer_kernels_and_bytes_than_autograd_of_the_written_out_form():
    x, gamma, beta, dy = _inputs((32, 24, 14, 14), torch.float32)
    counts = []
    for f in (lambda *a: batch_norm_train(*a, EPS)[0], lambda *a: _written_out(*a, EPS)):
        with OpCounter() as count:
            _grads(f, x, gamma, beta, dy)
        counts.append(count)
    ours, theirs = counts
    assert ours.kernels < theirs.kernels and ours.bytes < 0.7 * theirs.bytes
