"""What training is given and what it gives: :class:`TrainConfig` (the same for every network of a zoo), the
generation version (what a network of a given seed, id and configuration becomes), :class:`TrainResult` and the
snapshot policy. The rules themselves are described in :mod:`builder.engine.train`; the engine that applies them is
:mod:`builder.engine.pack` (a network trained alone is a pack of one).

Example:
    >>> TrainConfig(max_epochs=5).min_epochs, snapshot_epochs(19)[:3]
    (19, [0, 1, 2])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from weightzoo.errors import ConfigError, UnknownNameError
from weightzoo.format.layout import METRICS, NUM_SNAPSHOTS
from weightzoo.model import BN_DECAY, BN_EPS
from weightzoo.options import RANGES, check_params

__all__ = [
    "EPOCH_CAPS",
    "EVALUATIONS",
    "FORMER_DEFAULTS",
    "GENERATION_VERSION",
    "ON_DIVERGENCE",
    "SAME_NETWORKS",
    "TrainConfig",
    "TrainResult",
    "epoch_limit",
    "snapshot_epochs",
]

#: What a network of a given (zoo seed, id, configuration) becomes. Bumped whenever training changes the weights:
#: 1 = before the exact original rules; 2 = the original's early stopping, TF1 optimizers, TensorLayer batch norm,
#: per-batch colour augmentation with both shears, the 55,000-image MNIST pool; 3 = dropout masks and augmentation
#: parameters drawn by :mod:`builder.engine.keyed_random` (a function of the network and its step, so a pack draws them
#: for all its networks at once); 4 = the pack trainer's lanes give a network the same bytes at any width (a lane
#: of one computes as a lane of two, the first convolution padded to 4 input channels: see
#: :meth:`builder.engine.pack_lane.Lane._forward`); 5 = one engine: a network trained alone is a pack of one, so the
#: single and the pack trainers give the same bytes (version 4's pack-trained networks are unchanged; its
#: single-trained ones, trained by a per-network loop, are not), and the original's epoch cap
#: (``TrainConfig.epoch_cap``; version 4 stopped at exactly ``max_epochs``: :data:`FORMER_DEFAULTS`). Recorded
#: in every manifest; ``builder.reproduce`` and ``--resume`` refuse to mix versions (but see :data:`SAME_NETWORKS`).
GENERATION_VERSION = 5
#: Older generation versions whose networks this release trains identically, with the trainers that made them:
#: ``builder.reproduce`` accepts those zoos.
SAME_NETWORKS: dict[int, tuple[str, ...]] = {4: ("pack",)}
#: How metrics are measured: "clean" (default) or "released" (the original's train-mode graph; see above).
EVALUATIONS: tuple[str, ...] = ("clean", "released")
#: How ``max_epochs`` caps training (:func:`epoch_limit`): "images" (the original's step budget) or "epochs".
EPOCH_CAPS: tuple[str, ...] = ("images", "epochs")
#: What a non-finite export does: "stop" training there (default) or "continue" as the original did.
ON_DIVERGENCE: tuple[str, ...] = ("stop", "continue")
#: What zoos recorded before a :class:`TrainConfig` field existed did: ``builder.reproduce`` fills a field
#: missing from a zoo's record with this, not with today's default.
FORMER_DEFAULTS: dict[str, object] = {"epoch_cap": "epochs", "on_divergence": "stop"}


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
    #: :func:`epoch_limit` epochs, a little more than ``max_epochs`` when ``N / batch`` is not whole (MNIST at
    #: batch 256: 1,002). "epochs": exactly ``max_epochs``.
    epoch_cap: str = "images"
    #: "stop" (deliberate, the default): training stops at the first export with a non-finite weight or epoch loss
    #: and the network is recorded as diverged, its snapshots spread over its epochs up to that one. "continue" (the
    #: original): it trains on, non-finite, until a stopping counter fires or the cap, and is recorded as diverged.
    on_divergence: str = "stop"

    def __post_init__(self) -> None:
        """Each value in its range (:data:`weightzoo.options.RANGES`, the ranges the command line checks)."""
        for name in ("max_epochs", "lr_decay", "bn_decay", "eval_batch_size"):
            RANGES[name].check(name, getattr(self, name))
        check_params({n: getattr(self, n) for n in ("train_images", "train_eval_images", "test_images")})  # None: all
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


@dataclass
class TrainResult:
    """What training one network produced; ``weights`` maps names to [20, *shape] float32 arrays."""

    status: str
    n_epochs: int
    snapshot_epochs: list[int]
    weights: dict[str, np.ndarray]
    history: dict[str, list[float]]
    snapshots: dict[str, list[float]] = field(init=False)
    seconds: float = 0.0
    images_seen: int = 0

    def __post_init__(self) -> None:
        self.snapshots = {m: [self.history[m][e] for e in self.snapshot_epochs] for m in METRICS}


def epoch_limit(config: TrainConfig, n_images: int, batch_size: int) -> int:
    """The most epochs a network with ``n_images`` balanced training images per epoch trains at ``batch_size``.

    With ``epoch_cap="images"``, the original's: its last export came at the last multiple of ``floor(N / B)``
    among its ``int(max_epochs * N / B) + 1`` steps.

    Example:
        >>> epoch_limit(TrainConfig(), 48_780, 256), epoch_limit(TrainConfig(epoch_cap="epochs"), 48_780, 256)
        (1002, 1000)
    """
    if config.epoch_cap == "epochs":
        return config.max_epochs
    return int(config.max_epochs * n_images / batch_size) // (n_images // batch_size)


def snapshot_epochs(n_epochs: int) -> list[int]:
    """The epochs whose weights are kept after ``n_epochs`` epochs: the original keeps the exports
    ``round(linspace(1, n_exports, 20))`` of its ``n_exports = n_epochs + 1`` (export 1: the initialisation).

    Example:
        >>> snapshot_epochs(38)[:4], snapshot_epochs(38)[-1]
        ([0, 2, 4, 6], 38)
    """
    exports = np.round(np.linspace(1, n_epochs + 1, NUM_SNAPSHOTS)).astype(np.int64)
    return [int(e) - 1 for e in exports]
