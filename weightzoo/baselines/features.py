"""Per-tensor statistics (Unterthiner et al. 2020), and their alignment across architectures by layer role.

Two kinds (:data:`KINDS`): ``stats``, this package's, and ``statnn``, the StatNN features exactly as the
weight-space literature uses them (Unterthiner et al. 2020; the StatNN baseline of Zhou et al. 2023, NFN): for
each layer's weights and biases only, the mean, the *variance* and the quantiles 0, 25, 50, 75 and 100 %.

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
#: The StatNN features per tensor (the literature's: the variance, not the standard deviation).
STATNN_STATS: tuple[str, ...] = ("mean", "var", "q0", "q25", "q50", "q75", "q100")
#: The quantiles of :data:`STATS` (after the mean and the spread).
QUANTILES: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
#: Feature kind -> its statistics per tensor.
KINDS: dict[str, tuple[str, ...]] = {"stats": STATS, "statnn": STATNN_STATS}


def tensor_stats(arrays: dict[str, np.ndarray], snapshots: tuple[int, ...], kind: str = "stats") -> np.ndarray:
    """Per-tensor statistics of the selected snapshots of one network: [len(snapshots), tensors x 7] float64, over
    :func:`kind_tensors` (every tensor for ``stats``, the layers' weights and biases for ``statnn``).

    Example:
        >>> a = {"fc0.weight": np.arange(2 * 5, dtype=np.float32).reshape(2, 5)}
        >>> tensor_stats(a, (2,)).round(2).tolist(), float(tensor_stats(a, (2,), "statnn")[0, 1])
        ([[7.0, 1.41, 5.0, 6.0, 7.0, 8.0, 9.0]], 2.0)
    """
    idx = np.asarray(snapshots) - 1
    blocks = []
    for name in kind_tensors(arrays, kind):
        v = np.asarray(arrays[name][idx], dtype=np.float64).reshape(len(idx), -1)
        q = np.quantile(v, list(QUANTILES), axis=1).T
        spread = v.std(axis=1) if kind == "stats" else v.var(axis=1)
        blocks.append(np.column_stack([v.mean(axis=1), spread, q]))
    return np.concatenate(blocks, axis=1)


def kind_tensors(names: Iterable[str], kind: str = "stats") -> list[str]:
    """The tensors a kind of statistics covers, in order: all (``stats``), or each layer's weight and bias, not
    its batch norm (``statnn``).

    Example:
        >>> kind_tensors(["conv0.weight", "conv0.bias", "conv0_bn.gamma", "out.weight"], "statnn")
        ['conv0.weight', 'conv0.bias', 'out.weight']
    """
    if kind not in KINDS:
        raise ConfigError(f"statistics kind {kind!r}; expected one of {', '.join(KINDS)}")
    names = list(names)
    if kind == "stats":
        return names
    return [n for n in names if "_bn" not in n.rsplit(".", 1)[0] and n.rsplit(".", 1)[-1] in ("weight", "bias")]


def feature_names(tensors: Iterable[str], kind: str = "stats") -> list[str]:
    """Column names ``<tensor>:<stat>`` of the statistics of ``tensors`` (names or layer roles), in column order.

    Example:
        >>> feature_names(["out.bias"])[:2], feature_names(["out.bias"], "statnn")[1]
        (['out.bias:mean', 'out.bias:std'], 'out.bias:var')
    """
    return [f"{t}:{s}" for t in kind_tensors(tensors, kind) for s in KINDS[kind]]


def stats_feature_names(zoo: Any, network_id: int, kind: str = "stats") -> list[str]:
    """Feature names ``<tensor>:<stat>`` of the per-tensor statistics of one network of ``zoo``, in column order."""
    return feature_names((p.name for p in zoo.architecture(network_id).params), kind)


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


def align_stats(block: np.ndarray, arch: Any, slots: list[str], kind: str = "stats") -> np.ndarray:
    """Scatter one network's per-tensor statistics into the columns of ``slots`` (the roles of ``kind``'s
    tensors, :func:`kind_tensors`; NaN where the network has no tensor)."""
    slots = kind_tensors(slots, kind)
    width = len(KINDS[kind])
    out = np.full((block.shape[0], len(slots) * width), np.nan)
    col = {s: i for i, s in enumerate(slots)}
    for k, name in enumerate(kind_tensors((p.name for p in arch.params), kind)):
        j = col[layer_slot(arch, name)]
        out[:, j * width : (j + 1) * width] = block[:, k * width : (k + 1) * width]
    return out
