"""The hyper-parameters of a zoo network: their names, their vocabularies and a typed record.

The vocabularies (and their order, which gives the integer codes of the reference's split files) are defined
here once; the sampling spaces (presets) live in :mod:`builder.engine.space`.

Example:
    >>> from weightzoo.hparams import HyperParameters
    >>> hp = HyperParameters(dataset="mnist", learning_rate=1e-3, batch_size=64, augmentation=False,
    ...                      optimizer="adam", activation="relu", initialization="glorot_uniform")
    >>> hp.architecture.num_params
    92868
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from weightzoo.architecture import Architecture
from weightzoo.errors import ConfigError, UnknownNameError

#: Image datasets of the reference zoo, in the reference's code order.
REFERENCE_DATASETS: tuple[str, ...] = ("mnist", "cifar10", "svhn", "stl10", "fashion")
#: Every dataset a network can be trained on: the reference's, plus the embedded offline source ``digits``.
DATASETS: tuple[str, ...] = (*REFERENCE_DATASETS, "digits")
#: Reference order: Adam, RMSprop (decay 0.9), SGD with momentum 0.95.
OPTIMIZERS: tuple[str, ...] = ("adam", "rmsprop", "sgd_momentum")
ACTIVATIONS: tuple[str, ...] = ("relu", "elu", "sigmoid", "tanh")
#: constant 0.1, normal(0, 1), Glorot uniform, Glorot normal; biases are always zero.
INITIALIZATIONS: tuple[str, ...] = ("constant", "normal", "glorot_uniform", "glorot_normal")
BATCH_SIZES: tuple[int, ...] = (32, 64, 128, 256)
FILTER_SIZES: tuple[int, ...] = (3, 5, 7)
DEPTHS_CONV: tuple[int, ...] = (3, 4, 5)
DEPTHS_FC: tuple[int, ...] = (2, 3, 4)
WIDTHS_CONV: tuple[int, ...] = (4, 8, 12)
WIDTHS_FC: tuple[int, ...] = (64, 128, 192)

#: Categorical hyper-parameters and their vocabularies, by column name.
CATEGORICAL: dict[str, tuple[Any, ...]] = {
    "dataset": DATASETS,
    "batch_size": BATCH_SIZES,
    "augmentation": (False, True),
    "batch_norm": (False, True),
    "optimizer": OPTIMIZERS,
    "activation": ACTIVATIONS,
    "initialization": INITIALIZATIONS,
    "filter_size": FILTER_SIZES,
    "depth_conv": DEPTHS_CONV,
    "depth_fc": DEPTHS_FC,
    "width_conv": WIDTHS_CONV,
    "width_fc": WIDTHS_FC,
}
#: Continuous hyper-parameters and their reference ranges.
CONTINUOUS: dict[str, tuple[float, float]] = {"learning_rate": (0.0002, 0.005)}
ARCHITECTURE_FIELDS: tuple[str, ...] = ("filter_size", "depth_conv", "depth_fc", "width_conv", "width_fc")
#: The ``nws_fixed`` architecture (filter 5, conv depth 3, fc depth 2, conv width 8, fc width 128): the defaults of
#: :class:`~weightzoo.architecture.Architecture`, and so of :class:`HyperParameters` and the ``nws_fixed`` preset.
NWS_FIXED = Architecture()


@dataclass(frozen=True)
class HyperParameters:
    """The hyper-parameters of one network, validated against the vocabularies above."""

    dataset: str
    learning_rate: float
    batch_size: int
    augmentation: bool
    optimizer: str
    activation: str
    initialization: str
    filter_size: int = NWS_FIXED.filter_size
    depth_conv: int = NWS_FIXED.depth_conv
    depth_fc: int = NWS_FIXED.depth_fc
    width_conv: int = NWS_FIXED.width_conv
    width_fc: int = NWS_FIXED.width_fc
    batch_norm: bool = True

    def __post_init__(self) -> None:
        for name, vocab in CATEGORICAL.items():
            value = getattr(self, name)
            if value not in vocab or type(value) is not type(vocab[0]):
                raise UnknownNameError(name, value, [str(v) for v in vocab])
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be positive, got {self.learning_rate!r}")

    @property
    def architecture(self) -> Architecture:
        """The CNN architecture these hyper-parameters describe."""
        return Architecture(**{f: getattr(self, f) for f in ARCHITECTURE_FIELDS})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> HyperParameters:
        """Build from a mapping (e.g. an index row); extra keys are ignored, unknown values raise."""
        names = [f.name for f in dataclasses.fields(cls)]
        kwargs = {n: values[n] for n in names if n in values}
        for n in ("batch_size", *ARCHITECTURE_FIELDS):
            if n in kwargs:
                kwargs[n] = int(kwargs[n])
        for n in ("augmentation", "batch_norm"):
            if n in kwargs:
                kwargs[n] = bool(kwargs[n])
        if "learning_rate" in kwargs:
            kwargs["learning_rate"] = float(kwargs["learning_rate"])
        return cls(**kwargs)


#: The hyper-parameters in the column order of the reference's split files (``lrate`` is ``learning_rate``); the
#: index's columns follow it.
REFERENCE_ORDER: tuple[str, ...] = (
    "dataset",
    "learning_rate",
    "batch_size",
    "batch_norm",
    "augmentation",
    "optimizer",
    "activation",
    "initialization",
    *ARCHITECTURE_FIELDS,
)
assert set(REFERENCE_ORDER) == {f.name for f in dataclasses.fields(HyperParameters)}


def field_types() -> dict[str, type]:
    """Each hyper-parameter's Python type (``str``, ``float``, ``int``, ``bool``), in :data:`REFERENCE_ORDER`.

    Example:
        >>> field_types()["batch_size"], field_types()["learning_rate"]
        (<class 'int'>, <class 'float'>)
    """
    names = {"str": str, "float": float, "int": int, "bool": bool}
    types = {f.name: names[str(f.type)] for f in dataclasses.fields(HyperParameters)}
    return {name: types[name] for name in REFERENCE_ORDER}


def code_of(name: str, value: Any) -> int:
    """The integer code of a categorical value, as in the reference's split files.

    Example:
        >>> code_of("optimizer", "rmsprop")
        1
    """
    if name not in CATEGORICAL:
        raise UnknownNameError("categorical hyper-parameter", name, list(CATEGORICAL))
    vocab = CATEGORICAL[name]
    if value not in vocab:
        raise UnknownNameError(name, value, [str(v) for v in vocab])
    return vocab.index(value)
