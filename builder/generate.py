"""Generate a zoo: ``python -m builder.generate [--preset demo] [--num-networks N] [--out PATH_OR_URL] ...``

Without arguments it trains the offline demo zoo (the nws_fixed architecture on scikit-learn's embedded
digits) into ``~/.cache/weightzoo/zoos/demo``, a few minutes on two CPU cores. ``--preset nws_fixed`` and
``--preset nws_main`` regenerate the reference zoo (use ``--device cuda``, ``--image-root`` for local copies of
the image datasets, ``--start-id`` to split the id range across machines).

Example:
    python -m builder.generate --preset nws_fixed --datasets mnist fashion --image-root ../shared/data \\
        --num-networks 24 --max-epochs 5 --out runs/mnist24
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
import torch

import weightzoo
from builder.card import render_card
from builder.engine.executors import PackTask, Task, run_tasks
from builder.engine.pack_schedule import MAX_WIDTH, QUEUE_DEPTH, device_budget, form_packs
from builder.engine.space import get_preset
from builder.engine.train_config import GENERATION_VERSION, TrainConfig
from builder.generation_config import GenerationConfig, build_parser, config_from_args
from weightzoo.cli import command, run_main
from weightzoo.errors import ConfigError
from weightzoo.format.manifest import Manifest
from weightzoo.format.writer import ZooWriter
from weightzoo.progress import bar

__all__ = ["GenerationConfig", "GenerationInterrupted", "generate", "main"]


def generate(config: GenerationConfig) -> Manifest:
    """Train ``config.num_networks`` networks and write them as a zoo; return its manifest.

    Example:
        >>> generate(GenerationConfig(preset="demo", num_networks=4, max_epochs=2, out="/tmp/zoo"))  # doctest: +SKIP
    """
    cfg = config.resolved()
    assert cfg.num_networks is not None and cfg.max_epochs is not None and cfg.out and cfg.device
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {cfg.device}: CUDA is not available on this machine; use --device cpu")
    if cfg.trainer == "pack" and cfg.device == "cpu" and cfg.threads != 1:
        # measured: with two threads, CPU reductions split by thread make a member's bytes depend on its pack
        raise ConfigError(
            f"--trainer pack on CPU trains with one thread per process (--threads {cfg.threads} given): a network's "
            "bytes then do not depend on its pack, so the zoo reproduces; use --executor process --workers N for "
            "more cores"
        )
    space = get_preset(cfg.preset)
    if cfg.datasets:
        space = space.restrict(dataset=list(cfg.datasets))
    assert cfg.bn_decay is not None
    widest = max(space.choices["width_fc"])
    if cfg.fc_width is not None and cfg.fc_width < widest:
        raise ConfigError(f"--fc-width {cfg.fc_width} is below the widest dense width {cfg.preset!r} draws "
                          f"({widest}): expected at least {widest}")  # fmt: skip
    cuda = cfg.device.startswith("cuda")
    if cfg.tf32 and not cuda:
        raise ConfigError(f"--tf32 is for CUDA devices (--device {cfg.device} given): on CPU it would change nothing")
    if cfg.cuda_graphs and not (cuda and cfg.trainer == "pack"):
        raise ConfigError(f"--cuda-graphs needs --trainer pack on a CUDA device (given --trainer {cfg.trainer}, "
                          f"--device {cfg.device})")  # fmt: skip
    largest = max(space.choices["filter_size"])
    if cfg.filter_size is not None and cfg.filter_size < largest:
        raise ConfigError(f"--filter-size {cfg.filter_size} is below the largest filter size {cfg.preset!r} draws "
                          f"({largest}): expected at least {largest}")  # fmt: skip
    # the recorded options that are training options (max_epochs, lr_decay, evaluation, ...), by name
    training = {f.name for f in dataclasses.fields(TrainConfig)}
    train_config = TrainConfig(
        **{name: value for name, value in cfg.record().items() if name in training},
        # --test-images caps the train-metric subset too (at the default, 10,000, when smaller)
        train_eval_images=min(cfg.test_images or TrainConfig.train_eval_images, TrainConfig.train_eval_images),
    )
    record = {
        "generation_version": GENERATION_VERSION,
        **cfg.record(),
        "search_space": space.to_dict(),
        "train": dataclasses.asdict(train_config),
    }
    # Where and how this run was executed: provenance.json, not the manifest (the same command, the same bytes).
    provenance = cfg.provenance()
    provenance.update(created=datetime.now(timezone.utc).isoformat(timespec="seconds"), host=platform.node())
    writer = ZooWriter(
        cfg.out,
        name=cfg.preset if not cfg.datasets else f"{cfg.preset}-{'-'.join(cfg.datasets)}",
        zoo_seed=cfg.seed,
        generation=record,
        max_shard_bytes=cfg.max_shard_bytes,
        overwrite=cfg.overwrite,
        generator=f"weightzoo {weightzoo.__version__}",
        card=render_card,
        resume=cfg.resume,
        # the provenance (paths, executor, workers) may change between an interrupted run and its resume, and so
        # may the thread count, which changes CPU float sums only: a resume with other --threads is the user's call
        resume_ignores=("threads",),
        provenance=provenance,
    )
    for note in writer.damaged:
        print(f"resume: damaged progress record {note}", file=sys.stderr)
    if writer.done:
        print(f"resuming {cfg.out}: {len(writer.done)} networks already written, training the others")
    tasks = [
        Task(
            space, cfg.seed, i, train_config, cfg.device, cfg.image_root, cfg.cache_dir, cfg.allow_download, cfg.threads
        )
        for i in range(cfg.start_id, cfg.start_id + cfg.num_networks)
        if i not in writer.done
    ]
    n_networks = len(tasks)  # the bar counts networks, also when packs train several per task
    if cfg.trainer == "pack":
        tasks = _pack_tasks(tasks, cfg.pack_size, cfg.device, QUEUE_DEPTH if cfg.executor == "local" else 1,
                            cfg.fc_width, cfg.filter_size, cfg.cuda_graphs)  # fmt: skip
    start = time.perf_counter()
    accuracy: dict[str, list[float]] = defaultdict(list)
    statuses: Counter[str] = Counter()
    try:
        with bar(total=n_networks, progress=cfg.progress, desc=f"training {cfg.preset}", unit="net") as shown:
            live = _LiveNetworks(shown, start, n_networks, cfg.max_epochs)
            on_epoch = None if shown.disable else live.epoch
            for rec, weights in run_tasks(tasks, executor=cfg.executor, workers=cfg.workers, on_epoch=on_epoch):
                writer.add(rec, weights)
                statuses[rec.status] += 1
                accuracy[rec.hparams.dataset].append(rec.snapshot_metrics["test_accuracy"][-1])
                live.finished(rec.network_id, rec.images_seen, accuracy[rec.hparams.dataset][-1], rec.n_epochs)
                shown.update()
    except KeyboardInterrupt:
        if writer.abandon():  # nothing written yet: nothing left behind either
            raise GenerationInterrupted(0, cfg.out, resumable=False) from None
        raise GenerationInterrupted(len(writer.done) + sum(statuses.values()), cfg.out, resumable=True) from None
    except BaseException:
        writer.abandon()  # nothing trained yet (a data set not found, say): leave no "interrupted run" behind
        raise
    manifest = writer.close()
    seconds = time.perf_counter() - start
    _summary(manifest, cfg.out, accuracy, statuses, seconds, live.done_images)
    return manifest


def _pack_tasks(tasks: list[Task], pack_size: int | None, device: str, depth: int, fc_width: int | None = None,
                filter_size: int | None = None, cuda_graphs: bool = False) -> list[PackTask]:  # fmt: skip
    """The tasks as packs (builder.engine.pack_schedule): each trains ``pack_size`` networks at once (None: as many as
    ``MAX_WIDTH`` and the device's memory allow) from a queue ``depth`` times as long, shapes mixed. The local
    executor hands over each network as it finishes, so its packs queue ``QUEUE_DEPTH`` times their width; a
    worker process or Ray task returns its pack's weights at once, so those packs hold one width of networks."""
    by_id = {t.network_id: t for t in tasks}
    hps = {i: t.hyperparameters for i, t in by_id.items()}
    width = pack_size or MAX_WIDTH
    budget = None if pack_size else device_budget(device)
    packs = []
    for ids in form_packs(hps, size=width * depth, fc_width=fc_width, filter_size=filter_size):
        packs.append(PackTask(by_id[ids[0]], tuple(ids), width=width, budget_bytes=budget, cuda_graphs=cuda_graphs))
    return packs


class _LiveNetworks:
    """The generate bar's postfix: the networks in training with their epoch, the images/s of the run so far
    (finished networks and the epochs of those still training), and an upper bound on the time left (every
    network not yet stopped running to the epoch cap, at the epochs/s so far; early stopping ends most sooner),
    updated after every epoch, not only when a network finishes: the first estimate comes with the first epoch."""

    def __init__(self, bar: Any, start: float, networks: int = 0, max_epochs: int = 0):
        self.bar, self.start, self.networks, self.max_epochs = bar, start, networks, max_epochs
        self.lock = threading.Lock()
        self.training: dict[int, tuple[int, int]] = {}  # network id -> (epoch, images seen)
        self.done_images, self.last_acc = 0, float("nan")
        self.done_networks = self.done_epochs = 0

    def epoch(self, network_id: int, epoch: int, images: int) -> None:
        with self.lock:
            self.training[network_id] = (epoch, images)
            self._show()

    def finished(self, network_id: int, images: int, accuracy: float, epochs: int = 0) -> None:
        with self.lock:
            self.training.pop(network_id, None)
            self.done_images += images
            self.done_networks += 1
            self.done_epochs += epochs
            self.last_acc = accuracy
            self._show()

    def time_left(self) -> float | None:
        """Seconds left at most, or None before the first epoch."""
        epochs_now = sum(e for e, _ in self.training.values())
        elapsed = time.perf_counter() - self.start
        if self.done_epochs + epochs_now == 0 or not self.max_epochs:
            return None
        waiting = self.networks - self.done_networks - len(self.training)
        left = max(waiting, 0) * self.max_epochs + sum(max(self.max_epochs - e, 0) for e, _ in self.training.values())
        return left * elapsed / (self.done_epochs + epochs_now)

    def _show(self) -> None:
        seen = self.done_images + sum(i for _, i in self.training.values())
        nets = ", ".join(f"#{n} epoch {e}" for n, (e, _) in sorted(self.training.items())[:4])
        more = f" +{len(self.training) - 4}" if len(self.training) > 4 else ""
        rate = seen / max(time.perf_counter() - self.start, 1e-9)
        parts = [f"{nets}{more}"] if nets else []
        parts.append(f"{rate:,.0f} img/s")
        left = self.time_left()
        if left is not None:
            minutes, seconds = divmod(int(left), 60)
            parts.append(f"at most {minutes}:{seconds:02d} left")
        if self.last_acc == self.last_acc:  # not NaN: a network has finished
            parts.append(f"last test acc {self.last_acc:.3f}")
        self.bar.set_postfix_str(" | ".join(parts), refresh=True)


def _summary(
    manifest: Manifest, out: str, accuracy: dict[str, list[float]], statuses: Counter[str], seconds: float, images: int
) -> None:
    trained = sum(statuses.values())  # by this run: after a resume, fewer than the zoo holds
    print(
        f"\n{trained} networks trained in {seconds:,.1f} s ({trained / seconds * 3600:,.0f} networks/hour, "
        f"{images / seconds:,.0f} images/s); the zoo holds {manifest.num_networks} -> {out}"
    )
    print(f"splits: {manifest.splits}   status: {dict(statuses)}")
    print(f"{'dataset':<10} {'nets':>5} {'test acc mean':>14} {'median':>8} {'max':>7}")
    for name, accs in sorted(accuracy.items()):
        a = np.asarray(accs, dtype=np.float64)
        a = a[~np.isnan(a)] if (~np.isnan(a)).any() else a
        # np.median, as the dataset card (torch's median is the lower of the two middle values)
        print(f"{name:<10} {len(accs):>5} {a.mean():>14.4f} {np.median(a):>8.4f} {a.max():>7.4f}")


class GenerationInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`generate`: how many networks were finished (and kept), where, and whether there is a
    run to resume."""

    def __init__(self, finished: int, out: str, resumable: bool):
        super().__init__(finished, out, resumable)
        self.finished, self.out, self.resumable = finished, out, resumable

    def __str__(self) -> str:
        if not self.resumable:
            return "interrupted before any network finished; nothing was written"
        return (f"interrupted: {self.finished} networks finished and kept in {self.out}; continue with the same "
                "command and --resume")  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    """The flags of :func:`builder.generation_config.build_parser` (the name every tool's parser has)."""
    return build_parser(__doc__.split("\n\n")[0].replace("``", ""))


@command
def main(argv: Sequence[str] | None = None) -> int:
    generate(config_from_args(_parser().parse_args(argv)))
    return 0


if __name__ == "__main__":
    run_main(main)
