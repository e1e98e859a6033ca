"""One network's training as a pure task: :class:`Task` holds everything needed to train it anywhere, and
:class:`TaskRunner` (or :func:`train_task`) turns it into the network's index record and its [20, *shape] weight arrays.

A task's result depends only on (zoo seed, network id, training config, device, thread count): the executors
(:mod:`builder.engine.executors`) only decide where it runs.

Example:
    >>> from builder.engine.space import get_preset
    >>> from builder.engine.train import TrainConfig
    >>> task = Task(get_preset("demo"), zoo_seed=0, network_id=0, config=TrainConfig(max_epochs=1))
    >>> task.hyperparameters.dataset
    'digits'
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from builder.engine.sources import load_images
from builder.engine.space import SearchSpace, split_of
from builder.engine.train import DeviceImages, TrainConfig, TrainResult, train_network
from weightzoo.format.index import NetworkRecord
from weightzoo.hparams import HyperParameters

__all__ = ["TRAINERS", "PackTask", "Task", "TaskRunner", "train_pack_task", "train_task"]

#: "single": a task per network (:func:`train_task`); "pack": a task per pack (:func:`train_pack_task`). One engine
#: trains both (a network alone is a pack of one), so they give the same bytes.
TRAINERS: tuple[str, ...] = ("single", "pack")


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


@dataclass(frozen=True)
class PackTask:
    """Networks trained together by the pack trainer: ``base`` says how (space, seed, config, device, images,
    threads), ``network_ids`` which (any shapes, best each shape's consecutive: :func:`builder.engine.pack_schedule.
    form_packs`), ``width`` how many at once (None: all) and ``budget_bytes`` the most estimated training memory
    they may take at once (None: no limit); ``cuda_graphs``: each step replayed as a CUDA graph (the same bytes)."""

    base: Task
    network_ids: tuple[int, ...]
    width: int | None = None
    budget_bytes: int | None = None
    cuda_graphs: bool = False


class TaskRunner:
    """Trains tasks in one process: each data set's images are loaded and moved to the device once, for this
    runner's tasks after (a local run makes one runner; a worker process or Ray actor holds its own), and every
    finished epoch is reported to ``on_epoch(network_id, epoch, images_seen)`` (None: not reported).

    Example:
        >>> runner = TaskRunner(on_epoch=lambda nid, epoch, images: print(nid, epoch))
        >>> record, weights = runner.train(task)  # doctest: +SKIP
    """

    def __init__(self, on_epoch: Callable[[int, int, int], None] | None = None):
        self.on_epoch = on_epoch
        self._images: dict[tuple[str, str], DeviceImages] = {}

    def images(self, task: Task, dataset: str) -> DeviceImages:
        """``dataset``'s images on ``task.device``, loaded the first time a task of this runner needs them."""
        key = (dataset, task.device)
        if key not in self._images:
            images = load_images(dataset, task.image_root, cache_dir=task.cache_dir, allow_download=task.allow_download)
            self._images[key] = DeviceImages(images, task.device)
        return self._images[key]

    def run(self, task: Task | PackTask) -> Iterator[tuple[NetworkRecord, dict[str, np.ndarray]]]:
        """A task's networks as each finishes (a pack's one by one)."""
        if isinstance(task, PackTask):
            yield from self.iter_pack(task)
        else:
            yield self.train(task)

    def train(self, task: Task) -> tuple[NetworkRecord, dict[str, np.ndarray]]:
        """Train the task's network; return its index record and its [20, *shape] weight arrays."""
        hp = task.hyperparameters
        _set_threads(task)
        result = train_network(
            hp,
            self.images(task, hp.dataset),
            zoo_seed=task.zoo_seed,
            network_id=task.network_id,
            config=task.config,
            device=task.device,
            on_epoch=self.on_epoch,
        )
        return _record(task, task.network_id, hp, result), result.weights

    def iter_pack(self, task: PackTask) -> Iterator[tuple[NetworkRecord, dict[str, np.ndarray]]]:
        """Train a pack; yield each network's index record and weight arrays as it finishes."""
        from builder.engine.pack import iter_pack  # the pack trainer only where packs are trained

        base = task.base
        _set_threads(base)
        hps = {i: base.space.sample(base.zoo_seed, i) for i in task.network_ids}
        images = {name: self.images(base, name) for name in sorted({hp.dataset for hp in hps.values()})}
        for nid, result in iter_pack(
            [hps[i] for i in task.network_ids],
            images,
            zoo_seed=base.zoo_seed,
            network_ids=task.network_ids,
            config=base.config,
            device=base.device,
            width=task.width,
            budget_bytes=task.budget_bytes,
            on_epoch=self.on_epoch,
            cuda_graphs=task.cuda_graphs,
        ):
            yield _record(base, nid, hps[nid], result), result.weights


def _set_threads(task: Task) -> None:
    if task.threads is not None and torch.device(task.device).type == "cpu":
        torch.set_num_threads(task.threads)


def train_task(task: Task) -> tuple[NetworkRecord, dict[str, np.ndarray]]:
    """Train one task's network on its own (:meth:`TaskRunner.train` of a fresh runner)."""
    return TaskRunner().train(task)


def train_pack_task(task: PackTask) -> list[tuple[NetworkRecord, dict[str, np.ndarray]]]:
    """Train a pack on its own; return each network's index record and weight arrays, in ``network_ids`` order."""
    out = {rec.network_id: (rec, weights) for rec, weights in TaskRunner().iter_pack(task)}
    return [out[i] for i in task.network_ids]


def _record(task: Task, network_id: int, hp: HyperParameters, result: TrainResult) -> NetworkRecord:
    outcome = ("status", "n_epochs", "snapshot_epochs", "snapshot_metrics", "history", "images_seen")
    return NetworkRecord(
        network_id, split_of(network_id), zoo_seed=task.zoo_seed, hparams=hp, train_seconds=result.seconds,
        device=_device_name(task.device), **{name: getattr(result, name) for name in outcome},
    )  # fmt: skip


def _device_name(device: str) -> str:
    dev = torch.device(device)
    if dev.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(dev)}"
    return dev.type
