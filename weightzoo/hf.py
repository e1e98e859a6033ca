"""The zoo as a Hugging Face dataset: registration of the ``weightzoo`` builder and a row -> ``nn.Module`` helper.

``import weightzoo`` registers a builder named ``weightzoo`` with the ``datasets`` library (lazily: ``datasets``
is only imported when you import it), so that::

    from datasets import load_dataset
    ds = load_dataset("weightzoo", data_dir="zoo/demo")                   # a local zoo
    ds = load_dataset("weightzoo", data_dir="hf://datasets/org/nws-fixed")  # a Hub dataset repository
    ds = load_dataset("weightzoo")                                        # $WEIGHTZOO_HOME/demo
    net = model_from_row(ds["test"].with_format("torch")[0])             # a ready torch.nn.Module

The builder itself (configurations, options, features) is :mod:`weightzoo.hf_builder`. Dataset scripts are gone
from ``datasets``, so registration adds the builder to ``datasets``' table of packaged builders and teaches its
packaged-module factory to pass ``data_dir`` (the zoo root: a path, an fsspec URL or ``hf://datasets/...``)
through untouched instead of globbing it for data files. Both are private ``datasets`` internals: the supported
range is pinned in ``pyproject.toml`` and ``tests/test_hf.py`` fails if a release breaks them.

Example:
    >>> from weightzoo.hf import label_name
    >>> label_name(True), label_name(64)
    ('true', '64')
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from weightzoo.architecture import Architecture
from weightzoo.errors import ConfigError, UnknownNameError, WeightZooError, ZooFormatError
from weightzoo.format.layout import FORMAT_VERSION
from weightzoo.hparams import ARCHITECTURE_FIELDS, CATEGORICAL
from weightzoo.model import BN_EPS, NWSNet, build_model, from_flat

#: The name to pass to ``datasets.load_dataset``.
BUILDER_NAME = "weightzoo"
#: The module holding the ``datasets`` builder class.
BUILDER_MODULE = "weightzoo.hf_builder"
#: ``datasets`` versions the registration is tested with (keep in step with ``pyproject.toml``).
SUPPORTED_DATASETS = ">=5.2,<6"
_HOOKED_MODULE = "datasets.load"


def label_name(value: Any) -> str:
    """The ``ClassLabel`` name of a categorical hyper-parameter value: booleans as ``false``/``true``, numbers in
    decimal, strings as they are. The label's integer is the value's position in :data:`weightzoo.hparams.CATEGORICAL`
    (the reference's integer code)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def label_names(name: str) -> list[str]:
    """The ``ClassLabel`` names of a categorical hyper-parameter, in code order."""
    return [label_name(v) for v in CATEGORICAL[name]]


# ------------------------------------------------------------------------------------------------ registration


def module_hash() -> str:
    """Hash of the builder's code and the format version; part of the ``datasets`` cache path, so a new release
    of the builder never reads a cache prepared by an older one."""
    digest = hashlib.sha256(f"format {FORMAT_VERSION}\n".encode())
    for name in ("hf.py", "hf_builder.py"):
        digest.update(Path(__file__).with_name(name).read_bytes())
    return digest.hexdigest()


def register() -> None:
    """Register the ``weightzoo`` builder with ``datasets`` now (idempotent); imports ``datasets``.

    Raises :class:`WeightZooError` naming the missing piece when the installed ``datasets`` release changed the
    internals the registration relies on.
    """
    _register(importlib.import_module(_HOOKED_MODULE))


def register_lazily() -> None:
    """Register now if ``datasets`` is already imported, otherwise as soon as it is (keeps ``import weightzoo``
    free of the cost of importing ``datasets``). Failures are reported as warnings, never as import errors."""
    if _HOOKED_MODULE in sys.modules:
        _register_quietly(sys.modules[_HOOKED_MODULE])
    elif not any(isinstance(f, _RegisterOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterOnImport())


def is_registered() -> bool:
    """Whether ``datasets`` (if imported) knows the ``weightzoo`` builder."""
    load = sys.modules.get(_HOOKED_MODULE)
    table = getattr(load, "_PACKAGED_DATASETS_MODULES", {}) if load else {}
    factory = getattr(load, "PackagedDatasetModuleFactory", None)
    return BUILDER_NAME in table and bool(getattr(getattr(factory, "get_module", None), "_weightzoo", False))


def _register(load: Any) -> None:
    version = getattr(sys.modules.get("datasets"), "__version__", "?")
    packaged = importlib.import_module("datasets.packaged_modules")
    table = getattr(packaged, "_PACKAGED_DATASETS_MODULES", None)
    factory = getattr(load, "PackagedDatasetModuleFactory", None)
    missing = [
        what
        for what, ok in (
            ("datasets.packaged_modules._PACKAGED_DATASETS_MODULES (a dict)", isinstance(table, dict)),
            ("datasets.load._PACKAGED_DATASETS_MODULES", getattr(load, "_PACKAGED_DATASETS_MODULES", None) is table),
            ("datasets.load.PackagedDatasetModuleFactory.get_module", callable(getattr(factory, "get_module", None))),
            ("datasets.load.DatasetModule", hasattr(load, "DatasetModule")),
        )
        if not ok
    ]
    if missing:
        raise WeightZooError(
            f"cannot register the 'weightzoo' builder with datasets {version}: it lacks {', '.join(missing)}; "
            f"weightzoo supports datasets{SUPPORTED_DATASETS} (pip install 'datasets{SUPPORTED_DATASETS}'), and "
            "weightzoo.open_zoo(...) reads zoos without datasets"
        )
    assert isinstance(table, dict) and factory is not None
    table[BUILDER_NAME] = (BUILDER_MODULE, module_hash())
    if not getattr(factory.get_module, "_weightzoo", False):
        factory.get_module = _wrap_get_module(factory.get_module)


def _wrap_get_module(original: Any) -> Any:
    def get_module(self: Any) -> Any:
        if getattr(self, "name", None) != BUILDER_NAME:
            return original(self)
        from datasets.data_files import DataFilesDict
        from datasets.load import DatasetModule

        if self.data_files is not None:
            raise ConfigError(
                "load_dataset('weightzoo') reads a whole zoo: pass data_dir=<zoo folder, fsspec URL or "
                f"hf://datasets/<org>/<name>> instead of data_files={self.data_files!r}"
            )
        # data_dir (the zoo root, possibly a URL) reaches the builder untouched; an empty (not None) data_files
        # tells load_dataset_builder that the packaged builder has its input.
        return DatasetModule(
            BUILDER_MODULE, module_hash(), {"dataset_name": BUILDER_NAME, "data_files": DataFilesDict()}
        )

    get_module._weightzoo = True  # type: ignore[attr-defined]
    get_module.__wrapped__ = original  # type: ignore[attr-defined]
    return get_module


def _register_quietly(load: Any) -> None:
    try:
        _register(load)
    except (WeightZooError, AttributeError, ImportError, TypeError) as e:  # never break someone's `import datasets`
        warnings.warn(f"weightzoo: {e}", RuntimeWarning, stacklevel=2)


class _RegisterOnImport(importlib.abc.MetaPathFinder):
    """Runs the registration right after ``datasets.load`` is executed, wherever ``datasets`` is imported from."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != _HOOKED_MODULE:
            return None
        spec = None
        for finder in sys.meta_path:  # whichever finder would have found it (site-packages, editable installs)
            find = getattr(finder, "find_spec", None) if finder is not self else None
            spec = find(fullname, path, target) if find else None
            if spec is not None:
                break
        if spec is None or spec.loader is None:
            return None
        spec.loader = _RegisteringLoader(spec.loader, self)
        return spec


class _RegisteringLoader(importlib.abc.Loader):
    def __init__(self, inner: Any, finder: _RegisterOnImport):
        self._inner, self._finder = inner, finder

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename, ... of the real loader
        return getattr(self._inner, name)

    def create_module(self, spec: Any) -> Any:
        return self._inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._inner.exec_module(module)
        if self._finder in sys.meta_path:
            sys.meta_path.remove(self._finder)
        _register_quietly(module)


# ------------------------------------------------------------------------------------------------ row -> module


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
