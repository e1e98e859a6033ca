"""weightzoo: the NWS neural weight space zoo (Eilertsen et al., ECAI 2020) as data.

``import weightzoo`` is cheap: it registers the ``datasets`` builder lazily and imports the rest (torch, pyarrow)
on first use of a name below.

Example:
    >>> import weightzoo
    >>> with weightzoo.open_zoo(zoo_path) as zoo:
    ...     vector = zoo.flat(zoo.ids[0], snapshot=20)
    >>> vector.shape[0]
    92868
"""

from __future__ import annotations

import importlib

from weightzoo.hf.registration import register_lazily

__version__ = "0.1.0"

#: Public names and the module each comes from (imported on first access).
_EXPORTS: dict[str, str] = {
    "Architecture": "weightzoo.architecture",
    "ChecksumError": "weightzoo.errors",
    "ConfigError": "weightzoo.errors",
    "FormatVersionError": "weightzoo.errors",
    "MissingExtraError": "weightzoo.errors",
    "ShardError": "weightzoo.errors",
    "UnknownNameError": "weightzoo.errors",
    "UnsafePathError": "weightzoo.errors",
    "OutputPathError": "weightzoo.errors",
    "WeightZooError": "weightzoo.errors",
    "ZooFormatError": "weightzoo.errors",
    "ZooNotFoundError": "weightzoo.errors",
    "FORMAT_VERSION": "weightzoo.format.layout",
    "model_from_row": "weightzoo.hf.rows",
    "load_dataset": "weightzoo.hf.load",
    "HyperParameters": "weightzoo.hparams",
    "NWSNet": "weightzoo.model",
    "build_model": "weightzoo.model",
    "from_flat": "weightzoo.model",
    "to_flat": "weightzoo.model",
    "Zoo": "weightzoo.zoo",
    "open_zoo": "weightzoo.zoo",
}

__all__ = [
    "FORMAT_VERSION",
    "Architecture",
    "ChecksumError",
    "ConfigError",
    "FormatVersionError",
    "HyperParameters",
    "MissingExtraError",
    "NWSNet",
    "OutputPathError",
    "ShardError",
    "UnknownNameError",
    "UnsafePathError",
    "WeightZooError",
    "Zoo",
    "ZooFormatError",
    "ZooNotFoundError",
    "__version__",
    "build_model",
    "from_flat",
    "load_dataset",
    "model_from_row",
    "open_zoo",
    "to_flat",
]
assert sorted(__all__) == sorted([*_EXPORTS, "__version__"])

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up cost)
if TYPE_CHECKING:
    from weightzoo.architecture import Architecture
    from weightzoo.errors import (
        ChecksumError,
        ConfigError,
        FormatVersionError,
        MissingExtraError,
        OutputPathError,
        ShardError,
        UnknownNameError,
        UnsafePathError,
        WeightZooError,
        ZooFormatError,
        ZooNotFoundError,
    )
    from weightzoo.format.layout import FORMAT_VERSION
    from weightzoo.hf.load import load_dataset
    from weightzoo.hf.rows import model_from_row
    from weightzoo.hparams import HyperParameters
    from weightzoo.model import NWSNet, build_model, from_flat, to_flat
    from weightzoo.zoo import Zoo, open_zoo


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'weightzoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


register_lazily()  # `datasets.load_dataset("weightzoo", ...)`, registered once `datasets` is imported
