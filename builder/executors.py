"""Where networks get trained: in this process, in a pool of local processes, or on a Ray cluster.

Every executor runs the same pure task, :func:`builder.task.train_task`, and yields its results as they finish;
the writer orders nothing and needs nothing else, so a network's weights depend only on (zoo seed, network id,
device), never on the executor or on how many run at once.

Example:
    >>> from builder.space import get_preset
    >>> from builder.train import TrainConfig
    >>> task = Task(get_preset("demo"), zoo_seed=0, network_id=0, config=TrainConfig(max_epochs=1))
    >>> record, weights = next(run_tasks([task], executor="local"))  # doctest: +SKIP
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from builder.task import Task, train_task
from weightzoo.errors import ConfigError, MissingExtraError
from weightzoo.format.index import NetworkRecord

EXECUTORS: tuple[str, ...] = ("local", "process", "ray")
__all__ = ["EXECUTORS", "Task", "run_tasks", "train_task"]


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
