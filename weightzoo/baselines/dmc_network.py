"""The network of the deep meta-classifier (:mod:`weightzoo.baselines.dmc`), built exactly as the authors'
``meta_classifier.py`` / ``model.py`` (``../shared/nws-reference.md``, "Exact meta-classifier semantics").

The network (:func:`build_dmc`). Each conv layer: kernel 5, same padding, bias, ReLU, then batch norm; max-pools
by 2 (VALID). For L <= 40,000 (``cnn1D_small``): 1->8, pool, 8->16, pool, 16->32, 32->64, pool, 64->128,
128->256, then six 256->256 layers each preceded by a pool only while the length is above 50, then a final pool
(12 conv layers; at L = 5000 the head's input is 19 x 256 = 4,864). Above 40,000 (``cnn1D``): 1->8, 8->16,
16->32, 32->64, 64->128, four 128->128, each followed by a pool; 128->128, 128->256, pool; 256->256 x2, pool;
256->256 x2, pool (15 conv layers, 12 pools). Then dense 1024-1024-1024-1024-64, each dense, ReLU, batch norm,
dropout 0.5, and the output layer. Batch norm is TensorLayer's (decay 0.9, epsilon 1e-5, gamma ~ N(1, 0.002));
weights Glorot normal (TF1's truncated form), biases zero; the flattened features in the original's (position,
channel) order.

Example:
    >>> net = build_dmc(512, 3, dense=(16,), channels=(4, 8))  # a small variant: one conv and one pool per width
    >>> [type(m).__name__ for m in net][:4], net[-1].out_features
    (['Conv1d', 'ReLU', 'TLBatchNorm1d', 'MaxPool1d'], 3)
"""

from __future__ import annotations

import torch
from torch import nn

from weightzoo.errors import ConfigError
from weightzoo.model import BN_EPS, BN_GAMMA_STD, BN_MOMENTUM, TLBatchNorm1d, glorot_normal_

#: Slices longer than this get the original's deeper network (``cnn1D``).
DEEPER_ABOVE = 40_000
#: The original's dense head: hidden widths and dropout.
DENSE: tuple[int, ...] = (1024, 1024, 1024, 1024, 64)
DROPOUT = 0.5


def conv_plan(slice_length: int) -> list[tuple[str, int]]:
    """The original's conv stack for ``slice_length`` as ``("conv", channels)`` and ``("pool", 0)`` steps.

    Example:
        >>> plan = conv_plan(5000)
        >>> sum(kind == "conv" for kind, _ in plan), sum(kind == "pool" for kind, _ in plan)
        (12, 8)
    """
    conv, pool = "conv", ("pool", 0)
    if slice_length > DEEPER_ABOVE:  # cnn1D
        plan: list[tuple[str, int]] = []
        for c in (8, 16, 32, 64, 128, 128, 128, 128, 128):
            plan += [(conv, c), pool]
        return [*plan, (conv, 128), (conv, 256), pool, (conv, 256), (conv, 256), pool, (conv, 256), (conv, 256), pool]
    plan = [(conv, 8), pool, (conv, 16), pool, (conv, 32), (conv, 64), pool, (conv, 128), (conv, 256)]
    n = slice_length // 8
    for _ in range(6):  # cnn1D_small: a pool before each 256-channel layer only while the length is above 50
        if n > 50:
            plan.append(pool)
            n //= 2
        plan.append((conv, 256))
    return [*plan, pool]


class _FlattenPositionChannel(nn.Module):
    """Flatten [B, C, L] in (position, channel) order, as the original reshapes its [B, L, C] tensors."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2).flatten(1)


def build_dmc(
    slice_length: int,
    n_out: int,
    dense: tuple[int, ...] = DENSE,
    dropout: float = DROPOUT,
    in_channels: int = 1,
    channels: tuple[int, ...] | None = None,
    generator: torch.Generator | None = None,
) -> nn.Sequential:
    """The meta-classifier network: the original's conv stack for ``slice_length`` (:func:`conv_plan`) or, with
    ``channels``, one conv and one pool per listed width; flatten; dense layers; output. Initialised as the
    original (Glorot normal weights, zero biases, batch-norm gamma ~ N(1, 0.002)) from ``generator``.

    Example:
        >>> net = build_dmc(5000, 4)
        >>> sum(p.numel() for p in net.parameters())  # 10,394,960 + 65 C
        10395220
    """
    plan = conv_plan(slice_length) if channels is None else [s for c in channels for s in (("conv", c), ("pool", 0))]
    layers: list[nn.Module] = []
    c_in, n = in_channels, slice_length
    for kind, c in plan:
        if kind == "pool":
            layers.append(nn.MaxPool1d(2))
            n //= 2
        else:
            layers += [nn.Conv1d(c_in, c, 5, padding=2), nn.ReLU(), TLBatchNorm1d(c, eps=BN_EPS, momentum=BN_MOMENTUM)]
            c_in = c
    if n < 1:
        raise ConfigError(f"slice_length={slice_length} is too short for the {sum(k == 'pool' for k, _ in plan)} pools")
    layers.append(_FlattenPositionChannel())
    width = c_in * n
    for d in dense:
        layers += [nn.Linear(width, d), nn.ReLU(), TLBatchNorm1d(d, eps=BN_EPS, momentum=BN_MOMENTUM)]
        layers.append(nn.Dropout(dropout))
        width = d
    layers.append(nn.Linear(width, n_out))
    net = nn.Sequential(*layers)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (nn.Conv1d, nn.Linear)):
                glorot_normal_(module.weight, gen)
                module.bias.zero_()
            elif isinstance(module, TLBatchNorm1d):
                module.weight.copy_(1 + BN_GAMMA_STD * torch.randn(module.weight.shape, generator=gen))
                module.bias.zero_()
    return net
