"""One network's training as a pure task: :class:`Task` holds everything needed to train it anywhere, and
:func:`train_task` turns it into the network's index record and its [20, *shape] weight arrays.

A task's result depends only on (zoo seed, network id, training config, device, thread count): the executors
(:mod:`builder.executors`) only decide where it runs.

Example:
    >>> from builder.space import get_preset
    >>> from builder.train import TrainConfig
    >>> task = Task(get_preset("demo"), zoo_seed=0, network_id=0, config=TrainConfig(max_epochs=1))
    >>> task.hyperparameters.dataset
    'digits'
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from builder.sources import load_images
from builder.space import SearchSpace, split_of
from builder.train import DeviceImages, TrainConfig, train_network
from weightzoo.format.index import NetworkRecord
from weightzoo.hparams import HyperParameters

__all__ = ["Task", "train_task"]


@dataclass(frozen=True)
class Task:
    """Everything needed to train one network, anywhere."""

    space: SearchSpace
    zoo_seed: int
    network_id: int
    config: TrainConfig
    device: str = "cpu"
    image_root: str | None = None
    cache_dir: str | None = None
    allow_download: bool = True
    #: CPU threads for this training (None: leave torch's setting). Bit-identical CPU results need equal counts.
    threads: int | None = None

    @property
    def hyperparameters(self) -> HyperParameters:
        """The network's hyper-parameters: the search space's draw for (zoo seed, network id)."""
        return self.space.sample(self.zoo_seed, self.network_id)


_IMAGES: dict[tuple[str, str], DeviceImages] = {}


def _images(task: Task, dataset: str) -> DeviceImages:
    key = (dataset, task.device)
    if key not in _IMAGES:
        images = load_images(dataset, task.image_root, cache_dir=task.cache_dir, allow_download=task.allow_download)
        _IMAGES[key] = DeviceImages(images, task.device)
    return _IMAGES[key]


def train_task(task: Task) -> tuple[NetworkRecord, dict[str, np.ndarray]]:
    """Train the task's network; return its index record and its [20, *shape] weight arrays."""
    hp = task.hyperparameters
    if task.threads is not None and torch.device(task.device).type == "cpu":
        torch.set_num_threads(task.threads)
    result = train_network(
        hp,
        _images(task, hp.dataset),
        zoo_seed=task.zoo_seed,
        network_id=task.network_id,
        config=task.config,
        device=task.device,
    )
    record = NetworkRecord(
        network_id=task.network_id,
        split=split_of(task.network_id),
        status=result.status,
        zoo_seed=task.zoo_seed,
        hparams=hp,
        n_epochs=result.n_epochs,
        snapshot_epochs=result.snapshot_epochs,
        snapshots=result.snapshots,
        history=result.history,
        train_seconds=result.seconds,
        images_seen=result.images_seen,
        device=_device_name(task.device),
    )
    return record, result.weights


def _device_name(device: str) -> str:
    dev = torch.device(device)
    if dev.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(dev)}"
    return dev.type
