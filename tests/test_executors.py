"""Executors report every finished epoch of every network (the generate bar moves between networks)."""

from __future__ import annotations

import pytest

from builder.engine.executors import run_tasks
from builder.engine.space import get_preset
from builder.engine.task import PackTask, Task
from builder.engine.train import TrainConfig


def _tasks(n: int, epochs: int) -> list[Task]:
    config = TrainConfig(max_epochs=epochs, train_images=200, test_images=100)
    return [Task(get_preset("demo"), 3, i, config, threads=1) for i in range(n)]


@pytest.mark.parametrize(("executor", "packed"), [("local", False), ("process", False), ("local", True)])
def test_every_epoch_is_reported_and_changes_nothing(executor, packed):
    events: list[tuple[int, int, int]] = []
    tasks = _tasks(2, 2)
    if packed:  # the pack trainer reports its members' epochs the same way
        tasks = [PackTask(tasks[0], (0, 6))]  # ids 0 and 6: one batch size (64) in the demo draw of seed 3
    results = list(run_tasks(tasks, executor=executor, workers=2, on_epoch=lambda *e: events.append(e)))
    reference = tasks if packed else _tasks(2, 2)
    quiet = {rec.network_id: w for rec, w in run_tasks(reference, executor="local")}
    for rec, weights in results:
        mine = [(epoch, images) for nid, epoch, images in events if nid == rec.network_id]
        assert [e for e, _ in mine] == list(range(1, rec.n_epochs + 1))
        assert mine[-1][1] == rec.images_seen  # images seen after the last epoch: the record's count
        assert all(weights[k].tobytes() == quiet[rec.network_id][k].tobytes() for k in weights)
