"""Counting what a training step asks of the device: the ATen operations that do work (a kernel each on a GPU)
and those that read a value back to the host (a synchronisation, which a CUDA graph cannot capture); optionally
the bytes those operations touch and their floating-point operations, for the full-zoo projection
(:mod:`builder.engine.projection`).

On a GPU the zoo's small networks are launch-bound, so a step's cost is about its number of kernels; a step that
reads a tensor's value on the host (``float(t)``, ``t.item()``, ``if t:``, ``nonzero``) also stalls the host until
the device catches up. Both are counted here on any device, CPU included, by a ``TorchDispatchMode``, so tests
and benchmarks can hold the engine to them without a GPU (``benchmarks/pack_launches.py``,
``benchmarks/zoo_projection.py``). ``bytes`` is the unfused eager traffic: every tensor each counted operation
reads or writes, in full (what a step moves through device memory when no two kernels share a load), but only
the rows a gather or scatter touches;
``flops`` counts the matrix products and convolutions, forward and backward (:func:`flops_of`; PyTorch's
``FlopCounterMode`` counts a grouped convolution's backward as if it were dense, by up to the group count).

Example:
    >>> import torch
    >>> x = torch.ones(3)
    >>> with OpCounter() as count:
    ...     y = (x * 2).sum()
    ...     _ = float(y)
    >>> count.kernels, dict(count.host_reads)  # mul, sum and the read itself
    (3, {'_local_scalar_dense': 1})
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

__all__ = ["GATHERS", "HOST_READS", "METADATA", "SCATTERS", "OpCounter", "flops_of"]

#: Operations that only describe tensors (no kernel on a GPU).
METADATA: frozenset[str] = frozenset({
    "view", "_unsafe_view", "as_strided", "t", "transpose", "unsqueeze", "squeeze", "expand", "slice", "select",
    "unflatten", "detach", "alias", "permute", "split", "split_with_sizes", "unbind", "narrow", "_reshape_alias",
    "lift_fresh", "empty", "empty_like", "empty_strided", "resize_", "set_",
})  # fmt: skip
#: Operations that copy a value to the host (a device synchronisation): a scalar read, or an output whose shape
#: depends on the values.
HOST_READS: frozenset[str] = frozenset({
    "_local_scalar_dense", "item", "is_nonzero", "equal", "nonzero", "nonzero_static", "masked_select", "unique",
    "_unique", "_unique2", "unique_consecutive", "unique_dim", "allclose", "repeat_interleave",
})  # fmt: skip


def flops_of(name: str, args: tuple, out: Any) -> int:
    """Floating-point operations (a multiply-add is two) of a matrix product or convolution, forward or backward
    (grouped ones included); 0 for every other operation.

    Example:
        >>> x, w = torch.ones(1, 4, 8, 8), torch.ones(6, 2, 3, 3)  # two groups
        >>> y = torch.nn.functional.conv2d(x, w, padding=1, groups=2)
        >>> flops_of("convolution", (x, w), y) == 2 * y.numel() * 2 * 3 * 3
        True
    """
    if name in ("mm", "bmm"):
        a, b = args[0], args[1]
        return 2 * a.numel() * b.shape[-1]
    if name in ("addmm", "baddbmm"):
        a, b = args[1], args[2]
        return 2 * a.numel() * b.shape[-1]
    if name in ("convolution", "conv2d"):  # conv2d, linear: as seen under inference mode (not decomposed)
        w = args[1]
        return 2 * out.numel() * w[0].numel()
    if name == "linear":
        return 2 * out.numel() * args[1].shape[1]
    if name == "convolution_backward":  # grad_output, input, weight, ..., output_mask
        grad_out, w, mask = args[0], args[2], args[-1]
        return 2 * grad_out.numel() * w[0].numel() * (int(mask[0]) + int(mask[1]))
    return 0


#: Operations that read chosen rows of their first argument (their traffic: the rows they read and write, and the
#: indices), and those that write chosen rows of it (the values written, read and written, and the indices).
GATHERS: frozenset[str] = frozenset({"index", "index_select", "gather"})
SCATTERS: frozenset[str] = frozenset({"index_put", "index_put_", "_index_put_impl_", "index_copy", "index_copy_"})


def _traffic(name: str, args: tuple, kwargs: dict | None, out: Any) -> int:
    """Bytes an operation moves: every tensor it reads or writes, in full, but a gather or scatter (only the rows
    it touches: a batch gathered from a data set does not read the data set).

    Example:
        >>> data, rows = torch.zeros(1000, 8), torch.tensor([3, 5])
        >>> _traffic("index", (data, [rows]), None, data[rows])  # 16 bytes of indices, 64 read, 64 written
        144
    """
    if name in GATHERS or name in SCATTERS:
        rest = [t.nbytes for t in tree_leaves((args[1:], kwargs)) if isinstance(t, torch.Tensor)]
        # a gather: its indices, the rows read and written; a scatter: its indices and values, the rows written
        return sum(rest) + (2 * out.nbytes if name in GATHERS else max(rest))
    return sum(t.nbytes for t in tree_leaves((args, kwargs, out)) if isinstance(t, torch.Tensor))


class OpCounter(TorchDispatchMode):
    """Counts the operations run inside it: ``ops`` (name -> calls, metadata-only operations left out),
    ``kernels`` (their total), ``host_reads`` (those of :data:`HOST_READS`), ``bytes`` (the tensors the counted
    operations read and write) and, with ``flops=True``, ``flops``.

    Example:
        >>> a = torch.ones(4, 8)
        >>> with OpCounter(flops=True) as count:
        ...     _ = a @ a.T
        >>> count.kernels, count.bytes, count.flops  # 2 inputs and the output, 4 x 4 x 8 multiply-adds
        (1, 320, 256)
    """

    def __init__(self, flops: bool = False) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()
        self.host_reads: Counter[str] = Counter()
        self.bytes = 0
        self._count_flops, self._flops = flops, 0

    @property
    def flops(self) -> int:
        """Floating-point operations of the matrix products and convolutions (needs ``flops=True``)."""
        if not self._count_flops:
            raise RuntimeError("this OpCounter does not count flops: make it with OpCounter(flops=True)")
        return self._flops

    @property
    def kernels(self) -> int:
        """Operations that launch work (a kernel each on a GPU)."""
        return sum(self.ops.values())

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        name = func.overloadpacket.__name__
        if name in HOST_READS:
            self.host_reads[name] += 1
        out = func(*args, **(kwargs or {}))
        if name not in METADATA:
            self.ops[name] += 1
            self.bytes += _traffic(name, args, kwargs, out)
            if self._count_flops:
                self._flops += flops_of(name, args, out)
        return out
