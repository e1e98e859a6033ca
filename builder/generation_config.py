"""A generation run's options, stated once: :class:`GenerationConfig`, whose fields carry their command-line flag,
help and role. That one table yields ``builder.generate``'s parser (:func:`build_parser`), the config its ``main``
makes from the parsed flags (:func:`config_from_args`), the record a zoo's manifest keeps (:meth:`GenerationConfig.
record`), the provenance it does not (:meth:`GenerationConfig.provenance`), and the command its dataset card gives
(:func:`command_of`: run as written, it makes the same zoo byte for byte).

Roles: ``zoo`` options decide what the networks become or what the zoo's files say (recorded in the manifest, in
the card's command when not at their default); ``provenance`` options say where and how the run was executed
(``provenance.json``); ``run`` options steer this run only (recorded nowhere).

Example:
    >>> config = config_from_args(build_parser().parse_args(["--num-networks", "4", "--seed", "3"]))
    >>> config.num_networks, config.seed, config.progress
    (4, 3, None)
    >>> command_of({"preset": "demo", "num_networks": 4, "seed": 3, "max_epochs": 5, "lr_decay": 0.96})
    'python -m builder.generate --preset demo --num-networks 4 --seed 3 --max-epochs 5 --lr-decay 0.96'
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

import torch

from builder.engine.executors import EXECUTORS
from builder.engine.pack_schedule import MAX_WIDTH, QUEUE_DEPTH
from builder.engine.space import PRESETS, get_preset
from builder.engine.task import TRAINERS
from builder.engine.train_config import EPOCH_CAPS, EVALUATIONS, ON_DIVERGENCE, TrainConfig
from weightzoo.about import DEFAULT_LICENSE
from weightzoo.cli import ArgumentParser, add_progress_flags, prog, progress_of
from weightzoo.errors import ConfigError, UnknownNameError
from weightzoo.format.layout import DEFAULT_SHARD_BYTES
from weightzoo.hparams import DATASETS
from weightzoo.options import MAX_NETWORK_ID, check_params, device_type, device_type_checked, option_type
from weightzoo.paths import default_cache_dir, default_zoo_dir

__all__ = ["DEFAULT_THREADS", "GenerationConfig", "build_parser", "command_of", "config_from_args"]

#: CPU threads per training unless --threads says otherwise (see GenerationConfig.threads).
DEFAULT_THREADS = 1
ROLES = ("zoo", "provenance", "run")


@dataclasses.dataclass(frozen=True)
class Flag:
    """How a :class:`GenerationConfig` field appears on the command line: ``role`` (see the module docstring),
    ``help``, argparse's ``kwargs`` (``type``, ``choices``, ``nargs``, ...), ``always`` in the card's command (even
    at its default), and, where the flag's value is not the field's, ``name`` (the flag), ``parse`` (flag value to
    field value) and ``show`` (field value to the flag's text; None: the flag is written alone, a switch)."""

    role: str
    help: str | Callable[[], str]  # a callable: help that names a default the environment sets, made per parser
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    always: bool = False
    name: str | None = None
    parse: Callable[[Any], Any] | None = None
    show: Callable[[Any], str | None] | None = None
    arg_default: Any = None


def _option(default: Any, role: str, help: str | Callable[[], str], **flag: Any) -> Any:
    assert role in ROLES
    return dataclasses.field(default=default, metadata={"flag": Flag(role, help, **flag)})


def _mib(size: int) -> str:
    """The shortest number of MiB that generate turns back into these bytes (it takes ``int(MiB * 2**20)``)."""
    return next(m for m in (f"{size / 2**20:.{p}g}" for p in range(1, 18)) if int(float(m) * 2**20) == size)


@dataclasses.dataclass(frozen=True)
class GenerationConfig:
    """A generation run; its ``zoo`` options are recorded in the manifest, so a zoo says how to make it again.

    Example:
        >>> GenerationConfig(preset="demo", num_networks=4, max_epochs=2).resolved().threads
        1
    """

    preset: str = _option("demo", "zoo", f"search space: {', '.join(PRESETS)} (default: demo)", always=True)
    num_networks: int | None = _option(
        None, "zoo", "networks to train (default: the preset's)", kwargs={"type": option_type("num_networks")},
        always=True,
    )  # fmt: skip
    seed: int = _option(0, "zoo", "zoo seed (default 0)", kwargs={"type": option_type("seed")}, always=True)
    max_epochs: int | None = _option(
        None, "zoo", "epoch cap per network (default: the preset's)", kwargs={"type": option_type("max_epochs")},
        always=True,
    )  # fmt: skip
    start_id: int = _option(
        0, "zoo", "first network id (split a zoo across machines)", kwargs={"type": option_type("start_id")}
    )
    datasets: tuple[str, ...] | None = _option(
        None, "zoo", f"restrict the dataset draw to these ({', '.join(DATASETS)})",
        kwargs={"nargs": "+", "metavar": "NAME"}, parse=tuple, show=" ".join,
    )  # fmt: skip
    lr_decay: float = _option(
        1.0, "zoo", "per-epoch learning-rate factor; 1.0 = constant as in the released zoo, 0.96 as intended",
        kwargs={"type": option_type("lr_decay")},
    )  # fmt: skip
    bn_decay: float | None = _option(
        None, "zoo", "batch-norm moving-average decay (default: 0.9, TensorLayer's, as the original)",
        kwargs={"type": option_type("bn_decay")},
    )  # fmt: skip
    #: "clean" metrics (default) or "released": as the original measured them (see :mod:`builder.engine.train`).
    evaluation: str = _option(
        "clean", "zoo", "how metrics are measured: clean (default: no augmentation, batch norm in eval mode) or "
        "released (as the original: through the training graph, which also moves the stored batch-norm statistics)",
        kwargs={"choices": EVALUATIONS},
    )  # fmt: skip
    #: "images" (the original's cap: max_epochs worth of images in steps) or "epochs" (exactly max_epochs).
    epoch_cap: str = _option(
        "images", "zoo", "how --max-epochs caps training: images (default, the original's: max-epochs x the epoch's "
        "images in steps, so up to a few epochs more when images / batch is not whole) or epochs (exactly "
        "max-epochs)", kwargs={"choices": EPOCH_CAPS},
    )  # fmt: skip
    #: At a non-finite export: "stop" (default) or "continue" (the original; see builder.engine.train_config).
    on_divergence: str = _option(
        "stop", "zoo", "at the first non-finite export: stop (default) or continue training until early stopping "
        "or the cap, as the original did; either way the network is recorded with status diverged",
        kwargs={"choices": ON_DIVERGENCE},
    )  # fmt: skip
    #: The licence the zoo's card states (a Hugging Face licence id: cc-by-4.0, cc0-1.0, mit, other, ...).
    license: str = _option(
        DEFAULT_LICENSE, "zoo", "the licence the zoo's card states, a Hugging Face licence id (default %(default)s; "
        "you decide: the zoo is yours)",
    )  # fmt: skip
    #: Images per evaluation batch (clean evaluation). Larger batches mean fewer kernel launches on a GPU; the
    #: metrics may change in their last bits (float sums in another order), and the value is recorded.
    eval_batch_size: int = _option(
        TrainConfig.eval_batch_size, "zoo", "images per evaluation batch (default %(default)s; on a GPU, 10000 cuts "
        "the evaluation's kernel launches about tenfold; recorded, and metrics may change in their last bits)",
        kwargs={"type": option_type("eval_batch_size")},
    )  # fmt: skip
    #: Dense layers padded to this first-layer width (None: each network's own): lanes shared across dense widths.
    fc_width: int | None = _option(
        None, "zoo", "pad every network's dense layers to this first-layer width (at least its own; nws_main: 192) "
        "so that networks differing only in their dense width share a pack lane: about 2.3x fewer kernels per "
        "network-step on nws_main for +1%% FLOPs (benchmarks/zoo_projection.py); recorded, and the weights of the "
        "networks it pads may change in their last bits", kwargs={"type": option_type("fc_width")},
    )  # fmt: skip
    #: Convolution kernels padded to this (odd) size (None: each network's own): lanes shared across filter sizes.
    filter_size: int | None = _option(
        None, "zoo", "pad every network's convolution kernels to this odd size (at least its own; nws_main: 7), "
        "centred in zeros whose gradients are masked, so that networks differing only in their filter size share a "
        "pack lane: with --fc-width 192 about 2x fewer kernels per network-step on nws_main for about 1.7x the "
        "FLOPs (benchmarks/zoo_projection.py); recorded, and the weights of the networks it pads may change in "
        "their last bits", kwargs={"type": option_type("filter_size")},
    )  # fmt: skip
    #: Batch norm, activations and optimizer updates compiled by torch.compile (builder.engine.fused): for GPUs.
    compile: bool = _option(
        False, "zoo", "fuse each layer's batch norm and activation (training and evaluation), and each optimizer "
        "update, into a few kernels with torch.compile (Inductor: Triton on a GPU, a C++ compiler on CPU): 2 to 2.5x "
        "less memory traffic there (benchmarks/zoo_projection.py --compile); for the GPU; recorded, and the weights "
        "change in their last bits",
        kwargs={"action": "store_true"},
    )  # fmt: skip
    #: On CUDA, products and convolutions in TF32 (TrainConfig.tf32).
    tf32: bool = _option(
        False, "zoo", "on CUDA, matrix products and convolutions in TF32 (the tensor cores: about 7x the fp32 peak "
        "of an H100; default fp32, as the original); recorded, and the weights change beyond their last bits",
        kwargs={"action": "store_true"},
    )  # fmt: skip
    #: Budget zoos: training images per network and test images per evaluation (None: all, as the reference).
    train_images: int | None = _option(
        None, "zoo", "budget zoos: train each network on a class-balanced random subset of this many training "
        "images (10%% of them held out for validation; default: all, as the reference)",
        kwargs={"type": option_type("train_images")},
    )  # fmt: skip
    test_images: int | None = _option(
        None, "zoo", "budget zoos: measure test (and train) metrics on a fixed random subset of this many images "
        "(default: the whole test set)", kwargs={"type": option_type("test_images")},
    )  # fmt: skip
    device: str | None = _option(
        None, "zoo", "cpu, cuda or cuda:N (default: cuda when present)", kwargs={"type": device_type}
    )
    #: CPU threads per training (default 1: graceful on a shared machine, and the same bytes on any core count;
    #: use ``workers`` for parallelism; ``benchmarks/thread_defaults.py`` measures the trade-off).
    threads: int | None = _option(
        None, "zoo", "CPU threads per training (default 1: on a machine other jobs keep busy more threads are "
        "slower, up to several times; for speed use --executor process --workers <cores>); CPU weights are "
        "bit-identical across runs with the same count", kwargs={"type": option_type("threads")},
    )  # fmt: skip
    max_shard_bytes: int = _option(
        DEFAULT_SHARD_BYTES, "zoo", "shard size cap in MiB (default: %(default)g)", name="--max-shard-mb",
        kwargs={"type": option_type("max_shard_mb")}, arg_default=DEFAULT_SHARD_BYTES / 2**20,
        parse=lambda mb: max(1, int(mb * 2**20)), show=_mib,
    )  # fmt: skip
    out: str | None = _option(
        None, "provenance", lambda: f"output folder or fsspec URL (default: {default_zoo_dir('<preset>')}, from "
        "$WEIGHTZOO_HOME)",
    )  # fmt: skip
    image_root: str | None = _option(
        None, "provenance", "folder with the original image files (IDX, CIFAR pickles, ...)"
    )
    cache_dir: str | None = _option(
        None, "provenance", lambda: f"image cache folder (default: {default_cache_dir()}, from $WEIGHTZOO_CACHE)"
    )
    allow_download: bool = _option(
        True, "provenance", "never download from the Hugging Face Hub", name="--offline",
        kwargs={"action": "store_true"}, parse=lambda offline: not offline,
    )  # fmt: skip
    executor: str = _option(
        "local", "provenance", "local: one network at a time in this process (default); process: --workers "
        "processes on this machine; ray: --workers tasks on a Ray cluster (pip install weightzoo[ray])",
        kwargs={"choices": EXECUTORS},
    )  # fmt: skip
    workers: int = _option(
        1, "provenance", "parallel trainings (process / ray executors)", kwargs={"type": option_type("workers")}
    )
    #: "single" (one network per task) or "pack" (many per task, builder.engine.pack): the same bytes either way
    #: (one engine), so it is provenance, not part of the manifest
    trainer: str = _option(
        "single", "provenance", "single: one network per task (default); pack: many networks in one set of kernels "
        "(builder.engine.pack); one engine, so the same bytes either way", kwargs={"choices": TRAINERS},
    )  # fmt: skip
    #: Networks a pack trains at once (None: as many as the device's memory allows, builder.engine.pack_schedule).
    pack_size: int | None = _option(
        None, "provenance", f"networks a pack trains at once (default: as many as device memory allows, at most "
        f"{MAX_WIDTH}); with --executor local each pack queues {QUEUE_DEPTH} times as many; shapes mix",
        kwargs={"type": option_type("pack_size")},
    )  # fmt: skip
    #: Each pack's step captured as one CUDA graph and replayed (builder.engine.pack_front): the same bytes.
    cuda_graphs: bool = _option(
        False, "provenance", "with --trainer pack on CUDA: capture each pack's step as one CUDA graph and replay it "
        "(one launch per step instead of one per kernel; the same bytes as eager)", kwargs={"action": "store_true"},
    )  # fmt: skip
    overwrite: bool = _option(
        False, "run", "replace the zoo (or interrupted run) in the output folder; never deletes files weightzoo did "
        "not write", kwargs={"action": "store_true"},
    )  # fmt: skip
    #: Continue an interrupted run in ``out``: keep its finished shards, train only the missing networks.
    resume: bool = _option(
        False, "run", "continue an interrupted run in --out (same options): keep its finished shards, train the rest",
        kwargs={"action": "store_true"},
    )  # fmt: skip
    #: Progress bar: None shows it when standard error is a terminal (not in logs or pipes), False never, True always.
    progress: bool | None = _option(None, "run", "progress bar")  # --quiet / --progress: add_progress_flags

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
        for f in dataclasses.fields(self):
            valid = f.metadata["flag"].kwargs.get("choices")
            if valid is not None and getattr(self, f.name) not in valid:
                raise UnknownNameError(f.name, getattr(self, f.name), valid)
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

    def options(self, role: str) -> dict[str, Any]:
        """This config's options of one ``role``, in the table's order (tuples as lists, as JSON holds them)."""
        return {f.name: _plain(getattr(self, f.name)) for f in _fields(role)}

    def record(self) -> dict[str, Any]:
        """What the manifest records of the run: its ``zoo`` options."""
        return self.options("zoo")

    def provenance(self) -> dict[str, Any]:
        """Where and how the run was executed (``provenance.json``): its ``provenance`` options."""
        return self.options("provenance")


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _fields(role: str | None = None) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(GenerationConfig) if role is None or f.metadata["flag"].role == role]


