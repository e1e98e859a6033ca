"""Where networks get trained: in this process, in a pool of local processes, or on a Ray cluster.

Every executor runs the same pure task, :func:`train_task`, and yields its results as they finish; the writer
orders nothing and needs nothing else, so a network's weights depend only on (zoo seed, network id, device),
never on the executor or on how many run at once.

Example:
    >>> from builder.space import get_preset
    >>> from builder.train import TrainConfig
    >>> task = Task(get_preset("demo"), zoo_seed=0, network_id=0, config=TrainConfig(max_epochs=1))
    >>> record, weights = next(run_tasks([task], executor="local"))  # doctest: +SKIP
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from builder.sources import load_images
from builder.space import SearchSpace, split_of
from builder.train import DeviceImages, TrainConfig, train_network
from weightzoo.errors import ConfigError, MissingExtraError
from weightzoo.format.index import NetworkRecord

EXECUTORS: tuple[str, ...] = ("local", "process", "ray")


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


_IMAGES: dict[tuple[str, str], DeviceImages] = {}


def _images(task: Task, dataset: str) -> DeviceImages:
    key = (dataset, task.device)
    if key not in _IMAGES:
        images = load_images(dataset, task.image_root, cache_dir=task.cache_dir, allow_download=task.allow_download)
        _IMAGES[key] = DeviceImages(images, task.device)
    return _IMAGES[key]


def train_task(task: Task) -> tuple[NetworkRecord, dict[str, np.ndarray]]:
    """Train the task's network; return its index record and its [20, *shape] weight arrays."""
    hp = task.space.sample(task.zoo_seed, task.network_id)
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


def run_tasks(
    tasks: Sequence[Task], *, executor: str = "local", workers: int = 1, ray_address: str | None = None
) -> Iterator[tuple[NetworkRecord, dict[str, np.ndarray]]]:
    """Run tasks and yield ``(record, weights)`` as each finishes (in any order)."""
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; expected one of {', '.join(EXECUTORS)}")
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    if executor == "local":
        for task in tasks:
            yield train_task(task)
    elif executor == "process":
        ctx = multiprocessing.get_context("spawn")  # CUDA and fork do not mix
        with ctx.Pool(workers) as pool:
            yield from pool.imap_unordered(train_task, tasks)
    else:
        yield from _run_ray(tasks, workers, ray_address)


def _run_ray(tasks: Sequence[Task], workers: int, address: str | None) -> Iterator[Any]:
    try:
        import ray
    except ImportError:
        raise MissingExtraError("ray", "ray", "the 'ray' executor") from None
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    gpus = 1.0 / workers if any(torch.device(t.device).type == "cuda" for t in tasks) else 0
    remote = ray.remote(num_gpus=gpus, num_cpus=1)(train_task)
    pending = [remote.remote(t) for t in tasks]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        yield ray.get(done[0])
