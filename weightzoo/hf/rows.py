"""Rows of ``load_dataset("weightzoo", ...)`` and the values in them: ``ClassLabel`` names, and a row back to the
exact ``torch.nn.Module``.

Example:
    >>> label_name(True), label_name(64), label_names("optimizer")
    ('true', '64', ['adam', 'rmsprop', 'sgd_momentum'])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from weightzoo.architecture import Architecture
from weightzoo.errors import ConfigError, UnknownNameError, ZooFormatError
from weightzoo.hparams import ARCHITECTURE_FIELDS, CATEGORICAL
from weightzoo.model import BN_EPS, NWSNet, build_model, from_flat

__all__ = ["label_name", "label_names", "model_from_row"]


def label_name(value: Any) -> str:
    """The ``ClassLabel`` name of a categorical hyper-parameter value: booleans as ``false``/``true``, numbers in
    decimal, strings as they are. The label's integer is the value's position in :data:`weightzoo.hparams.CATEGORICAL`
    (the reference's integer code)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def label_names(name: str) -> list[str]:
    """The ``ClassLabel`` names of a categorical hyper-parameter, in code order."""
    return [label_name(v) for v in CATEGORICAL[name]]


def model_from_row(row: Mapping[str, Any], snapshot: int | None = None, bn_eps: float = BN_EPS) -> NWSNet:
    """A ready ``NWSNet`` (eval mode) rebuilt exactly from one row of ``load_dataset("weightzoo", ...)``.

    Works with rows in any format (python, numpy, torch), either view (``weights`` or ``layers``) and either
    granularity; for a row holding several snapshots, ``snapshot`` (1..20) picks one (default: the last one held).
    ``bn_eps`` is the zoo's batch-norm epsilon: 1e-5 from generation version 2 on; pass
    ``weightzoo.model.LEGACY_BN_EPS`` (1e-3) for zoos generated before (``open_zoo(...).model`` knows it).

    Example:
        >>> ds = load_dataset("weightzoo", data_dir="zoo/demo", split="test").with_format("torch")  # doctest: +SKIP
        >>> net = model_from_row(ds[0], snapshot=20)  # doctest: +SKIP
        >>> net(torch.zeros(1, 3, 32, 32)).shape  # doctest: +SKIP
        torch.Size([1, 20])
    """
    hp = {name: _decode(row, name) for name in (*ARCHITECTURE_FIELDS, "activation")}
    arch = Architecture(**{f: hp[f] for f in ARCHITECTURE_FIELDS})
    position = _position(_ints(row.get("snapshot")), snapshot)

    def pick(values: Any) -> torch.Tensor:  # [snapshots, n] in network rows, [n] in snapshot rows
        tensor = _tensor(values)
        return tensor[position] if tensor.ndim == 2 else tensor

    if "weights" in row:
        state = from_flat(pick(row["weights"]), arch)
    elif "layers" in row:
        state = {name: pick(values).reshape(tuple(_ints(shape))) for name, shape, values in _layers(row["layers"])}
    else:
        raise ZooFormatError(
            f"row has neither 'weights' nor 'layers' (columns: {sorted(row)}); expected a row of "
            "load_dataset('weightzoo', ...) with view='flat' or view='layers'"
        )
    return build_model(state, arch, str(hp["activation"]), bn_eps=bn_eps)


def _decode(row: Mapping[str, Any], name: str) -> Any:
    """A categorical hyper-parameter's value from its ClassLabel integer (or its label name)."""
    if name not in row:
        raise ZooFormatError(f"row has no {name!r} column; expected a row of load_dataset('weightzoo', ...)")
    value, vocab = row[name], CATEGORICAL[name]
    if isinstance(value, str):
        names = label_names(name)
        if value not in names:
            raise UnknownNameError(name, value, names)
        return vocab[names.index(value)]
    code = int(value.item() if hasattr(value, "item") else value)
    if not 0 <= code < len(vocab):
        raise UnknownNameError(f"{name} label", code, [str(i) for i in range(len(vocab))])
    return vocab[code]


def _ints(value: Any) -> list[int]:
    if value is None:
        return []
    if hasattr(value, "tolist"):
        value = value.tolist()
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]


def _position(held: list[int], snapshot: int | None) -> int:
    if snapshot is None:
        return len(held) - 1 if held else -1
    if snapshot not in held:
        raise ConfigError(f"snapshot {snapshot!r} is not in this row; it holds snapshots {held}")
    return held.index(snapshot)


def _tensor(values: Any) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values.to(torch.float32)
    if isinstance(values, np.ndarray) and values.dtype != object:
        return torch.from_numpy(values.astype(np.float32, copy=False))
    if isinstance(values, (list, tuple, np.ndarray)) and len(values) and not np.isscalar(values[0]):
        return torch.stack([_tensor(v) for v in values])
    return torch.tensor(np.asarray(values, dtype=np.float32))


def _layers(layers: Any) -> list[tuple[str, Any, Any]]:
    if isinstance(layers, Mapping):  # a dict of lists (columnar formatting)
        return list(zip(layers["name"], layers["shape"], layers["values"], strict=True))
    return [(entry["name"], entry["shape"], entry["values"]) for entry in layers]
