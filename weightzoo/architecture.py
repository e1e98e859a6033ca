"""The NWS CNN family as data: layer shapes, parameter names and the reference flat-vector order.

This module knows nothing of PyTorch: it describes, for any point of the architecture space, which tensors a
network has, their shapes, and where each lands in the flat reference-order vector (all conv layers first, so
``weightn_conv`` is the conv/dense boundary; within a layer weight, bias, then batch-norm beta, gamma, moving
mean, moving variance). Names are the ``state_dict`` keys of :class:`weightzoo.model.NWSNet`.

Example:
    >>> arch = Architecture()  # the nws_fixed architecture
    >>> arch.num_params, arch.weightn_conv, arch.weightn_fc
    (92868, 16880, 75988)
    >>> arch.params[0]
    ParamSpec(name='conv0.weight', shape=(8, 3, 5, 5), section='conv', offset=0)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property

#: Conv layers per block for each conv depth (3 blocks, each ending in a 2x2 max-pool).
LAYERS_PER_BLOCK: dict[int, tuple[int, int, int]] = {3: (1, 1, 1), 4: (1, 1, 2), 5: (1, 2, 2)}
#: Order of the batch-norm tensors inside a layer: beta, gamma, moving mean, moving variance.
BN_ORDER: tuple[str, ...] = ("bias", "weight", "running_mean", "running_var")
NUM_OUTPUTS = 20
IMAGE_SIZE = 32
IN_CHANNELS = 3


@dataclass(frozen=True)
class ParamSpec:
    """One tensor of a network: its ``state_dict`` key, shape, section (conv or fc) and flat offset."""

    name: str
    shape: tuple[int, ...]
    section: str
    offset: int

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def laid_out(tensors: Iterable[tuple[str, tuple[int, ...], str]]) -> tuple[ParamSpec, ...]:
    """``(name, shape, section)`` of every tensor, in flat-vector order, as specs with their flat offsets.

    Example:
        >>> [p.offset for p in laid_out([("a.weight", (2, 3), "conv"), ("a.bias", (2,), "conv")])]
        [0, 6]
    """
    specs, offset = [], 0
    for name, shape, section in tensors:
        specs.append(ParamSpec(name, tuple(shape), section, offset))
        offset += math.prod(shape)
    return tuple(specs)


class ParamList:
    """What readers need of an architecture, from its tensor specs ``_params`` in flat-vector order (conv tensors
    first): shared by :class:`Architecture` and the declared architectures of converted zoos
    (:class:`weightzoo.families.DeclaredArchitecture`)."""

    _params: tuple[ParamSpec, ...]

    @property
    def params(self) -> tuple[ParamSpec, ...]:
        """Every tensor of the network in reference flat-vector order."""
        return self._params

    @cached_property
    def num_params(self) -> int:
        """Length of the flat vector (parameters and batch-norm statistics)."""
        return sum(p.size for p in self._params)

    @cached_property
    def weightn_conv(self) -> int:
        """Values of the conv part: the conv/dense boundary in the flat vector."""
        return sum(p.size for p in self._params if p.section == "conv")

    @property
    def weightn_fc(self) -> int:
        """Values of the dense part (hidden dense layers and the output layer)."""
        return self.num_params - self.weightn_conv

    def param(self, name: str) -> ParamSpec:
        """The spec of one tensor by its ``state_dict`` key."""
        for p in self._params:
            if p.name == name:
                return p
        from weightzoo.errors import UnknownNameError

        raise UnknownNameError("parameter", name, [p.name for p in self._params])


@dataclass(frozen=True)
class Architecture(ParamList):
    """A point of the architecture space (defaults: the ``nws_fixed`` architecture)."""

    filter_size: int = 5
    depth_conv: int = 3
    depth_fc: int = 2
    width_conv: int = 8
    width_fc: int = 128
    _params: tuple[ParamSpec, ...] = field(init=False, repr=False, compare=False, hash=False, default=())

    def __post_init__(self) -> None:
        from weightzoo.errors import ConfigError

        if self.depth_conv not in LAYERS_PER_BLOCK:
            raise ConfigError(f"depth_conv must be one of {sorted(LAYERS_PER_BLOCK)}, got {self.depth_conv!r}")
        for name in ("filter_size", "depth_fc", "width_conv", "width_fc"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.width_fc % 2 ** (self.depth_fc - 1):
            raise ConfigError(f"width_fc={self.width_fc} cannot be halved {self.depth_fc - 1} times evenly")
        object.__setattr__(self, "_params", laid_out(self._tensors()))

    @property
    def conv_channels(self) -> tuple[int, ...]:
        """Output channels of every conv layer, in order (block c has ``width_conv * 2**c``)."""
        return tuple(
            self.width_conv * 2**block for block, n in enumerate(LAYERS_PER_BLOCK[self.depth_conv]) for _ in range(n)
        )

    @property
    def blocks(self) -> tuple[int, ...]:
        """Number of conv layers in each of the three blocks."""
        return LAYERS_PER_BLOCK[self.depth_conv]

    @property
    def fc_units(self) -> tuple[int, ...]:
        """Units of every hidden dense layer (layer j has ``width_fc * 2**-j``)."""
        return tuple(self.width_fc // 2**j for j in range(self.depth_fc))

    @property
    def flat_features(self) -> int:
        """Inputs of the first dense layer: 4 x 4 x the last block's channels."""
        side = IMAGE_SIZE // 2 ** len(self.blocks)
        return side * side * self.conv_channels[-1]

    def _tensors(self) -> Iterator[tuple[str, tuple[int, ...], str]]:
        """(name, shape, section) of every tensor, in reference flat-vector order."""
        k, c_in = self.filter_size, IN_CHANNELS
        for i, c_out in enumerate(self.conv_channels):
            yield f"conv{i}.weight", (c_out, c_in, k, k), "conv"
            yield f"conv{i}.bias", (c_out,), "conv"
            for t in BN_ORDER:
                yield f"conv{i}_bn.{t}", (c_out,), "conv"
            c_in = c_out
        n_in = self.flat_features
        for j, n_out in enumerate(self.fc_units):
            yield f"fc{j}.weight", (n_out, n_in), "fc"
            yield f"fc{j}.bias", (n_out,), "fc"
            for t in BN_ORDER:
                yield f"fc{j}_bn.{t}", (n_out,), "fc"
            n_in = n_out
        yield "out.weight", (NUM_OUTPUTS, n_in), "fc"
        yield "out.bias", (NUM_OUTPUTS,), "fc"
