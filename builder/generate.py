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
import re
import signal
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
from builder.card import DEFAULT_LICENSE, render_card
from builder.engine.executors import EXECUTORS, PackTask, Task, run_tasks
from builder.engine.pack_schedule import MAX_WIDTH, QUEUE_DEPTH, device_budget, form_packs
from builder.engine.space import PRESETS, get_preset
from builder.engine.task import TRAINERS
from builder.engine.train_config import EPOCH_CAPS, EVALUATIONS, GENERATION_VERSION, ON_DIVERGENCE, TrainConfig
from weightzoo.cli import ArgumentParser, prog, run_main
from weightzoo.errors import ConfigError, UnknownNameError, WeightZooError
from weightzoo.format.layout import DEFAULT_SHARD_BYTES
from weightzoo.format.manifest import Manifest
from weightzoo.format.writer import ZooWriter
from weightzoo.hparams import DATASETS
from weightzoo.options import MAX_NETWORK_ID, check_params, device_type, device_type_checked, option_type
from weightzoo.paths import default_cache_dir, default_zoo_dir
from weightzoo.progress import bar

#: CPU threads per training unless --threads says otherwise (see GenerationConfig.threads).
DEFAULT_THREADS = 1
#: Options that say where and how a run was executed, not what it computes: recorded in provenance.json.
_PROVENANCE_KEYS = (
    "out", "image_root", "cache_dir", "allow_download", "executor", "workers", "pack_size", "trainer",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class GenerationConfig:
    """A generation run; recorded in the manifest so a zoo says how to make it again."""

    preset: str = "demo"
    num_networks: int | None = None
    start_id: int = 0
    seed: int = 0
    out: str | None = None
    device: str | None = None
    max_epochs: int | None = None
    lr_decay: float = 1.0
    bn_decay: float | None = None
    #: Budget zoos: training images per network and test images per evaluation (None: all, as the reference).
    train_images: int | None = None
    test_images: int | None = None
    #: "clean" metrics (default) or "released": as the original measured them (see :mod:`builder.engine.train`).
    evaluation: str = "clean"
    #: The licence the zoo's card states (a Hugging Face licence id: cc-by-4.0, cc0-1.0, mit, other, ...).
    license: str = DEFAULT_LICENSE
    #: "images" (the original's cap: max_epochs worth of images in steps) or "epochs" (exactly max_epochs).
    epoch_cap: str = "images"
    #: At a non-finite export: "stop" (default) or "continue" (the original; see builder.engine.train_config).
    on_divergence: str = "stop"
    #: Images per evaluation batch (clean evaluation). Larger batches mean fewer kernel launches on a GPU; the
    #: metrics may change in their last bits (float sums in another order), and the value is recorded.
    eval_batch_size: int = TrainConfig.eval_batch_size
    datasets: tuple[str, ...] | None = None
    image_root: str | None = None
    cache_dir: str | None = None
    allow_download: bool = True
    executor: str = "local"
    workers: int = 1
    #: CPU threads per training (default 1: graceful on a shared machine, and the same bytes on any core count;
    #: use ``workers`` for parallelism; ``benchmarks/thread_defaults.py`` measures the trade-off).
    threads: int | None = None
    max_shard_bytes: int = DEFAULT_SHARD_BYTES
    #: "single" (one network per task) or "pack" (many per task, builder.engine.pack): the same bytes either way (one
    #: engine), so it is provenance, not part of the manifest
    trainer: str = "single"
    #: Networks a pack trains at once (None: as many as the device's memory allows, builder.engine.pack_schedule).
    pack_size: int | None = None
    overwrite: bool = False
    #: Continue an interrupted run in ``out``: keep its finished shards, train only the missing networks.
    resume: bool = False
    #: Progress bar: None shows it when standard error is a terminal (not in logs or pipes), False never.
    progress: bool | None = None

    def __post_init__(self) -> None:
        """Every value in its range (:data:`weightzoo.options.RANGES`), every name a valid choice: checked when the
        config is made, before a folder is created or a network trained."""
        check_params({  # None: the preset's or the machine's default, filled by resolved()
            name: getattr(self, name)
            for name in ("num_networks", "start_id", "seed", "max_epochs", "lr_decay", "bn_decay", "train_images",
                         "test_images", "eval_batch_size", "workers", "threads", "pack_size")
        })  # fmt: skip
        if not isinstance(self.max_shard_bytes, int) or self.max_shard_bytes < 1:
            raise ConfigError(f"max_shard_bytes={self.max_shard_bytes!r}; expected a positive number of bytes")
        if self.num_networks is not None and self.start_id + self.num_networks - 1 > MAX_NETWORK_ID:
            raise ConfigError(
                f"start_id={self.start_id} with num_networks={self.num_networks} reaches network id "
                f"{self.start_id + self.num_networks - 1}; ids run up to {MAX_NETWORK_ID}"
            )
        if self.device is not None:
            device_type_checked(self.device)
        if not (isinstance(self.license, str) and re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", self.license)):
            raise ConfigError(
                f"license={self.license!r}; expected a Hugging Face licence id in lower case (cc-by-4.0, cc0-1.0, "
                "mit, apache-2.0, other, ...)"
            )
        choices = (("executor", EXECUTORS), ("trainer", TRAINERS), ("evaluation", EVALUATIONS),
                   ("epoch_cap", EPOCH_CAPS), ("on_divergence", ON_DIVERGENCE))  # fmt: skip
        for name, valid in choices:
            if getattr(self, name) not in valid:
                raise UnknownNameError(name, getattr(self, name), valid)
        get_preset(self.preset)  # an unknown preset is named with the valid ones

    def resolved(self) -> GenerationConfig:
        """Fill the defaults that depend on the preset and the machine."""
        space = get_preset(self.preset)
        return dataclasses.replace(
            self,
            num_networks=self.num_networks if self.num_networks is not None else space.default_num_networks,
            max_epochs=self.max_epochs if self.max_epochs is not None else space.default_max_epochs,
            bn_decay=self.bn_decay if self.bn_decay is not None else space.default_bn_decay,
            out=self.out or default_zoo_dir(self.preset),
            device=self.device or ("cuda" if torch.cuda.is_available() else "cpu"),
            threads=self.threads or DEFAULT_THREADS,
        )


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
    train_config = TrainConfig(
        max_epochs=cfg.max_epochs,
        lr_decay=cfg.lr_decay,
        bn_decay=cfg.bn_decay,
        train_images=cfg.train_images,
        test_images=cfg.test_images,
        evaluation=cfg.evaluation,
        eval_batch_size=cfg.eval_batch_size,
        epoch_cap=cfg.epoch_cap,
        on_divergence=cfg.on_divergence,
        # --test-images caps the train-metric subset too (at the default, 10,000, when smaller)
        train_eval_images=min(cfg.test_images or TrainConfig.train_eval_images, TrainConfig.train_eval_images),
    )
    record = {
        "generation_version": GENERATION_VERSION,
        **dataclasses.asdict(cfg),
        "search_space": space.to_dict(),
        "train": dataclasses.asdict(train_config),
    }
    record.pop("overwrite"), record.pop("progress"), record.pop("resume")
    # Where and how this run was executed: provenance.json, not the manifest (the same command, the same bytes).
    provenance = {key: record.pop(key) for key in _PROVENANCE_KEYS}
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
        tasks = _pack_tasks(tasks, cfg.pack_size, cfg.device, QUEUE_DEPTH if cfg.executor == "local" else 1)
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
                accuracy[rec.hparams.dataset].append(rec.snapshots["test_accuracy"][-1])
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


def _pack_tasks(tasks: list[Task], pack_size: int | None, device: str, depth: int) -> list[PackTask]:
    """The tasks as packs (builder.engine.pack_schedule): each trains ``pack_size`` networks at once (None: as many as
    ``MAX_WIDTH`` and the device's memory allow) from a queue ``depth`` times as long, shapes mixed. The local
    executor hands over each network as it finishes, so its packs queue ``QUEUE_DEPTH`` times their width; a
    worker process or Ray task returns its pack's weights at once, so those packs hold one width of networks."""
    by_id = {t.network_id: t for t in tasks}
    hps = {i: t.hyperparameters for i, t in by_id.items()}
    width = pack_size or MAX_WIDTH
    budget = None if pack_size else device_budget(device)
    packs = []
    for ids in form_packs(hps, size=width * depth):
        packs.append(PackTask(by_id[ids[0]], tuple(ids), width=width, budget_bytes=budget))
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


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=prog("builder.generate"),
        description=__doc__.split("\n\n")[0].replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--preset", default="demo", help=f"search space: {', '.join(PRESETS)} (default: demo)")
    p.add_argument("--num-networks", type=option_type("num_networks"), help="networks to train (default: the preset's)")
    p.add_argument(
        "--start-id", type=option_type("start_id"), default=0, help="first network id (split a zoo across machines)"
    )
    p.add_argument("--seed", type=option_type("seed"), default=0, help="zoo seed (default 0)")
    p.add_argument(
        "--out", help=f"output folder or fsspec URL (default: {default_zoo_dir('<preset>')}, from $WEIGHTZOO_HOME)"
    )
    p.add_argument("--device", type=device_type, help="cpu, cuda or cuda:N (default: cuda when present)")
    p.add_argument("--max-epochs", type=option_type("max_epochs"), help="epoch cap per network (default: the preset's)")
    p.add_argument(
        "--lr-decay",
        type=option_type("lr_decay"),
        default=1.0,
        help="per-epoch learning-rate factor; 1.0 = constant as in the released zoo, 0.96 as intended",
    )
    p.add_argument(
        "--datasets", nargs="+", metavar="NAME", help=f"restrict the dataset draw to these ({', '.join(DATASETS)})"
    )
    p.add_argument(
        "--bn-decay",
        type=option_type("bn_decay"),
        help="batch-norm moving-average decay (default: 0.9, TensorLayer's, as the original)",
    )
    p.add_argument(
        "--train-images",
        type=option_type("train_images"),
        help="budget zoos: train each network on a class-balanced random subset of this many training images "
        "(10%% of them held out for validation; default: all, as the reference)",
    )
    p.add_argument(
        "--test-images",
        type=option_type("test_images"),
        help="budget zoos: measure test (and train) metrics on a fixed random subset of this many images "
        "(default: the whole test set)",
    )
    p.add_argument(
        "--eval-batch-size",
        type=option_type("eval_batch_size"),
        default=TrainConfig.eval_batch_size,
        help="images per evaluation batch (default %(default)s; on a GPU, 10000 cuts the evaluation's kernel "
        "launches about tenfold; recorded, and metrics may change in their last bits)",
    )
    p.add_argument(
        "--evaluation",
        choices=EVALUATIONS,
        default="clean",
        help="how metrics are measured: clean (default: no augmentation, batch norm in eval mode) or released "
        "(as the original: through the training graph, which also moves the stored batch-norm statistics)",
    )
    p.add_argument(
        "--license",
        default=DEFAULT_LICENSE,
        help="the licence the zoo's card states, a Hugging Face licence id (default %(default)s; you decide: the "
        "zoo is yours)",
    )
    p.add_argument(
        "--epoch-cap",
        choices=EPOCH_CAPS,
        default="images",
        help="how --max-epochs caps training: images (default, the original's: max-epochs x the epoch's images in "
        "steps, so up to a few epochs more when images / batch is not whole) or epochs (exactly max-epochs)",
    )
    p.add_argument(
        "--on-divergence",
        choices=ON_DIVERGENCE,
        default="stop",
        help="at the first non-finite export: stop (default) or continue training until early stopping or the cap, "
        "as the original did; either way the network is recorded with status diverged",
    )
    p.add_argument("--image-root", help="folder with the original image files (IDX, CIFAR pickles, ...)")
    p.add_argument("--cache-dir", help=f"image cache folder (default: {default_cache_dir()}, from $WEIGHTZOO_CACHE)")
    p.add_argument("--offline", action="store_true", help="never download from the Hugging Face Hub")
    p.add_argument(
        "--executor",
        default="local",
        choices=EXECUTORS,
        help="local: one network at a time in this process (default); process: --workers processes on this "
        "machine; ray: --workers tasks on a Ray cluster (pip install weightzoo[ray])",
    )
    p.add_argument(
        "--workers", type=option_type("workers"), default=1, help="parallel trainings (process / ray executors)"
    )
    p.add_argument(
        "--trainer",
        choices=TRAINERS,
        default="single",
        help="single: one network at a time (default); pack: many networks in one set of kernels (builder.engine.pack; "
        "recorded in the manifest, as its float32 bytes differ from single's)",
    )
    p.add_argument(
        "--pack-size",
        type=option_type("pack_size"),
        help=f"networks a pack trains at once (default: as many as device memory allows, at most {MAX_WIDTH}); "
        f"with --executor local each pack queues {QUEUE_DEPTH} times as many; shapes mix",
    )
    p.add_argument(
        "--threads",
        type=option_type("threads"),
        help="CPU threads per training (default 1: on a machine other jobs keep busy more threads are slower, up to "
        "several times; for speed use --executor process --workers <cores>); CPU weights are bit-identical across "
        "runs with the same count",
    )
    p.add_argument(
        "--max-shard-mb",
        type=option_type("max_shard_mb"),
        default=DEFAULT_SHARD_BYTES / 2**20,
        help="shard size cap in MiB (default: %(default)g)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the zoo (or interrupted run) in the output folder; never deletes files weightzoo did not write",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run in --out (same options): keep its finished shards, train the rest",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _main(args)
    except WeightZooError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except GenerationInterrupted as e:
        print(e, file=sys.stderr)
        return 128 + signal.SIGINT


def _main(args: argparse.Namespace) -> int:
    config = GenerationConfig(
        preset=args.preset,
        num_networks=args.num_networks,
        start_id=args.start_id,
        seed=args.seed,
        out=args.out,
        device=args.device,
        max_epochs=args.max_epochs,
        lr_decay=args.lr_decay,
        bn_decay=args.bn_decay,
        train_images=args.train_images,
        test_images=args.test_images,
        evaluation=args.evaluation,
        eval_batch_size=args.eval_batch_size,
        epoch_cap=args.epoch_cap,
        on_divergence=args.on_divergence,
        license=args.license,
        datasets=tuple(args.datasets) if args.datasets else None,
        image_root=args.image_root,
        cache_dir=args.cache_dir,
        allow_download=not args.offline,
        executor=args.executor,
        workers=args.workers,
        threads=args.threads,
        max_shard_bytes=max(1, int(args.max_shard_mb * 2**20)),
        trainer=args.trainer,
        pack_size=args.pack_size,
        overwrite=args.overwrite,
        resume=args.resume,
        progress=False if args.quiet else None,
    )
    generate(config)
    return 0


if __name__ == "__main__":
    run_main(main)
