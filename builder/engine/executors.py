"""Where networks get trained: in this process, in a pool of local processes, or on a Ray cluster.

Every executor runs the same pure task with a :class:`builder.engine.task.TaskRunner` (this process's, a worker
process's or a Ray actor's: each loads its own images once) and yields its results as they finish; the writer
orders nothing and needs nothing else, so a network's weights depend only on (zoo seed, network id, device), never
on the executor or on how many run at once.

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

from builder.engine.task import PackTask, Task, TaskRunner, train_task
from weightzoo.errors import ConfigError, MissingExtraError
from weightzoo.format.index import NetworkRecord

EXECUTORS: tuple[str, ...] = ("local", "process", "ray")
__all__ = ["EXECUTORS", "PackTask", "Task", "run_tasks", "train_task"]

Result = tuple[NetworkRecord, dict[str, np.ndarray]]


def run_tasks(
    tasks: Sequence[Task | PackTask],
    *,
    executor: str = "local",
    workers: int = 1,
    on_epoch: Callable[[int, int, int], None] | None = None,
) -> Iterator[Result]:
    """Run tasks (a :class:`PackTask` trains a pack) and yield ``(record, weights)`` per network as each finishes
    (in any order).

    ``on_epoch(network_id, epoch, images_seen)``: called in this process after every epoch a network finishes
    (the local and process executors, networks trained alone or in packs; Ray tasks report when they finish
    only). The ray executor joins the cluster Ray finds by itself (``RAY_ADDRESS``, or one that ``ray start``
    began on this machine), else starts one on this machine."""
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; expected one of {', '.join(EXECUTORS)}")
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    if executor == "local":
        runner = TaskRunner(on_epoch)
        for task in tasks:  # each network as it finishes (the writer keeps a pack's before the pack ends)
            yield from runner.run(task)
    elif executor == "process":
        ctx = multiprocessing.get_context("spawn")  # CUDA and fork do not mix
        events = ctx.Queue() if on_epoch is not None else None
        relay = _Relay(events, on_epoch) if on_epoch is not None else None
        with ctx.Pool(workers, initializer=_worker_init, initargs=(events,)) as pool:
            try:
                for results in pool.imap_unordered(_train_in_worker, tasks):
                    yield from results
            finally:
                if relay is not None:
                    relay.stop()
    else:
        yield from _run_ray(tasks, workers)


#: In a worker process of the process executor, and only there: the worker's runner, made by the pool's
#: initializer (:func:`_worker_init`), gone with the process. The parent process holds no such state.
_WORKER: list[TaskRunner] = []


def _worker_init(events: Any) -> None:
    """In each worker process: a runner that reports finished epochs to the parent through ``events`` (a queue),
    if given. Ctrl-C is left to the parent (it stops the pool and says how to resume; a worker's traceback would
    only add noise)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    report = None if events is None else (lambda network_id, epoch, images: events.put((network_id, epoch, images)))
    _WORKER.append(TaskRunner(report))


def _train_in_worker(task: Task | PackTask) -> list[Result]:
    """A task's networks at once (what a worker process returns), trained by the worker's runner."""
    return list(_WORKER[0].run(task))


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


class _RayWorker:
    """A Ray actor: one runner (each data set's images loaded once) for the tasks the actor pool hands it."""

    def __init__(self) -> None:
        self.runner = TaskRunner()

    def train(self, task: Task | PackTask) -> list[Result]:
        return list(self.runner.run(task))


def _run_ray(tasks: Sequence[Task | PackTask], workers: int) -> Iterator[Result]:
    try:
        import ray
        from ray.util import ActorPool
    except ImportError:
        raise MissingExtraError("ray", "ray", "the 'ray' executor") from None
    if not ray.is_initialized():
        ray.init(ignore_reinit_error=True, log_to_driver=False)
    devices = [t.base.device if isinstance(t, PackTask) else t.device for t in tasks]
    gpus = 1.0 / workers if any(torch.device(d).type == "cuda" for d in devices) else 0
    actor = ray.remote(num_gpus=gpus, num_cpus=1)(_RayWorker)
    pool = ActorPool([actor.remote() for _ in range(max(1, min(workers, len(tasks))))])
    for results in pool.map_unordered(lambda a, task: a.train.remote(task), list(tasks)):
        yield from results
