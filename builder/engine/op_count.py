"""Counting what a training step asks of the device: the ATen operations that do work (a kernel each on a GPU)
and those that read a value back to the host (a synchronisation, which a CUDA graph cannot capture).

On a GPU the zoo's small networks are launch-bound, so a step's cost is about its number of kernels; a step that
reads a tensor's value on the host (``float(t)``, ``t.item()``, ``if t:``, ``nonzero``) also stalls the host until
the device catches up. Both are counted here on any device, CPU included, by a ``TorchDispatchMode``, so tests
and benchmarks can hold the engine to them without a GPU (``benchmarks/pack_launches.py``,
``tests/test_op_count.py``).

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

from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["HOST_READS", "METADATA", "OpCounter"]

#: Operations that only describe tensors (no kernel on a GPU).
METADATA: frozenset[str] = frozenset({
    "view", "_unsafe_view", "as_strided", "t", "transpose", "unsqueeze", "squeeze", "expand", "slice", "select",
    "unflatten", "detach", "alias", "permute", "split", "split_with_sizes", "unbind", "narrow", "_reshape_alias",
    "lift_fresh", "empty", "empty_strided", "resize_", "set_",
})  # fmt: skip
#: Operations that copy a value to the host (a device synchronisation): a scalar read, or an output whose shape
#: depends on the values.
HOST_READS: frozenset[str] = frozenset({
    "_local_scalar_dense", "item", "is_nonzero", "equal", "nonzero", "nonzero_static", "masked_select", "unique",
    "_unique", "_unique2", "unique_consecutive", "unique_dim", "allclose", "repeat_interleave",
})  # fmt: skip


class OpCounter(TorchDispatchMode):
    """Counts the operations run inside it: ``ops`` (name -> calls, metadata-only operations left out),
    ``kernels`` (their total) and ``host_reads`` (those of :data:`HOST_READS`)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()
        self.host_reads: Counter[str] = Counter()

    @property
    def kernels(self) -> int:
        """Operations that launch work (a kernel each on a GPU)."""
        return sum(self.ops.values())

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        name = func.overloadpacket.__name__
        if name not in METADATA:
            self.ops[name] += 1
        if name in HOST_READS:
            self.host_reads[name] += 1
        return func(*args, **(kwargs or {}))
