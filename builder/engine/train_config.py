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

from weightzoo.format.layout import METRICS, NUM_SNAPSHOTS
from weightzoo.format.record import EPOCH_CAPS, EVALUATIONS, FORMER_DEFAULTS, ON_DIVERGENCE, TrainConfig

__all__ = [
    "EPOCH_CAPS",
    "EVALUATIONS",
    "FORMER_DEFAULTS",
    "GENERATION_VERSION",
    "ON_DIVERGENCE",
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
#: (``TrainConfig.epoch_cap``; version 4 stopped at exactly ``max_epochs``: :data:`FORMER_DEFAULTS`); 6 = batch
#: norm's backward pass in closed form (:mod:`builder.engine.batch_norm`: the same gradients up to rounding, in
#: fewer kernels and a fifth less memory traffic per step), its forward's multiply-adds as ``addcmul``.
#: Recorded in every manifest; ``builder.reproduce`` and ``--resume`` refuse to mix versions.
GENERATION_VERSION = 6


@dataclass
class TrainResult:
    """What training one network produced; ``weights`` maps names to [20, *shape] float32 arrays."""

    status: str
    n_epochs: int
    snapshot_epochs: list[int]
    weights: dict[str, np.ndarray]
    history: dict[str, list[float]]
    #: Each metric at the 20 snapshots (the index's per-snapshot columns).
    snapshot_metrics: dict[str, list[float]] = field(init=False)
    seconds: float = 0.0
    images_seen: int = 0

    def __post_init__(self) -> None:
        self.snapshot_metrics = {m: [self.history[m][e] for e in self.snapshot_epochs] for m in METRICS}


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
