"""The run record a zoo's manifest keeps (``manifest.json``'s ``generation``), typed: :class:`GenerationRecord`,
with :class:`TrainConfig` (how every network was trained) nested. Readers take what they need from it instead of
reading the dictionary; ``from_dict`` is tolerant of older manifests (a missing field takes what zoos did before
it existed) and of converted releases (which record a ``source`` and few options), and strict with values of the
wrong type (:class:`~weightzoo.errors.ZooFormatError`).

The manifest keeps the dictionary exactly as it was written (so its bytes never change on reading); writers make
it from the run's options (``builder.generation_config``).

Example:
    >>> record = GenerationRecord.from_dict({"generation_version": 5, "preset": "demo", "seed": 3,
    ...                                      "train": {"max_epochs": 4, "bn_eps": 1e-5}})
    >>> record.preset, record.seed, record.train.max_epochs, record.train.epoch_cap
    ('demo', 3, 4, 'epochs')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from weightzoo.errors import ConfigError, UnknownNameError, WeightZooError, ZooFormatError
from weightzoo.format.layout import DEFAULT_SHARD_BYTES
from weightzoo.options import RANGES, check_params

__all__ = [
    "BN_DECAY",
    "BN_EPS",
    "EPOCH_CAPS",
    "EVALUATIONS",
    "FORMER_DEFAULTS",
    "LEGACY_BN_EPS",
    "ON_DIVERGENCE",
    "GenerationRecord",
    "TrainConfig",
]

#: TensorLayer ``BatchNormLayer`` defaults, as the original uses them: decay 0.9 (PyTorch momentum 0.1), epsilon
#: 1e-5.
BN_DECAY = 0.9
BN_EPS = 1e-5
#: Epsilon of zoos generated before generation version 2 (TensorFlow 1 ``batch_normalization``'s default).
LEGACY_BN_EPS = 1e-3

#: How metrics are measured: "clean" (default) or "released" (the original's train-mode graph: builder.engine.train).
EVALUATIONS: tuple[str, ...] = ("clean", "released")
#: How ``max_epochs`` caps training (``epoch_limit``): "images" (the original's step budget) or "epochs".
EPOCH_CAPS: tuple[str, ...] = ("images", "epochs")
#: What a non-finite export does: "stop" training there (default) or "continue" as the original did.
ON_DIVERGENCE: tuple[str, ...] = ("stop", "continue")
#: What zoos recorded before a :class:`TrainConfig` field existed did: :meth:`TrainConfig.from_dict` fills a field
#: missing from a zoo's record with this, not with today's default (``bn_eps``: recorded from generation version 2
#: on, 1e-3 before).
FORMER_DEFAULTS: dict[str, object] = {"epoch_cap": "epochs", "on_divergence": "stop", "bn_eps": LEGACY_BN_EPS}


@dataclass(frozen=True)
class TrainConfig:
    """How networks are trained (the same for every network of a zoo)."""

    max_epochs: int = 1000
    #: Early stopping is allowed once this many epochs are trained (the original: from the 20th export on).
    min_epochs: int = 19
    #: Batch-norm moving-average decay: 0.9, TensorLayer's ``BatchNormLayer`` default, as in the original.
    bn_decay: float = BN_DECAY
    #: Batch-norm epsilon: 1e-5, TensorLayer's default (recorded so readers rebuild the networks exactly).
    bn_eps: float = BN_EPS
    #: Per-epoch learning-rate factor. 1.0 (constant) is what the released zoo did; 0.96 is what it intended.
    lr_decay: float = 1.0
    validation_fraction: float = 0.1
    #: Stop when validation accuracy fell this many times in a row (an unchanged epoch does not break the run).
    patience_falling: int = 5
    #: ... or was below its smoothed value (``smoothing`` * smoothed + (1 - ``smoothing``) * accuracy, seeded
    #: with the initialisation's accuracy) in this many epochs IN ALL (the original's counter is never reset).
    patience_smoothed: int = 30
    smoothing: float = 0.5
    #: ... or stayed unchanged (a difference below ``tie_tolerance``) this many epochs in a row.
    patience_unchanged: int = 30
    tie_tolerance: float = 1e-8
    #: "clean": metrics without augmentation, batch norm in eval mode, whole sets (default). "released": as the
    #: original measured them (see the module docstring); the stored moving statistics then differ too.
    evaluation: str = "clean"
    #: Budget zoos: each network trains on a class-balanced random subset of this many of the dataset's training
    #: images, drawn once from its own data stream, before the 90/10 split (None: all of them, as the reference).
    train_images: int | None = None
    #: Train metrics are measured on a fixed random subset of this many training images (None: all).
    train_eval_images: int | None = 10_000
    #: Test metrics are measured on a fixed random subset of this many test images (None: the whole test set, as
    #: the reference). The subset is the same for every network of a dataset.
    test_images: int | None = None
    eval_batch_size: int = 1000
    #: "images" (the original's rule): its loop ran ``int(max_epochs * N / batch) + 1`` steps and exported every
    #: ``floor(N / batch)`` steps (``N``: the epoch's balanced images), so a network trains at most
    #: ``epoch_limit`` epochs, a little more than ``max_epochs`` when ``N / batch`` is not whole (MNIST at
    #: batch 256: 1,002). "epochs": exactly ``max_epochs``.
    epoch_cap: str = "images"
    #: "stop" (deliberate, the default): training stops at the first export with a non-finite weight or epoch loss
    #: and the network is recorded as diverged, its snapshots spread over its epochs up to that one. "continue" (the
    #: original): it trains on, non-finite, until a stopping counter fires or the cap, and is recorded as diverged.
    on_divergence: str = "stop"
    #: Dense layers padded to this first-layer width (None: each network's own): every network whose ``width_fc``
    #: is at most this trains with zero units added to each dense layer, their weights' gradients exactly zero, so
    #: networks that differ only in their dense width share a pack lane (``builder.engine.pack_lane``). The units a
    #: network has compute the same sums plus exact zeros; the last bits of its weights may change (summation
    #: blocks change with the widths), so the value is recorded.
    fc_width: int | None = None
    #: Convolution kernels padded to this size (odd; None: each network's own): every network whose
    #: ``filter_size`` is at most this trains with its kernels centred in zero ones of this size, the padding's
    #: gradients masked to exact zeros, so networks that differ only in their filter size share a pack lane
    #: (``builder.engine.pack_lane``). It computes the same sums plus exact zeros; the last bits of its weights may
    #: change (another convolution), so the value is recorded.
    filter_size: int | None = None
    #: Each layer's batch norm and activation (in training and in the clean evaluation), and each optimizer update,
    #: as regions compiled by ``torch.compile`` (Inductor; meant for the GPU, where it cuts a step's memory traffic:
    #: ``builder.engine.fused``). The same arithmetic up to rounding, so the weights change in their last bits and
    #: the value is recorded (a compiled zoo is reproduced compiled).
    compile: bool = False
    #: On CUDA, matrix products and convolutions in TF32 (10-bit mantissas, the H100's tensor cores: about 7x the
    #: fp32 peak); off: fp32, as the original (``torch.backends``' own default runs cuDNN convolutions in TF32). No
    #: effect on CPU. Recorded: it changes the weights beyond their last bits.
    tf32: bool = False

    def __post_init__(self) -> None:
        """Each value in its range (:data:`weightzoo.options.RANGES`, the ranges the command line checks)."""
        for name in ("max_epochs", "lr_decay", "bn_decay", "eval_batch_size"):
            RANGES[name].check(name, getattr(self, name))
        # None: all images, each network's own dense width
        check_params({n: getattr(self, n) for n in ("train_images", "train_eval_images", "test_images", "fc_width",
                                                    "filter_size")})  # fmt: skip
        if self.filter_size is not None and self.filter_size % 2 == 0:
            raise ConfigError(f"filter_size={self.filter_size}; expected an odd size (a kernel with a centre)")
        for name in ("compile", "tf32"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}={getattr(self, name)!r}; expected True or False")
        if not (isinstance(self.validation_fraction, float) and 0 < self.validation_fraction < 1):
            raise ConfigError(f"validation_fraction={self.validation_fraction!r}; expected a number in (0, 1)")
        if not (isinstance(self.bn_eps, float) and 0 < self.bn_eps < 1):
            raise ConfigError(f"bn_eps={self.bn_eps!r}; expected a positive number below 1")
        for name in ("min_epochs", "patience_falling", "patience_smoothed", "patience_unchanged"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name}={value!r}; expected a non-negative integer")
        for name, valid in (("evaluation", EVALUATIONS), ("epoch_cap", EPOCH_CAPS), ("on_divergence", ON_DIVERGENCE)):
            if getattr(self, name) not in valid:
                raise UnknownNameError(name, getattr(self, name), valid)

    @classmethod
    def from_dict(cls, train: Mapping[str, Any], source: str = "the generation record") -> TrainConfig:
        """The training configuration a zoo records (its manifest's ``generation["train"]``); a field the record
        lacks (it predates the field) takes what zoos did then (:data:`FORMER_DEFAULTS`), a key this release does
        not know is ignored, and a value out of range is a :class:`~weightzoo.errors.ZooFormatError` naming
        ``source``.

        Example:
            >>> TrainConfig.from_dict({"max_epochs": 3}).epoch_cap, TrainConfig().epoch_cap
            ('epochs', 'images')
        """
        known = {f.name for f in dataclasses.fields(cls)}
        values = {**FORMER_DEFAULTS, **{k: v for k, v in train.items() if k in known}}
        try:
            return cls(**values)
        except (WeightZooError, TypeError) as e:
            raise ZooFormatError(f"{source}: the training record is not valid ({e})") from None


@dataclass(frozen=True)
class GenerationRecord:
    """How a zoo was made, as its manifest records it. Generated zoos record every ``zoo`` option of
    ``builder.generation_config.GenerationConfig`` (a test keeps the two in step); converted releases record a
    ``source`` and the options they know; a field a manifest lacks has the value zoos had before it existed.
    ``other``: keys this release does not know (kept, not interpreted)."""

    #: What the generator's training rules were (``builder.engine.train_config.GENERATION_VERSION``): 1 for zoos
    #: that predate the record.
    generation_version: int = 1
    preset: str | None = None
    num_networks: int | None = None
    seed: int | None = None
    max_epochs: int | None = None
    start_id: int = 0
    datasets: tuple[str, ...] | None = None
    lr_decay: float = 1.0
    bn_decay: float | None = None
    evaluation: str = "clean"
    epoch_cap: str = "epochs"
    on_divergence: str = "stop"
    #: The licence the card states; None: zoos made before ``--license`` (their cards say mit), converted releases.
    license: str | None = None
    eval_batch_size: int = 1000
    #: Dense layers padded to this width in training (``TrainConfig.fc_width``); None: each network's own.
    fc_width: int | None = None
    #: Convolution kernels padded to this size in training (``TrainConfig.filter_size``); None: each network's own.
    filter_size: int | None = None
    #: Batch norm, activations and optimizer updates as compiled regions (``TrainConfig.compile``).
    compile: bool = False
    #: On CUDA, products and convolutions in TF32 (``TrainConfig.tf32``).
    tf32: bool = False
    train_images: int | None = None
    test_images: int | None = None
    device: str | None = None
    threads: int | None = None
    max_shard_bytes: int = DEFAULT_SHARD_BYTES
    #: The search space the hyper-parameters were drawn from (``builder.engine.space.SearchSpace.to_dict``).
    search_space: Mapping[str, Any] | None = None
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig.from_dict({}))
    #: A converted release: where it came from (``kind``, ``paper``, ``subset``, ``skipped``, ...).
    source: Mapping[str, Any] | None = None
    #: How the shards store the weights, as zoos recorded it before the manifest had a top-level ``dtype``.
    dtype: str | None = None
    other: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, generation: Mapping[str, Any], source: str = "manifest.json") -> GenerationRecord:
        """The typed record of a manifest's ``generation`` dictionary; :class:`~weightzoo.errors.ZooFormatError`
        naming ``source`` and the field when a value has the wrong type."""
        if not isinstance(generation, Mapping):
            raise ZooFormatError(f"{source}: generation is {type(generation).__name__}; expected a mapping")
        kinds = {f.name: _KINDS.get(f.name, ()) for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        other: dict[str, Any] = {}
        for key, value in generation.items():
            if key not in kinds or key in ("train", "other"):
                (other if key != "train" else values)[key] = value
                continue
            if value is None and key not in _REQUIRED:
                values[key] = None
                continue
            if kinds[key] and not _is(value, kinds[key]):
                shown = repr(value) if len(repr(value)) < 60 else repr(value)[:57] + "..."
                raise ZooFormatError(f"{source}: generation.{key} is {shown}; expected {_describe(kinds[key])}")
            values[key] = tuple(value) if key == "datasets" else value
        train = values.pop("train", {})
        if not isinstance(train, Mapping):
            raise ZooFormatError(f"{source}: generation.train is {type(train).__name__}; expected a mapping")
        return cls(**values, train=TrainConfig.from_dict(train, f"{source}: generation.train"), other=other)

    @property
    def license_stated(self) -> str:
        """The licence the zoo states: ``generate --license``; zoos made before the option had ``mit`` written
        into their card, and keep it; a converted release (the authors state none): ``other``.

        Example:
            >>> [GenerationRecord.from_dict(g).license_stated for g in ({"license": "cc0-1.0"}, {},
            ...                                                        {"source": {"kind": "nws_release"}})]
            ['cc0-1.0', 'mit', 'other']
        """
        if self.is_converted:  # the licence the source states (the Small CNN Zoo, Model Zoos), else unknown
            stated = self.source.get("license") if isinstance(self.source, Mapping) else None
            return stated if isinstance(stated, str) and stated else "other"
        return self.license or "mit"

    @property
    def is_converted(self) -> bool:
        """A converted release (the authors' zoo in this format), not a generated zoo."""
        return isinstance(self.source, Mapping) and bool(self.source.get("kind"))


_REQUIRED = ("generation_version", "start_id", "lr_decay", "evaluation", "epoch_cap", "on_divergence",
             "eval_batch_size", "max_shard_bytes")  # fmt: skip
_INT, _NUM, _STR, _BOOL = (int,), (int, float), (str,), (bool,)
_KINDS: dict[str, tuple[type, ...]] = {
    "generation_version": _INT, "preset": _STR, "num_networks": _INT, "seed": _INT, "max_epochs": _INT,
    "start_id": _INT, "datasets": (list, tuple), "lr_decay": _NUM, "bn_decay": _NUM, "evaluation": _STR,
    "epoch_cap": _STR, "on_divergence": _STR, "license": _STR, "eval_batch_size": _INT, "fc_width": _INT,
    "filter_size": _INT, "train_images": _INT, "test_images": _INT, "device": _STR, "threads": _INT,
    "max_shard_bytes": _INT, "compile": _BOOL, "tf32": _BOOL,
    "search_space": (dict,), "source": (dict,), "dtype": _STR,
}  # fmt: skip


def _is(value: Any, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return kinds == _BOOL
    if not isinstance(value, kinds):
        return False
    if isinstance(value, (list, tuple)):
        return all(isinstance(v, str) for v in value)
    return True


def _describe(kinds: tuple[type, ...]) -> str:
    return {
        _INT: "an integer", _NUM: "a number", _STR: "a string", _BOOL: "true or false", (dict,): "a mapping",
        (list, tuple): "a list of names",
    }[kinds]  # fmt: skip
