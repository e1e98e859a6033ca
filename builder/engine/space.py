"""Search spaces (presets) of the zoo, and the deterministic draw of network ``i``'s hyper-parameters.

Every hyper-parameter of network ``i`` in a zoo with seed ``s`` is drawn from its own random stream, keyed by
``(s, i, name)``: the same network always gets the same values, whatever else is generated alongside it, and
restricting one choice (say ``--datasets mnist fashion``) leaves the other draws of every network unchanged.

Example:
    >>> space = get_preset("nws_fixed")
    >>> hp = space.sample(zoo_seed=0, network_id=3)
    >>> hp == space.sample(zoo_seed=0, network_id=3), hp.architecture.num_params
    (True, 92868)
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from weightzoo.errors import ConfigError, UnknownNameError
from weightzoo.hparams import (
    ARCHITECTURE_FIELDS,
    CATEGORICAL,
    CONTINUOUS,
    NWS_FIXED,
    REFERENCE_DATASETS,
    HyperParameters,
)

#: Network ids with ``id % TEST_EVERY == TEST_EVERY - 1`` form the test split (20 %, by whole networks).
TEST_EVERY = 5
_FIXED_ARCHITECTURE = {name: (getattr(NWS_FIXED, name),) for name in ARCHITECTURE_FIELDS}


@dataclass(frozen=True)
class SearchSpace:
    """The choices of every hyper-parameter (each drawn uniformly and independently) and run defaults."""

    name: str
    description: str
    choices: dict[str, tuple[Any, ...]]
    learning_rate: tuple[float, float]
    default_num_networks: int
    default_max_epochs: int
    #: Batch-norm moving-average decay used when training (see :class:`builder.engine.train.TrainConfig`).
    default_bn_decay: float = 0.9

    def __post_init__(self) -> None:
        for key, values in self.choices.items():
            if key not in CATEGORICAL:
                raise UnknownNameError("hyper-parameter", key, list(CATEGORICAL))
            bad = [v for v in values if v not in CATEGORICAL[key]]
            if bad or not values:
                raise UnknownNameError(key, bad[0] if bad else "(none)", [str(v) for v in CATEGORICAL[key]])
        missing = set(CATEGORICAL) - set(self.choices)
        if missing:
            raise ConfigError(f"search space {self.name!r} gives no choices for {sorted(missing)}")
        lo, hi = self.learning_rate
        if not 0 < lo <= hi:
            raise ConfigError(f"learning-rate range {self.learning_rate} must satisfy 0 < low <= high")

    def restrict(self, **choices: Sequence[Any]) -> SearchSpace:
        """The same space with some choices narrowed, e.g. ``restrict(dataset=["mnist", "fashion"])``."""
        new = dict(self.choices)
        for key, values in choices.items():
            if key not in CATEGORICAL:
                raise UnknownNameError("hyper-parameter", key, list(CATEGORICAL))
            for v in values:
                if v not in CATEGORICAL[key]:
                    raise UnknownNameError(key, v, [str(x) for x in CATEGORICAL[key]])
            new[key] = tuple(values)
        return dataclasses.replace(self, choices=new)

    def sample(self, zoo_seed: int, network_id: int) -> HyperParameters:
        """The hyper-parameters of network ``network_id`` of the zoo with seed ``zoo_seed``."""
        values: dict[str, Any] = {}
        for key, options in self.choices.items():
            values[key] = options[int(rng_for(zoo_seed, network_id, key).integers(len(options)))]
        lo, hi = self.learning_rate
        values["learning_rate"] = float(rng_for(zoo_seed, network_id, "learning_rate").uniform(lo, hi))
        return HyperParameters(**values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "choices": {k: list(v) for k, v in self.choices.items()},
            "learning_rate": list(self.learning_rate),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchSpace:
        """Rebuild the space a zoo was drawn from, as its manifest records it (see :meth:`to_dict`)."""
        base = get_preset(data["name"])
        return dataclasses.replace(
            base,
            choices={k: tuple(v) for k, v in data["choices"].items()},
            learning_rate=(float(data["learning_rate"][0]), float(data["learning_rate"][1])),
        )


def rng_for(zoo_seed: int, network_id: int, stream: str) -> np.random.Generator:
    """The random stream ``stream`` of one network: independent of every other network and stream."""
    if zoo_seed < 0 or network_id < 0:
        raise ConfigError(f"zoo seed and network id must be non-negative, got {zoo_seed}, {network_id}")
    key = zlib.crc32(stream.encode())
    return np.random.default_rng(np.random.SeedSequence(entropy=zoo_seed, spawn_key=(network_id, key)))


def torch_seed(zoo_seed: int, network_id: int, stream: str) -> int:
    """A 63-bit seed for a ``torch.Generator`` of one network's stream."""
    return int(rng_for(zoo_seed, network_id, stream).integers(2**63 - 1))


def split_of(network_id: int) -> str:
    """``train`` or ``test``: the split of a network, by id (every fifth network is a test network)."""
    return "test" if network_id % TEST_EVERY == TEST_EVERY - 1 else "train"


def _reference_choices(**overrides: tuple[Any, ...]) -> dict[str, tuple[Any, ...]]:
    choices = {k: tuple(v) for k, v in CATEGORICAL.items()}
    choices["dataset"] = REFERENCE_DATASETS
    choices["batch_norm"] = (True,)  # listed as {off, on} in the paper, always on in the released code
    choices.update(overrides)
    return choices


PRESETS: dict[str, SearchSpace] = {
    "nws_main": SearchSpace(
        name="nws_main",
        description="NWS main subset: every hyper-parameter, the architecture included, drawn at random "
        "(13,000 networks in the original).",
        choices=_reference_choices(),
        learning_rate=CONTINUOUS["learning_rate"],
        default_num_networks=13_000,
        default_max_epochs=1000,
    ),
    "nws_fixed": SearchSpace(
        name="nws_fixed",
        description="NWS fixed-architecture subset: filter 5, conv depth 3, fc depth 2, conv width 8, fc width "
        "128; the other hyper-parameters drawn at random (3,000 networks in the original).",
        choices=_reference_choices(**_FIXED_ARCHITECTURE),
        learning_rate=CONTINUOUS["learning_rate"],
        default_num_networks=3_000,
        default_max_epochs=1000,
    ),
    "demo": SearchSpace(
        name="demo",
        description="Offline demo: the nws_fixed architecture trained on scikit-learn's embedded digits "
        "(upsampled to 32x32x3) for 20 epochs; optimizer, activation, "
        "initialisation, learning rate, batch size and augmentation drawn as in the reference.",
        choices=_reference_choices(dataset=("digits",), **_FIXED_ARCHITECTURE),
        learning_rate=CONTINUOUS["learning_rate"],
        default_num_networks=16,
        default_max_epochs=20,
    ),
}


def get_preset(name: str) -> SearchSpace:
    """A preset by name: ``nws_main``, ``nws_fixed`` or ``demo``."""
    if name not in PRESETS:
        raise UnknownNameError("preset", name, list(PRESETS))
    return PRESETS[name]
