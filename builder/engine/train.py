"""Training of one zoo network as the original code trains it (``classifier.py`` of Eilertsen et al.; every rule
is quoted in ``../shared/nws-reference.md``, "Exact training semantics").

- Data: the per-network 90/10 train/validation split of the dataset's training pool (for MNIST and
  Fashion-MNIST the 55,000 images TensorFlow's ``read_data_sets`` left after its own 5,000-image validation set:
  training images 5,000..59,999), class balancing by subsampling every class to the smallest one every epoch,
  reshuffled every epoch; ``floor(N / batch)`` full batches an epoch.
- Optimizers with TensorFlow 1's update rules (:mod:`weightzoo.optim`), TensorLayer batch norm
  (:mod:`weightzoo.model`), the augmentation of :mod:`builder.engine.augment`, a constant learning rate (the original's
  0.96 decay never took effect; ``lr_decay=0.96`` applies it).
- Early stopping (:class:`EarlyStopping`) and the 20 snapshots: exports 1, 2, ... are the weights before epoch
  1 (the initialisation) and after each epoch; training breaks right after the export that triggers early
  stopping, and the exports ``round(linspace(1, n_exports, 20))`` are kept: snapshot 1 is the initialisation,
  snapshot 20 the network after its last epoch, as in the original. The epoch cap is the original's loop bound
  (:func:`builder.engine.train_config.epoch_limit`; ``epoch_cap="epochs"``: exactly ``max_epochs``).

One engine: a network trained alone is a pack of one (:func:`builder.engine.pack.iter_pack`, whose lanes,
:mod:`builder.engine.pack_lane`, hold the training step), so a network has the same bytes whichever trainer made it.
Its set-up and state live in :mod:`builder.engine.member`, the configuration and result types in
:mod:`builder.engine.train_config`, the optimizers' rules in :mod:`weightzoo.optim`, the model readers rebuild (and
the clean evaluation runs) in :mod:`weightzoo.model`.

Deliberate difference (``TrainConfig.evaluation``): by default metrics are measured cleanly, without
augmentation, with batch norm in eval mode, on the whole validation and test sets and, for the train metric, on a
fixed random subset of at most ``train_eval_images`` (10,000) training images. The original measured them
through its training graph: augmented, with batch statistics, and every such pass (the per-step training
accuracy and each validation and test batch) updated the moving statistics that were then exported.
``evaluation="released"`` reproduces that, for comparing a regenerated zoo with the released one.

Deliberate difference (``TrainConfig.on_divergence``): training stops at the first export with a non-finite
weight or epoch loss; the original trained on until a stopping counter fired (``on_divergence="continue"``).

Example:
    >>> from builder.engine.sources import load_images
    >>> from builder.engine.space import get_preset
    >>> hp = get_preset("demo").sample(0, 0)
    >>> result = train_network(hp, load_images("digits"), zoo_seed=0, network_id=0,
    ...                        config=TrainConfig(max_epochs=1))  # doctest: +SKIP
    >>> result.snapshot_epochs[:3], result.status  # doctest: +SKIP
    ([0, 0, 0], 'completed')
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from builder.engine.member import DeviceImages, EarlyStopping, network_split
from builder.engine.pack import train_pack
from builder.engine.sources import ImageSet
from builder.engine.train_config import (
    EVALUATIONS,
    GENERATION_VERSION,
    TrainConfig,
    TrainResult,
    snapshot_epochs,
)
from weightzoo.errors import ConfigError
from weightzoo.hparams import HyperParameters

__all__ = [
    "EVALUATIONS",
    "GENERATION_VERSION",
    "DeviceImages",
    "EarlyStopping",
    "TrainConfig",
    "TrainResult",
    "network_split",
    "snapshot_epochs",
    "train_network",
]


def train_network(
    hp: HyperParameters,
    images: ImageSet | DeviceImages,
    *,
    zoo_seed: int,
    network_id: int,
    config: TrainConfig = TrainConfig(),
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    on_epoch: Callable[[int, int, int], None] | None = None,
) -> TrainResult:
    """Train network ``network_id`` of the zoo with seed ``zoo_seed``; deterministic on a given device (and
    thread count), and the same bytes it gets in any pack (:func:`builder.engine.pack.train_pack`).

    ``on_epoch(network_id, epoch, images_seen)`` is called after every epoch (progress reports; it changes
    nothing). ``dtype`` is the arithmetic's (float32, the zoo's; float64 serves equivalence tests); the weights
    come back as float32 either way. ``device``: where to train (None: the device ``images`` are on when they are
    :class:`DeviceImages`, else the CPU); images already on another device are refused."""
    if isinstance(images, DeviceImages):
        if device is not None and torch.device(device) != images.device:
            raise ConfigError(f"device={device!r}, but the images given are on {images.device}; pass one of them")
        data = images
    else:
        data = DeviceImages(images, "cpu" if device is None else device)
    if data.name != hp.dataset:
        raise ConfigError(f"network {network_id} draws dataset {hp.dataset!r} but was given {data.name!r}")
    [result] = train_pack([hp], {data.name: data}, zoo_seed=zoo_seed, network_ids=[network_id], config=config,
                          device=data.device, dtype=dtype, on_epoch=on_epoch)  # fmt: skip
    return result
