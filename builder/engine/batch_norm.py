"""Batch norm on batch statistics for the pack's lanes, its backward pass written out in few kernels.

A lane's batch norm is per (network, channel) on its activations seen as ``[B, P, C, H, W]`` (or ``[B, P, n]``).
PyTorch's ``F.batch_norm`` kernel cannot serve: on CPU its per-channel results depend on the channel count (the
pack's width), and a network must have the same bytes in a pack of any width. Written out of ``var_mean`` and
elementwise arithmetic, which do not, autograd's backward through that arithmetic re-derives the statistics'
gradients term by term: 30 kernels per layer forward and backward, 15 MB of traffic on a [32, 24, 14, 14] float32
activation. :class:`BatchNormTrain` keeps the forward's form (its multiply-adds as ``addcmul``) and gives the
backward in closed form, per channel:

    dbeta = S1,  dgamma = S2 / std,  dx = alpha * dy - alpha * S1 / N + b * (x - mean)

with ``std = sqrt(var + eps)``, ``alpha = gamma / std``, ``S1 = sum(dy)``, ``S2 = sum(dy * (x - mean))``
(centred, so float32 holds for activations far from zero), ``b = -alpha / std * dgamma / N`` (``N`` values per
channel): 17 kernels and 9 MB there (``tests/test_batch_norm.py``); on a ``nws_main`` lane step (8 networks, batch
32, three convolutions, two dense layers) 183 kernels and 531 MB instead of 257 and 680, with the channels of a
lane's networks seen as [P, C] so that their scales need no copy (:meth:`builder.engine.pack_lane.Lane._batch_norm`;
174 kernels with version 6's other changes to the lane).
Its values are autograd's up to rounding (float64 to 1e-12; ``torch.autograd.gradcheck``); its bytes are not,
so generation version 6 (:data:`~builder.engine.train_config.GENERATION_VERSION`).

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


def _dims(x: torch.Tensor, channel_dims: int) -> list[int]:
    """Every dimension of ``x`` but its channels' (``channel_dims`` of them after the first)."""
    return [0, *range(1 + channel_dims, x.ndim)]


def _per_channel(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """Per-channel values ``t`` shaped to broadcast over a [B, *t.shape, ...] tensor of ``ndim`` dimensions (a
    view, whatever ``t``'s strides)."""
    return t[(None, Ellipsis) + (None,) * (ndim - 1 - t.ndim)]


class BatchNormTrain(torch.autograd.Function):
    """``y = x * alpha + (beta - mean * alpha)``, ``alpha = gamma / sqrt(var + eps)`` on the batch statistics
    of ``x`` [B, *channels, ...] per channel (the CPU kernel's form); also returns the statistics (biased
    variance, shaped as ``gamma``), which take no gradient. Use :func:`batch_norm_train`."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float) -> Any:
        var, mean = torch.var_mean(x, dim=_dims(x, gamma.ndim), correction=0, keepdim=True)
        std = torch.sqrt(var + eps)
        alpha = _per_channel(gamma, x.ndim) / std
        y = torch.addcmul(torch.addcmul(_per_channel(beta, x.ndim), mean, alpha, value=-1), x, alpha)
        ctx.save_for_backward(x, alpha, mean, std)
        ctx.dims, ctx.shape = _dims(x, gamma.ndim), gamma.shape
        ctx.set_materialize_grads(False)  # the statistics' gradients are never made (None)
        mean, var = mean.view(gamma.shape), var.view(gamma.shape)
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor, *_: Any) -> Any:
        if dy is None:  # y unused
            return None, None, None, None
        x, alpha, mean, std = ctx.saved_tensors
        dims, n = ctx.dims, x.numel() // ctx.shape.numel()
        s1 = dy.sum(dims, keepdim=True)
        xc = x - mean
        dgamma = (dy * xc).sum(dims, keepdim=True).div_(std)  # S2 r
        k = alpha * (-1 / n)
        b = (k * dgamma).div_(std)  # -alpha / std * dgamma / n
        dx = torch.addcmul(k * s1, dy, alpha).addcmul_(xc, b) if ctx.needs_input_grad[0] else None
        return dx, dgamma.view(ctx.shape), s1.view(ctx.shape), None


def batch_norm_train(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """Batch norm of ``x`` [B, *channels, ...] on its own statistics per channel, scaled by ``gamma`` and shifted
    by ``beta`` (shaped ``channels``: [C], or [P, C] for the channels of P networks, a view of any strides):
    ``(y, mean, var)``, the statistics (biased variance, shaped ``channels``) for the moving averages.
    Differentiable in ``x``, ``gamma`` and ``beta`` (:class:`BatchNormTrain`)."""
    return BatchNormTrain.apply(x, gamma, beta, eps)
