"""Where networks get trained: in this process, in a pool of local processes, or on a Ray cluster.

Every executor runs the same pure task, :func:`builder.engine.task.train_task`, and yields its results as they finish;
the writer orders nothing and needs nothing else, so a network's weights depend only on (zoo seed, network id,
device), never on the executor or on how many run at once.

Example:
    >>> from builder.engine.space import get_preset
    >>> from builder.engine.train import TrainConfig
    >>> task = Task(get_preset("demo"), zoo_seed=0, network_id=0, config=TrainConfig(max_epochs=1))
    >>> record, weights = next(run_tasks([task], executor="local"))  # doctest: +SKIP
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from builder.engine.task import PackTask, Task, iter_pack_task, set_progress_sink, train_task
from weightzoo.errors import ConfigError, MissingExtraError
from weightzoo.format.index import NetworkRecord

EXECUTORS: tuple[str, ...] = ("local", "process", "ray")
__all__ = ["EXECUTORS", "PackTask", "Task", "run_tasks", "train_task"]


def run_tasks(
    tasks: Sequence[Task | PackTask],
    *,
    executor: str = "local",
    workers: int = 1,
    ray_address: str | None = None,
    on_epoch: Callable[[int, int, int], None] | None = None,
) -> Iterator[tuple[NetworkRecord, dict[str, np.ndarray]]]:
    """Run tasks (a :class:`PackTask` trains a pack) and yield ``(record, weights)`` per network as each finishes
    (in any order).

    ``on_epoch(network_id, epoch, images_seen)``: called in this process after every epoch a network finishes
    (the local and process executors, networks trained alone or in packs; Ray tasks report when they finish
    only)."""
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; expected one of {', '.join(EXECUTORS)}")
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    if executor == "local":
        set_progress_sink(on_epoch)
        try:
            for task in tasks:  # each network as it finishes (the writer keeps a pack's before the pack ends)
                yield from _iter(task)
        finally:
            set_progress_sink(None)
    elif executor == "process":
        ctx = multiprocessing.get_context("spawn")  # CUDA and fork do not mix
        events = ctx.Queue() if on_epoch is not None else None
        relay = _Relay(events, on_epoch) if on_epoch is not None else None
        with ctx.Pool(workers, initializer=_worker_init, initargs=(events,)) as pool:
            try:
                for results in pool.imap_unordered(_train, tasks):
                    yield from results
            finally:
                if relay is not None:
                    relay.stop()
    else:
        yield from _run_ray(tasks, workers, ray_address)


def _worker_init(events: Any) -> None:
    """In each worker process: report finished epochs to the parent through ``events`` (a queue), if given; leave
    Ctrl-C to the parent (it stops the pool and says how to resume; a worker's traceback would only add noise)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if events is not None:
        set_progress_sink(lambda network_id, epoch, images: events.put((network_id, epoch, images)))


class _Relay:
    """A thread of the parent process that hands the workers' epoch reports to ``callback``."""

    def __init__(self, events: Any, callback: Callable[[int, int, int], None]):
        self.events, self.callback = events, callback
        self.thread = threading.Thread(target=self._run, name="weightzoo-progress", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (event := self.events.get()) is not None:
            self.callback(*event)

    def stop(self) -> None:
        self.events.put(None)
        self.thread.join(timeout=5)


def _iter(task: Task | PackTask) -> Iterator[tuple[NetworkRecord, dict[str, np.ndarray]]]:
    """A task's networks as each finishes (a pack's one by one)."""
    if isinstance(task, PackTask):
        yield from iter_pack_task(task)
    else:
        yield train_task(task)


def _train(task: Task | PackTask) -> list[tuple[NetworkRecord, dict[str, np.ndarray]]]:
    """A task's networks at once (what a worker process or Ray task returns)."""
    return list(_iter(task))


def _run_ray(tasks: Sequence[Task | PackTask], workers: int, address: str | None) -> Iterator[Any]:
    try:
        import ray
    except ImportError:
        raise MissingExtraError("ray", "ray", "the 'ray' executor") from None
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    devices = [t.base.device if isinstance(t, PackTask) else t.device for t in tasks]
    gpus = 1.0 / workers if any(torch.device(d).type == "cuda" for d in devices) else 0
    remote = ray.remote(num_gpus=gpus, num_cpus=1)(_train)
    pending = [remote.remote(t) for t in tasks]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        yield from ray.get(done[0])
