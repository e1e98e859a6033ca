"""weightzoo: the NWS neural weight space zoo (Eilertsen et al., ECAI 2020) as data.

Example:
    >>> import weightzoo
    >>> zoo = weightzoo.open_zoo("zoo/demo")  # doctest: +SKIP
    >>> zoo.flat(zoo.ids[0], snapshot=20).shape  # doctest: +SKIP
"""

from weightzoo.architecture import Architecture
from weightzoo.errors import (
    ChecksumError,
    ConfigError,
    FormatVersionError,
    MissingExtraError,
    ShardError,
    UnknownNameError,
    WeightZooError,
    ZooFormatError,
    ZooNotFoundError,
)
from weightzoo.format.layout import FORMAT_VERSION
from weightzoo.hf import model_from_row, register_lazily
from weightzoo.hparams import HyperParameters
from weightzoo.model import NWSNet, build_model, from_flat, to_flat
from weightzoo.zoo import Zoo, open_zoo

__version__ = "0.1.0"

register_lazily()  # `datasets.load_dataset("weightzoo", ...)`, registered once `datasets` is imported

__all__ = [
    "FORMAT_VERSION",
    "Architecture",
    "ChecksumError",
    "ConfigError",
    "FormatVersionError",
    "HyperParameters",
    "MissingExtraError",
    "NWSNet",
    "ShardError",
    "UnknownNameError",
    "WeightZooError",
    "Zoo",
    "ZooFormatError",
    "ZooNotFoundError",
    "__version__",
    "build_model",
    "from_flat",
    "model_from_row",
    "open_zoo",
    "to_flat",
]
