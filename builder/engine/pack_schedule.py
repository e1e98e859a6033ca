"""Forming packs for the pack trainer (:mod:`builder.engine.pack`) from a zoo's draws, sized to the device's memory.

A pack may hold any mix of networks: it trains one lane per (architecture, batch size), the stacked shapes
(:func:`pack_key`), and keeps ``width`` networks training while its queue lasts (a network that stops frees its
slot for the next one, whatever its shape). :func:`form_packs` orders a zoo's networks so that each shape's
networks are consecutive (shapes in the order of their first network, networks in id order) and cuts that order
into packs of ``size``: the lanes stay few and wide, and ``nws_main`` (972 shapes, about 13 networks each in
the full zoo) still trains in full packs.

Which networks share a pack changes no bytes: a network's result is bit-identical in any pack on CPU
(``tests/test_pack.py``), so the grouping is free to follow the device.

Example:
    >>> from builder.engine.space import get_preset
    >>> space = get_preset("nws_main")
    >>> packs = form_packs({i: space.sample(0, i) for i in range(200)}, size=64)
    >>> [len(p) for p in packs]
    [64, 64, 64, 8]
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping

import torch

from weightzoo.architecture import Architecture
from weightzoo.errors import ConfigError
from weightzoo.hparams import HyperParameters

__all__ = [
    "admissions",
    "device_budget",
    "form_packs",
    "lane_architecture",
    "member_bytes",
    "pack_key",
    "pack_width",
]

#: Upper bound on how many networks a pack trains at once (kernels stop gaining long before on small devices).
MAX_WIDTH = 256
#: Networks per pack task, as a multiple of its width: the queue that refills the slots of networks that stop.
QUEUE_DEPTH = 4
#: Share of the free device memory a pack may plan for (the rest: image sets, evaluation, allocator slack).
MEMORY_SHARE = 0.5
#: CPU memory a pack may plan for when nothing says otherwise.
CPU_BUDGET = 4 * 2**30


def lane_architecture(hp: HyperParameters, fc_width: int | None = None, filter_size: int | None = None
                      ) -> Architecture:  # fmt: skip
    """The architecture a network trains as in its lane: its own, or with its dense layers padded to first-layer
    width ``fc_width`` (``TrainConfig.fc_width``; zero units added) and its convolution kernels to ``filter_size``
    (``TrainConfig.filter_size``; centred in zeros): see :mod:`builder.engine.pack_lane`.

    Example:
        >>> from builder.engine.space import get_preset
        >>> hp = get_preset("nws_fixed").sample(0, 0)
        >>> lane_architecture(hp).fc_units, lane_architecture(hp, fc_width=192).fc_units
        ((128, 64), (192, 96))
        >>> hp.filter_size, lane_architecture(hp, filter_size=7).filter_size
        (5, 7)
    """
    arch = hp.architecture
    for name, field, value in (("fc_width", "width_fc", fc_width), ("filter_size", "filter_size", filter_size)):
        own = getattr(arch, field)
        if value is not None and value < own:
            raise ConfigError(f"{name}={value} is below its {field}={own}; expected at least that (layers can be "
                              "padded, not cut)")  # fmt: skip
    padded = {"width_fc": fc_width, "filter_size": filter_size}
    return dataclasses.replace(arch, **{k: v for k, v in padded.items() if v is not None})


def pack_key(hp: HyperParameters, fc_width: int | None = None, filter_size: int | None = None
             ) -> tuple[Architecture, int]:  # fmt: skip
    """What networks of one lane must share: the architecture they train as (:func:`lane_architecture`) and the
    batch size.

    Example:
        >>> from builder.engine.space import get_preset
        >>> pack_key(get_preset("demo").sample(0, 0))[1] in (32, 64, 128, 256)
        True
    """
    return lane_architecture(hp, fc_width, filter_size), hp.batch_size


def form_packs(hps: Mapping[int, HyperParameters], size: int, fc_width: int | None = None,
               filter_size: int | None = None) -> list[list[int]]:  # fmt: skip
    """Network ids in packs of ``size`` (the last one shorter): each shape's networks consecutive (the shapes they
    train as, :func:`pack_key`), shapes in the order of their first network, networks in id order within a shape.

    Example:
        >>> from builder.engine.space import get_preset
        >>> hps = {i: get_preset("nws_fixed").sample(0, i) for i in range(10)}
        >>> packs = form_packs(hps, size=4)
        >>> [len(p) for p in packs], sorted(sum(packs, [])) == list(range(10))
        ([4, 4, 2], True)
    """
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    groups: dict[tuple[Architecture, int], list[int]] = {}
    for nid in sorted(hps):
        groups.setdefault(pack_key(hps[nid], fc_width, filter_size), []).append(nid)
    order = [nid for ids in groups.values() for nid in ids]
    return [order[i : i + size] for i in range(0, len(order), size)]


def admissions(needs: Iterable[int], active: int, free_bytes: float, width: int) -> int:
    """How many of the queued networks (their estimated memory ``needs``, in queue order) join a pack that trains
    ``active`` networks with ``free_bytes`` to spare: in order, while there are fewer than ``width`` and the memory
    lasts (one network always trains). The rule of :func:`builder.engine.pack.iter_pack` and of its replay in
    :mod:`builder.engine.projection`.

    Example:
        >>> admissions([3, 3, 3], active=0, free_bytes=7, width=8), admissions([9], active=0, free_bytes=1, width=8)
        (2, 1)
    """
    taken = 0
    for need in needs:
        if active + taken >= width or (active + taken > 0 and need > free_bytes):
            break
        taken, free_bytes = taken + 1, free_bytes - need
    return taken


def device_budget(device: torch.device | str = "cpu") -> int:
    """The training memory a pack may plan for on ``device``: ``MEMORY_SHARE`` of the free memory on CUDA,
    ``CPU_BUDGET`` on CPU.

    Example:
        >>> device_budget("cpu") == CPU_BUDGET
        True
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        free, _total = torch.cuda.mem_get_info(dev)
        return int(free * MEMORY_SHARE)
    return CPU_BUDGET


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
    """How many networks of this shape fit at once on ``device``: its budget (:func:`device_budget`, or
    ``budget_bytes``) over :func:`member_bytes`, at least 1 and at most ``MAX_WIDTH``.

    Example:
        >>> pack_width(Architecture(), 32, budget_bytes=10 * member_bytes(Architecture(), 32))
        10
    """
    budget = device_budget(device) if budget_bytes is None else budget_bytes
    return max(1, min(MAX_WIDTH, math.floor(budget / member_bytes(architecture, batch_size, dtype))))
