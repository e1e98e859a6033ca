"""Batch norm on batch statistics for the pack's lanes, its backward pass written out in few kernels.

A lane's batch norm is per (network, channel) on its ``[B, P*C, H, W]`` (or ``[B, P*n]``) layout. PyTorch's
``F.batch_norm`` kernel cannot serve: on CPU its per-channel results depend on the channel count (the pack's
width), and a network must have the same bytes in a pack of any width. Written out of ``var_mean`` and
elementwise arithmetic, which do not, autograd's backward through that arithmetic re-derives the statistics'
gradients term by term: 30 kernels per layer forward and backward, 15 MB of traffic on a [32, 24, 14, 14] float32
activation. :class:`BatchNormTrain` keeps the forward (its last multiply-add one ``addcmul``) and gives the
backward in closed form, per channel:

    dbeta = S1,  dgamma = S2 * r,  dx = a * dy + b * x + c

with ``S1 = sum(dy)``, ``S2 = sum(dy * (x - mean))`` (centred, so float32 holds for activations far from zero),
``r = 1 / sqrt(var + eps)``, ``a = gamma * r``, ``b = -a * r**2 * S2 / N``, ``c = -a * S1 / N - b * mean``
(``N`` values per channel): 22 kernels and 9 MB there (``tests/test_batch_norm.py``); on a ``nws_main`` lane step
(8 networks, batch 32, three convolutions, two dense layers) 217 kernels and 531 MB instead of 257 and 680. Its
values are autograd's up to rounding (float64 to 1e-12; ``torch.autograd.gradcheck``); its bytes are not, so
generation version 6 (:data:`~builder.engine.train_config.GENERATION_VERSION`).

Example:
    >>> x = torch.randn(8, 6, 5, 5, dtype=torch.float64, requires_grad=True)
    >>> gamma, beta = torch.rand(6, dtype=torch.float64) + 0.5, torch.zeros(6, dtype=torch.float64)
    >>> y, mean, var = batch_norm_train(x, gamma, beta, 1e-3)
    >>> y.shape, mean.shape, bool(torch.allclose(y.mean((0, 2, 3)), beta))
    (torch.Size([8, 6, 5, 5]), torch.Size([6]), True)
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["BatchNormTrain", "batch_norm_train"]


def _dims(x: torch.Tensor) -> list[int]:
    """Every dimension but the channels' (the second)."""
    return [0, *range(2, x.ndim)]


def _per_channel(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """A [C] tensor shaped to broadcast over a [B, C, ...] tensor of ``ndim`` dimensions."""
    return t.reshape([1, -1] + [1] * (ndim - 2))


class BatchNormTrain(torch.autograd.Function):
    """``y = x * alpha + (beta - mean * alpha)``, ``alpha = gamma / sqrt(var + eps)`` on the batch statistics
    of ``x`` [B, C, ...] per channel (the CPU kernel's form); also returns the statistics (biased variance),
    which take no gradient. Use :func:`batch_norm_train`."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float) -> Any:
        var, mean = torch.var_mean(x, dim=_dims(x), correction=0, keepdim=True)
        std = torch.sqrt(var + eps)
        alpha = _per_channel(gamma, x.ndim) / std
        y = torch.addcmul(_per_channel(beta, x.ndim) - mean * alpha, x, alpha)
        ctx.save_for_backward(x, gamma, mean, std)
        ctx.set_materialize_grads(False)  # the statistics' gradients are never made (None)
        mean, var = mean.view(-1), var.view(-1)
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor, *_: Any) -> Any:
        if dy is None:  # y unused
            return None, None, None, None
        x, gamma, mean, std = ctx.saved_tensors
        dims, n = _dims(x), x.numel() // x.shape[1]
        r = std.reciprocal()
        s1 = dy.sum(dims, keepdim=True)
        dgamma = (dy * (x - mean)).sum(dims, keepdim=True).mul_(r)  # S2 * r
        a = _per_channel(gamma, x.ndim) * r
        b = (a * r).mul_(dgamma).mul_(-1 / n)  # -a r^2 S2 / n
        c = (a * s1).mul_(-1 / n).addcmul_(b, mean, value=-1)  # -a S1 / n - b mean
        dx = torch.addcmul(c, dy, a).addcmul_(x, b) if ctx.needs_input_grad[0] else None
        return dx, dgamma.view(-1), s1.view(-1), None


def batch_norm_train(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """Batch norm of ``x`` [B, C, ...] on its own statistics per channel, scaled by ``gamma`` and shifted by
    ``beta`` ([C] each): ``(y, mean, var)``, the statistics [C] (biased variance) for the moving averages.
    Differentiable in ``x``, ``gamma`` and ``beta`` (:class:`BatchNormTrain`)."""
    return BatchNormTrain.apply(x, gamma, beta, eps)
