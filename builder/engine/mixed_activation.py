"""Several activation functions over one tensor, each on its own slice, for a lane whose networks differ in theirs.

A lane applies each member's activation to its slice of the layer's output. Split into runs of equal activations,
applied and joined again by a concatenation, that costs a copy of the whole activation forward and backward
(autograd's gradient of a split is a concatenation too): about 8 % of a ``nws_main`` lane step's memory traffic.
:class:`MixedActivation` writes each run's result straight into its slice of one output (and each run's
gradient into its slice of one gradient), with the kernels autograd uses for the functions alone (``relu``,
``elu``, ``sigmoid``, ``tanh``, forward, and their backward kernels from the result or, for ``elu``, the input):
the same values, bit for bit, in two kernels per run and layer fewer the two copies.

Example:
    >>> x = torch.linspace(-2, 2, 8).view(1, 8)
    >>> y = mixed_activation(x, 1, [4, 4], ["relu", "tanh"])
    >>> torch.equal(y, torch.cat([torch.relu(x[:, :4]), torch.tanh(x[:, 4:])], 1))
    True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

__all__ = ["MixedActivation", "mixed_activation"]

aten = torch.ops.aten
_FORWARD: dict[str, Callable[..., torch.Tensor]] = {
    "relu": aten.relu.out,
    "elu": aten.elu.out,
    "sigmoid": aten.sigmoid.out,
    "tanh": aten.tanh.out,
}
#: Each function's backward kernel (as autograd calls it: from the result, elu from its input), writing ``out``.
_BACKWARD: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "relu": lambda dy, x, y, out: aten.threshold_backward.grad_input(dy, y, 0, grad_input=out),
    "elu": lambda dy, x, y, out: aten.elu_backward.grad_input(dy, 1.0, 1, 1, False, x, grad_input=out),
    "sigmoid": lambda dy, x, y, out: aten.sigmoid_backward.grad_input(dy, y, grad_input=out),
    "tanh": lambda dy, x, y, out: aten.tanh_backward.grad_input(dy, y, grad_input=out),
}


class MixedActivation(torch.autograd.Function):
    """``y``'s slices along ``dim`` (of ``sizes``) are ``names[i]`` of ``x``'s. Use :func:`mixed_activation`."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, dim: int, sizes: Sequence[int], names: Sequence[str]) -> torch.Tensor:
        y = torch.empty_like(x)
        for name, xs, ys in zip(names, x.split(sizes, dim), y.split(sizes, dim), strict=True):
            _FORWARD[name](xs, out=ys)
        ctx.dim, ctx.sizes, ctx.names = dim, sizes, names
        ctx.save_for_backward(x if "elu" in names else None, y)
        return y

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> Any:
        x, y = ctx.saved_tensors
        dx = torch.empty_like(dy)
        parts = [t.split(ctx.sizes, ctx.dim) if t is not None else [None] * len(ctx.sizes) for t in (dy, x, y, dx)]
        for name, *slices in zip(ctx.names, *parts, strict=True):
            _BACKWARD[name](*slices)
        return dx, None, None, None


def mixed_activation(x: torch.Tensor, dim: int, sizes: Sequence[int], names: Sequence[str]) -> torch.Tensor:
    """``x`` split along ``dim`` into slices of ``sizes``, ``names[i]`` (relu, elu, sigmoid, tanh) applied to
    slice ``i``, as one tensor; differentiable in ``x`` (:class:`MixedActivation`)."""
    return MixedActivation.apply(x, dim, list(sizes), list(names))
