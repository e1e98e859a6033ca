"""Per-tensor statistics (Unterthiner et al. 2020), and their alignment across architectures by layer role.

For every tensor of the network, weights, biases *and* the batch-norm tensors (beta, gamma, moving mean and
variance, kept as extra features because they are part of the reference's flat vector): the mean, std and the
quantiles 0, 25, 50, 75 and 100 % (:data:`STATS`). In a zoo of one architecture the columns are the tensors by
name. A zoo mixing architectures (``nws_main``) is aligned by layer *role* (:func:`layer_slot`): the j-th conv
layer of block b, the j-th hidden dense layer, the output layer; the statistics of a role a network does not have
are NaN (histogram gradient boosting treats NaN as its own branch; the linear model imputes the mean and adds
missing-value indicators).

Example:
    >>> from weightzoo.architecture import Architecture
    >>> small, deep = Architecture(depth_conv=3), Architecture(depth_conv=5)
    >>> slots = aligned_slots([small, deep])
    >>> arrays = {p.name: np.ones((20, *p.shape), np.float32) for p in small.params}
    >>> row = align_stats(tensor_stats(arrays, (20,)), small, slots)
    >>> # the two conv layers the shallow network lacks: weight, bias and 4 batch-norm tensors each, NaN
    >>> row.shape == (1, len(feature_names(slots))), int(np.isnan(row).any(axis=0).sum()) // len(STATS)
    (True, 12)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from weightzoo.errors import ConfigError

#: Statistics computed per tensor, in feature order.
STATS: tuple[str, ...] = ("mean", "std", "q0", "q25", "q50", "q75", "q100")
#: The quantiles of :data:`STATS` (after the mean and the std).
QUANTILES: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)


def tensor_stats(arrays: dict[str, np.ndarray], snapshots: tuple[int, ...]) -> np.ndarray:
    """Per-tensor statistics of the selected snapshots of one network: [len(snapshots), tensors x 7] float64.

    Example:
        >>> a = {"w": np.arange(2 * 5, dtype=np.float32).reshape(2, 5)}
        >>> tensor_stats(a, (2,)).round(2).tolist()
        [[7.0, 1.41, 5.0, 6.0, 7.0, 8.0, 9.0]]
    """
    idx = np.asarray(snapshots) - 1
    blocks = []
    for values in arrays.values():
        v = np.asarray(values[idx], dtype=np.float64).reshape(len(idx), -1)
        q = np.quantile(v, list(QUANTILES), axis=1).T
        blocks.append(np.column_stack([v.mean(axis=1), v.std(axis=1), q]))
    return np.concatenate(blocks, axis=1)


def feature_names(tensors: Iterable[str]) -> list[str]:
    """Column names ``<tensor>:<stat>`` of the statistics of ``tensors`` (names or layer roles), in column order.

    Example:
        >>> feature_names(["out.bias"])[:2]
        ['out.bias:mean', 'out.bias:std']
    """
    return [f"{t}:{s}" for t in tensors for s in STATS]


def stats_feature_names(zoo: Any, network_id: int) -> list[str]:
    """Feature names ``<tensor>:<stat>`` of the per-tensor statistics of one network of ``zoo``, in column order."""
    return feature_names(p.name for p in zoo.architecture(network_id).params)


def layer_slot(arch: Any, name: str) -> str:
    """The architecture-independent role of tensor ``name``: ``conv3.weight`` of a depth-5 network (blocks
    [1, 2, 2]) is ``block2.conv0.weight``; ``fc1_bn.gamma`` stays ``fc1_bn.gamma``; ``out.*`` stays.

    Example:
        >>> from weightzoo.architecture import Architecture
        >>> arch = Architecture(filter_size=3, depth_conv=5, depth_fc=2, width_conv=4, width_fc=64)
        >>> layer_slot(arch, "conv3.weight"), layer_slot(arch, "conv1_bn.beta"), layer_slot(arch, "fc1.bias")
        ('block2.conv0.weight', 'block1.conv0_bn.beta', 'fc1.bias')
    """
    layer, _, tensor = name.partition(".")
    base, sep, rest = layer.partition("_")
    if not base.startswith("conv"):
        return name
    i, start = int(base[4:]), 0
    for block, n in enumerate(arch.blocks):
        if i < start + n:
            return f"block{block}.conv{i - start}{sep}{rest}.{tensor}"
        start += n
    raise ConfigError(f"tensor {name!r} is outside the {len(arch.conv_channels)} conv layers of {arch}")


def aligned_slots(archs: list[Any]) -> list[str]:
    """Every layer role (:func:`layer_slot`) of a set of architectures, in reference order (conv blocks, dense
    layers, output; within a layer weight, bias, batch norm), for aligning per-tensor statistics across them."""
    keys: dict[str, tuple[tuple[int, int, int], int]] = {}
    for arch in archs:
        first: dict[str, int] = {}
        for k, p in enumerate(arch.params):
            slot = layer_slot(arch, p.name)
            layer = slot.rsplit(".", 1)[0].split("_")[0]  # block1.conv0 / fc0 / out
            first.setdefault(layer, k)
            keys[slot] = (_layer_key(layer), k - first[layer])
    return sorted(keys, key=lambda s: keys[s])


def _layer_key(layer: str) -> tuple[int, int, int]:
    if layer.startswith("block"):
        block, conv = layer.split(".")
        return (0, int(block[5:]), int(conv[4:]))
    if layer.startswith("fc"):
        return (1, int(layer[2:]), 0)
    return (2, 0, 0)


def align_stats(block: np.ndarray, arch: Any, slots: list[str]) -> np.ndarray:
    """Scatter one network's per-tensor statistics into the columns of ``slots`` (NaN where it has no tensor)."""
    out = np.full((block.shape[0], len(slots) * len(STATS)), np.nan)
    col = {s: i for i, s in enumerate(slots)}
    for k, p in enumerate(arch.params):
        j = col[layer_slot(arch, p.name)]
        out[:, j * len(STATS) : (j + 1) * len(STATS)] = block[:, k * len(STATS) : (k + 1) * len(STATS)]
    return out