def _flag(field: dataclasses.Field) -> str:
    return field.metadata["flag"].name or "--" + field.name.replace("_", "-")


def build_parser(description: str = "") -> argparse.ArgumentParser:
    """``builder.generate``'s parser: one flag per :class:`GenerationConfig` field (``progress``: ``--quiet`` and
    ``--progress``), each with the field's default."""
    p = ArgumentParser(
        prog=prog("builder.generate"), description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for field in _fields():
        spec: Flag = field.metadata["flag"]
        if field.name == "progress":
            add_progress_flags(p, "progress bar")
            continue
        default = spec.arg_default if spec.arg_default is not None else field.default
        kwargs = dict(spec.kwargs)
        if kwargs.get("action") == "store_true":
            default = False
        text = spec.help() if callable(spec.help) else spec.help
        p.add_argument(_flag(field), dest=field.name, default=default, help=text, **kwargs)
    return p


def config_from_args(args: argparse.Namespace) -> GenerationConfig:
    """The config of parsed :func:`build_parser` flags."""
    values = {}
    for field in _fields():
        if field.name == "progress":
            values["progress"] = progress_of(args)
            continue
        value, parse = getattr(args, field.name), field.metadata["flag"].parse
        values[field.name] = parse(value) if parse is not None and value is not None else value
    return GenerationConfig(**values)


def command_of(record: Mapping[str, Any]) -> str:
    """The command that makes the zoo of a manifest's generation ``record`` again, byte for byte: every recorded
    ``zoo`` option not at its default (and those ``always`` shown). Where the images were is the reader's own
    (``--image-root``), as are the other ``provenance`` options."""
    parts = ["python -m builder.generate"]
    for field in _fields("zoo"):
        spec: Flag = field.metadata["flag"]
        value = record.get(field.name, field.default)
        if isinstance(value, list):
            value = tuple(value)
        if value is None or (value == field.default and not spec.always):
            continue
        if spec.kwargs.get("action") == "store_true":  # a switch: its flag alone
            parts.append(_flag(field))
            continue
        parts.append(f"{_flag(field)} {spec.show(value) if spec.show else value}")
    return " ".join(parts)
