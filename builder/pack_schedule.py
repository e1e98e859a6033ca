"""Forming packs for the pack trainer (:mod:`builder.pack`) from a zoo's draws, sized to the device's memory.

A pack needs one architecture and one batch size (the stacked shapes); everything else (data set, optimizer,
learning rate, activation, initialisation, augmentation) may differ within it. Networks are grouped by that key
in id order and each group is cut into packs of at most ``width`` networks; a pack's own queue (its networks
beyond ``width``) refills the slots of networks that stop, so a pack stays full until its queue is empty.

Which networks share a pack changes no bytes: on CPU a network's result is bit-identical in any pack
(``tests/test_pack.py``), so the grouping is free to follow the device.

Example:
    >>> from builder.space import get_preset
    >>> space = get_preset("nws_main")
    >>> packs = form_packs({i: space.sample(0, i) for i in range(200)}, width=8)
    >>> sum(len(p) for p in packs), max(len(p) for p in packs) <= 8
    (200, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from weightzoo.architecture import Architecture
from weightzoo.hparams import HyperParameters

__all__ = ["form_packs", "member_bytes", "pack_key", "pack_width"]

#: Upper bound on a pack's width whatever the memory (kernels stop gaining long before on small devices).
MAX_WIDTH = 256
#: Share of the free device memory a pack may plan for (the rest: image sets, evaluation, allocator slack).
MEMORY_SHARE = 0.5
#: CPU memory a pack may plan for when nothing says otherwise.
CPU_BUDGET = 4 * 2**30


def pack_key(hp: HyperParameters) -> tuple[Architecture, int]:
    """What networks of one pack must share: the architecture and the batch size.

    Example:
        >>> from builder.space import get_preset
        >>> pack_key(get_preset("demo").sample(0, 0))[1] in (32, 64, 128, 256)
        True
    """
    return hp.architecture, hp.batch_size


def form_packs(hps: Mapping[int, HyperParameters], width: int, queue: int = 1) -> list[list[int]]:
    """Network ids grouped into packs of one :func:`pack_key`, in id order, each at most ``width * queue`` long
    (train each with ``width`` slots: the rest waits in its queue).

    Example:
        >>> from builder.space import get_preset
        >>> hps = {i: get_preset("demo").sample(0, i) for i in range(10)}
        >>> sorted(len(p) for p in form_packs(hps, width=4))[-1] <= 4
        True
    """
    if width < 1 or queue < 1:
        raise ValueError(f"width and queue must be at least 1, got {width} and {queue}")
    groups: dict[tuple[Architecture, int], list[int]] = {}
    for nid in sorted(hps):
        groups.setdefault(pack_key(hps[nid]), []).append(nid)
    size = width * queue
    packs = [ids[i : i + size] for ids in groups.values() for i in range(0, len(ids), size)]
    return sorted(packs, key=lambda p: p[0])


def member_bytes(architecture: Architecture, batch_size: int, dtype: torch.dtype = torch.float32) -> int:
    """Estimated training memory of one pack member: parameters with gradients and two optimizer slots, and the
    activations autograd keeps for a batch (about six tensors per conv layer, a few per dense layer).

    Example:
        >>> member_bytes(Architecture(), 32) > 0
        True
    """
    item = torch.empty((), dtype=dtype).element_size()
    params = architecture.num_params * 4 * item
    per_image, side, layer = 3 * 32 * 32, 32, 0
    for n_layers in architecture.blocks:
        for _ in range(n_layers):
            per_image += 6 * architecture.conv_channels[layer] * side * side
            layer += 1
        side //= 2
    per_image += 4 * sum(architecture.fc_units) + 2 * architecture.flat_features
    return params + per_image * batch_size * item


def pack_width(
    architecture: Architecture,
    batch_size: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    budget_bytes: int | None = None,
) -> int:
    """How many networks of this shape train at once on ``device``: its free memory (``MEMORY_SHARE`` of it on
    CUDA, ``CPU_BUDGET`` on CPU, or ``budget_bytes``) over :func:`member_bytes`, at most ``MAX_WIDTH``.

    Example:
        >>> pack_width(Architecture(), 32, budget_bytes=10 * member_bytes(Architecture(), 32))
        10
    """
    dev = torch.device(device)
    if budget_bytes is None:
        if dev.type == "cuda":
            free, _total = torch.cuda.mem_get_info(dev)
            budget_bytes = int(free * MEMORY_SHARE)
        else:
            budget_bytes = CPU_BUDGET
    return max(1, min(MAX_WIDTH, math.floor(budget_bytes / member_bytes(architecture, batch_size, dtype))))
