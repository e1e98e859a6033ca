"""Architectures a zoo declares in its manifest: the network families of the field's other zoos.

An NWS zoo needs no declaration (each network's architecture follows from its hyper-parameters,
:class:`weightzoo.architecture.Architecture`). A converted zoo of another family (the Small CNN Zoo, Model Zoos)
holds networks of one architecture, which its manifest states once (``manifest.architecture``): the family, the
input the networks take, their outputs, and every tensor in stored order with its shape. Tensors keep the layout
of their source, so a network's flat vector is the source's own (the Small CNN Zoo's row of ``weights.npy``):

=================== ============================================================================= ==========
family              networks                                                                      layout
=================== ============================================================================= ==========
``smallcnnzoo``     Unterthiner et al. 2020: 3 conv 3x3 stride 2 (valid) x 16, global average pool, Keras:
                    dense 10 (logits); input 1 x 28 x 28 (MNIST, Fashion) or 1 x 32 x 32 (grey      kernels
                    CIFAR-10, SVHN), scaled to [-1, 1]                                             HWIO, (in, out)
``modelzoos_cnn_s`` Schuerholt et al. 2022, CNN-s: conv 5x5 x 8, pool, conv 5x5 x 6, pool, conv    PyTorch
                    2x2 x 4, dense 20, dense 10; input C x 28 x 28
``modelzoos_cnn_l`` Model Zoos CNN-l: conv 3x3 x 16, 32, 15 (each pooled), dense 20, dense 10;      PyTorch
                    input C x 32 x 32
=================== ============================================================================= ==========

This module knows nothing of PyTorch (:mod:`weightzoo.family_models` builds the networks).

Example:
    >>> arch = DeclaredArchitecture.from_dict(smallcnnzoo_declaration((1, 28, 28)), "manifest.json")
    >>> arch.num_params, arch.params[1].name, arch.params[1].shape
    (4970, 'conv0.weight', (3, 3, 1, 16))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from weightzoo.architecture import ParamList, ParamSpec, laid_out
from weightzoo.errors import UnknownNameError, ZooFormatError

#: Family -> (tensor layout, activations its networks may use).
FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "smallcnnzoo": ("keras", ("relu", "tanh")),
    "modelzoos_cnn_s": ("torch", ("leakyrelu", "relu", "tanh", "sigmoid", "silu", "gelu")),
    "modelzoos_cnn_l": ("torch", ("leakyrelu", "relu", "tanh", "sigmoid", "silu", "gelu")),
}
#: Bound on a declared tensor list (every read of an untrusted zoo is bounded).
MAX_TENSORS = 1024


@dataclass(frozen=True)
class DeclaredArchitecture(ParamList):
    """The one architecture of a converted zoo's networks, as its manifest declares it: it offers what
    :class:`~weightzoo.architecture.Architecture` offers the readers (``params``, ``num_params``, ``param``, the
    conv/dense boundary ``weightn_conv``), so shards, features and probes read both alike."""

    family: str
    input_shape: tuple[int, int, int]
    num_outputs: int
    tensors: tuple[tuple[str, tuple[int, ...]], ...]
    _params: tuple[ParamSpec, ...] = field(init=False, repr=False, compare=False, hash=False, default=())

    def __post_init__(self) -> None:
        sections = (("fc" if name.startswith(("fc", "out")) else "conv") for name, _ in self.tensors)
        object.__setattr__(
            self, "_params", laid_out((n, s, c) for (n, s), c in zip(self.tensors, sections, strict=True))
        )

    @property
    def layout(self) -> str:
        """How the tensors are laid out: ``keras`` (conv kernels HWIO, dense kernels (in, out)) or ``torch``."""
        return FAMILIES[self.family][0]

    def to_dict(self) -> dict[str, Any]:
        """As the manifest stores it (JSON)."""
        return {
            "family": self.family,
            "input_shape": list(self.input_shape),
            "num_outputs": self.num_outputs,
            "tensors": [[name, list(shape)] for name, shape in self.tensors],
        }

    @classmethod
    def from_dict(cls, data: Any, source: str) -> DeclaredArchitecture:
        """Parse and check a manifest's ``architecture``; :class:`~weightzoo.errors.ZooFormatError` naming
        ``source`` and what was expected."""

        def fail(what: str, value: Any, expected: str) -> ZooFormatError:
            shown = repr(value) if len(repr(value)) < 80 else repr(value)[:77] + "..."
            return ZooFormatError(f"{source}: architecture{'.' * bool(what)}{what} is {shown}; expected {expected}")

        if not isinstance(data, Mapping):
            raise fail("", data, "a mapping with family, input_shape, num_outputs, tensors")
        family = data.get("family")
        if family not in FAMILIES:
            raise fail("family", family, f"one of {', '.join(FAMILIES)}")
        shape = data.get("input_shape")
        if not _ints(shape, 3):
            raise fail("input_shape", shape, "[channels, height, width], positive integers")
        outputs = data.get("num_outputs")
        if not _ints([outputs], 1):
            raise fail("num_outputs", outputs, "a positive integer")
        tensors = data.get("tensors")
        if not isinstance(tensors, list) or not 0 < len(tensors) <= MAX_TENSORS:
            raise fail("tensors", tensors, f"a list of 1 to {MAX_TENSORS} [name, shape] pairs")
        names: set[str] = set()
        parsed = []
        for item in tensors:
            ok = isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
            if not ok or not _is_name(item[0]) or not _ints(item[1], None) or item[0] in names:
                raise fail("tensors", item, "[name, shape]: a unique 'layer.tensor' name and positive sizes")
            names.add(item[0])
            parsed.append((item[0], tuple(item[1])))
        return cls(family, tuple(shape), int(outputs), tuple(parsed))


def _ints(values: Any, count: int | None) -> bool:
    if not isinstance(values, (list, tuple)) or (count is not None and len(values) != count) or not values:
        return False
    return all(isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2**31 for v in values)


def _is_name(name: str) -> bool:
    layer, dot, tensor = name.partition(".")
    return bool(dot) and all(part.replace("_", "").isalnum() and part.isascii() for part in (layer, tensor))


def smallcnnzoo_declaration(input_shape: Sequence[int]) -> dict[str, Any]:
    """The Small CNN Zoo's architecture as a manifest declares it: the order and shapes of its ``layout.csv``
    (per layer the bias, then the Keras kernel: conv HWIO ``(3, 3, in, 16)``, dense ``(16, 10)``)."""
    channels = int(input_shape[0])
    tensors: list[list[Any]] = []
    for i, c_in in enumerate((channels, 16, 16)):
        tensors += [[f"conv{i}.bias", [16]], [f"conv{i}.weight", [3, 3, c_in, 16]]]
    tensors += [["out.bias", [10]], ["out.weight", [16, 10]]]
    return {"family": "smallcnnzoo", "input_shape": list(input_shape), "num_outputs": 10, "tensors": tensors}


def modelzoos_declaration(family: str, channels: int) -> dict[str, Any]:
    """A Model Zoos CNN's architecture as a manifest declares it (PyTorch layout, per layer weight then bias;
    the ``module_list.<i>`` keys of the source renamed ``conv0`` .. ``conv2``, ``fc0``, ``out`` in order)."""
    if family == "modelzoos_cnn_s":
        convs, fc_in, side = ((8, channels, 5), (6, 8, 5), (4, 6, 2)), 36, 28
    elif family == "modelzoos_cnn_l":
        convs, fc_in, side = ((16, channels, 3), (32, 16, 3), (15, 32, 3)), 60, 32
    else:
        raise UnknownNameError("Model Zoos family", family, ["modelzoos_cnn_s", "modelzoos_cnn_l"])
    tensors: list[list[Any]] = []
    for i, (c_out, c_in, k) in enumerate(convs):
        tensors += [[f"conv{i}.weight", [c_out, c_in, k, k]], [f"conv{i}.bias", [c_out]]]
    tensors += [["fc0.weight", [20, fc_in]], ["fc0.bias", [20]], ["out.weight", [10, 20]], ["out.bias", [10]]]
    return {"family": family, "input_shape": [channels, side, side], "num_outputs": 10, "tensors": tensors}
