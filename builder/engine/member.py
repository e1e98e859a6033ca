"""A network being trained, and what it owns: its data on the device (:class:`DeviceImages`), its split and epoch
orders (:func:`network_split`), its early-stopping counters (:class:`EarlyStopping`), its exports on their way to
the host (:class:`Export`) and every epoch's weights (:class:`Records`), its clean evaluation
(:func:`evaluate_sums`). :class:`Member` sets them up from (zoo seed, network id) with the same calls in the same
order whatever pack it trains in; :mod:`builder.engine.pack_lane` trains it.

Example:
    >>> stop = EarlyStopping(TrainConfig(min_epochs=1, patience_falling=1))
    >>> [stop.update(e, acc) for e, acc in enumerate([0.1, 0.5, 0.4])]
    [False, False, True]
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from builder.engine import fused
from builder.engine.keyed_random import to_device
from builder.engine.pack_schedule import lane_architecture
from builder.engine.sources import ImageSet, train_pool_start
from builder.engine.space import torch_seed
from builder.engine.train_config import TrainConfig, TrainResult, epoch_limit, snapshot_epochs
from weightzoo.errors import ConfigError
from weightzoo.format.layout import METRICS
from weightzoo.hparams import HyperParameters
from weightzoo.model import NWSNet, initialize_

__all__ = [
    "DeviceImages",
    "EarlyStopping",
    "Export",
    "Member",
    "NetworkSplit",
    "Records",
    "balanced_subset",
    "evaluate_sums",
    "fixed_test_subset",
    "metrics",
    "network_split",
]


class DeviceImages:
    """An image set moved once to a device as uint8 NCHW tensors, shared by every network trained there."""

    def __init__(self, images: ImageSet, device: torch.device | str):
        self.name, self.device = images.name, torch.device(device)

        def put(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).contiguous().to(self.device)

        self.train_x, self.test_x = put(images.train_images), put(images.test_images)
        self.train_y = torch.from_numpy(images.train_labels.astype(np.int64)).to(self.device)
        self.test_y = torch.from_numpy(images.test_labels.astype(np.int64)).to(self.device)


@torch.inference_mode()
def evaluate_sums(net: NWSNet, x: torch.Tensor, y: torch.Tensor, batch: int,
                  norm_act: Callable[[torch.Tensor, nn.Module, bool], torch.Tensor] | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Summed cross-entropy (float64) and number of correct predictions (int64), eval mode, no augmentation, as
    tensors on the device: nothing waits for them (:mod:`builder.engine.pack` reads them a step later).
    ``norm_act``: each layer's batch norm and activation (:meth:`~weightzoo.model.NWSNet.forward`; the compiled
    regions of ``TrainConfig.compile``: :func:`builder.engine.fused.eval_norm_act`)."""
    net.eval()
    dtype = net.out.weight.dtype
    loss = torch.zeros((), device=x.device, dtype=torch.float64)
    correct = torch.zeros((), device=x.device, dtype=torch.int64)
    for i in range(0, len(y), batch):
        logits = net(x[i : i + batch].to(dtype).div_(255), norm_act=norm_act)
        loss += F.cross_entropy(logits, y[i : i + batch], reduction="sum").double()
        correct += (logits.argmax(1) == y[i : i + batch]).sum()
    return loss, correct


def metrics(loss_sum: float, correct: int, n: int) -> tuple[float, float]:
    """Mean cross-entropy and accuracy from :func:`evaluate_sums` (NaN for an empty set)."""
    return (math.nan, math.nan) if n == 0 else (loss_sum / n, correct / n)


class Records:
    """Every epoch's weights, kept in an anonymous temporary file rather than in memory (which of them become
    snapshots is known only when training stops, and 1000 epochs of a 388k-value network are 1.5 GB)."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the object; see close)
        self._layout: list[tuple[str, tuple[int, ...], int]] = []
        self._bytes = 0
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def append(self, weights: dict[str, np.ndarray]) -> None:
        if not self._layout:
            self._layout = [(k, v.shape, v.size) for k, v in weights.items()]
            self._bytes = sum(size for _, _, size in self._layout) * 4
        self._file.seek(self._count * self._bytes)
        for v in weights.values():
            self._file.write(np.ascontiguousarray(v, dtype=np.float32).tobytes())
        self._count += 1

    def stack(self, epochs: list[int]) -> dict[str, np.ndarray]:
        """name -> [len(epochs), *shape] float32, the records of those epochs."""
        flat = np.empty((len(epochs), self._bytes // 4), dtype=np.float32)
        for i, e in enumerate(epochs):
            self._file.seek(e * self._bytes)
            self._file.readinto(memoryview(flat[i]).cast("B"))
        out, start = {}, 0
        for name, shape, size in self._layout:
            out[name] = flat[:, start : start + size].reshape(len(epochs), *shape).copy()
            start += size
        return out

    def close(self) -> None:
        self._file.close()


def balanced_subset(order: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """The first ``k`` entries of ``order`` taking classes in turn (round-robin over its label order), so each
    class gets ``k // C`` (+1) images while it has them; the result keeps ``order``'s randomness."""
    rank = torch.empty_like(order)
    for c in labels.unique():
        where = (labels == c).nonzero().squeeze(1)
        rank[where] = torch.arange(len(where), device=order.device)
    # Sort by (rank within class, position in order): a round-robin interleaving of the classes.
    key = rank * len(order) + torch.arange(len(order), device=order.device)
    chosen = torch.argsort(key)[:k]
    return order[chosen.sort().values]


def fixed_test_subset(data: DeviceImages, k: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The test images metrics are measured on: all, or the same fixed random ``k`` for every network."""
    if k is None or k >= len(data.test_y):
        return data.test_x, data.test_y
    gen = torch.Generator().manual_seed(torch_seed(0, 0, f"test-subset-{data.name}"))
    idx = torch.randperm(len(data.test_y), generator=gen)[:k].sort().values.to(data.device)
    return data.test_x[idx], data.test_y[idx]


class EarlyStopping:
    """The original's early-stopping rule (``classifier.py``, epoch loop), fed one validation accuracy per export.

    Three counters: ``falling`` counts consecutive falls below the previous accuracy and is reset by a rise (an
    unchanged epoch neither counts nor resets it); ``unchanged`` counts consecutive epochs within
    ``tie_tolerance`` of the previous one (reset by a fall or a rise); ``below`` counts, in all, the epochs below
    the smoothed accuracy (seeded with the initialisation's). Stop once ``min_epochs`` epochs are trained and any
    counter reached its patience.

    Example:
        >>> stop = EarlyStopping(TrainConfig())
        >>> curve = [0.1] + [0.5 + 0.01 * e for e in range(1, 20)] + [0.6, 0.59, 0.58, 0.58, 0.57, 0.56, 0.55]
        >>> next(e for e, acc in enumerate(curve) if stop.update(e, acc))  # five falls; the tie does not reset
        25
    """

    def __init__(self, config: TrainConfig):
        self.c = config
        self.prev: float | None = None
        self.smoothed: float | None = None
        self.falling = self.below = self.unchanged = 0

    def update(self, epoch: int, val_acc: float) -> bool:
        """Feed the validation accuracy after ``epoch`` epochs (0: the initialisation); True: stop now."""
        c = self.c
        if self.prev is None:  # export 1, the initialisation: seeds the previous and the smoothed accuracy
            self.prev = self.smoothed = val_acc
            return False
        if val_acc < self.prev:
            self.falling += 1
            self.unchanged = 0
        elif abs(val_acc - self.prev) < c.tie_tolerance:
            self.unchanged += 1
        else:
            self.falling = self.unchanged = 0
        self.prev = val_acc
        assert self.smoothed is not None
        self.smoothed = c.smoothing * self.smoothed + (1 - c.smoothing) * val_acc
        if val_acc < self.smoothed:
            self.below += 1
        return epoch >= c.min_epochs and (
            self.falling >= c.patience_falling
            or self.below >= c.patience_smoothed
            or self.unchanged >= c.patience_unchanged
        )


@dataclass
class NetworkSplit:
    """A network's data: its class index lists for balancing, the smallest class's size, and its evaluation sets
    (``train``: a fixed subset of its training images, ``val``: its held-out 10 %, ``test``)."""

    per_class: list[torch.Tensor]
    per_class_n: int
    eval_sets: dict[str, tuple[torch.Tensor, torch.Tensor]]

    def epoch_order(self, data_gen: torch.Generator) -> torch.Tensor:
        """One epoch's order: every class subsampled to the smallest, then shuffled (util.shuffle_data), drawn
        from ``data_gen`` on the host and moved to the device without waiting for it."""
        dev = self.per_class[0].device
        gen, k = data_gen, self.per_class_n
        order = torch.cat([p[to_device(torch.randperm(len(p), generator=gen)[:k], dev)] for p in self.per_class])
        return order[to_device(torch.randperm(len(order), generator=gen), dev)]


def network_split(
    hp: HyperParameters, data: DeviceImages, config: TrainConfig, data_gen: torch.Generator
) -> NetworkSplit:
    """The per-network 90/10 split of the training pool (or of a class-balanced subset of it, for budget zoos),
    drawn from the network's data stream. The original splits at ``int(0.9 N)``: the validation set is the rest."""
    dev = data.device
    first = train_pool_start(hp.dataset, len(data.train_y))
    perm = first + torch.randperm(len(data.train_y) - first, generator=data_gen).to(dev)
    n = len(perm)
    if config.train_images is not None and config.train_images < n:
        perm = balanced_subset(perm, data.train_y[perm], config.train_images)
        n = len(perm)
    n_val = n - int((1 - config.validation_fraction) * n)
    train_idx, val_idx = perm[: n - n_val], perm[n - n_val :]
    train_labels = data.train_y[train_idx]
    per_class = [train_idx[train_labels == c] for c in range(int(data.train_y.max()) + 1)]
    per_class = [p for p in per_class if len(p)]
    k_eval = len(train_idx) if config.train_eval_images is None else min(len(train_idx), config.train_eval_images)
    train_eval_idx = train_idx[torch.randperm(len(train_idx), generator=data_gen)[:k_eval].to(dev)]
    eval_sets = {
        "train": (data.train_x[train_eval_idx], data.train_y[train_eval_idx]),
        "val": (data.train_x[val_idx], data.train_y[val_idx]),
        "test": fixed_test_subset(data, config.test_images),
    }
    return NetworkSplit(per_class, min(len(p) for p in per_class), eval_sets)


class Export:
    """One export of a member, captured at the end of its epoch: the weights (float32) and the evaluation's sums,
    on their way to the host. On CUDA the copy runs on a side stream into pinned memory, after the kernels that
    produced them, and the pack reads it one step later (:meth:`_Pack.step`), so the device never idles for it;
    on CPU the tensors are already there."""

    def __init__(self, member: Member, epoch: int, tensors: dict[str, torch.Tensor], stream: torch.cuda.Stream | None,
                 measured: dict[str, tuple[float, float]] | None = None):  # fmt: skip
        self.member, self.epoch, self.measured = member, epoch, measured
        self.done: torch.cuda.Event | None = None
        if stream is None:
            self.host = tensors
            return
        produced = torch.cuda.Event()
        produced.record(torch.cuda.current_stream(stream.device))
        with torch.cuda.stream(stream):
            stream.wait_event(produced)
            self.host = {}
            for k, v in tensors.items():
                self.host[k] = torch.empty(v.shape, dtype=v.dtype, pin_memory=True)
                self.host[k].copy_(v, non_blocking=True)
                v.record_stream(stream)  # the allocator keeps v until the copy is done
            self.done = torch.cuda.Event()
            self.done.record(stream)

    def arrays(self) -> dict[str, np.ndarray]:
        """The host copies (waits for the copy if it is still running)."""
        if self.done is not None:
            self.done.synchronize()
        return {k: v.numpy() for k, v in self.host.items()}


class Member:
    """One network being trained (alone or in a pack): its generators, data split, epoch state, records, history
    and early stopping, set up from (zoo seed, network id) with the same calls in the same order everywhere."""

    #: How its evaluation's compiled regions run (``TrainConfig.compile``): compiled by Inductor; the projection
    #: counts an export with a stand-in (:func:`builder.engine.fused.counted`).
    region: Callable[[Callable[..., Any]], Callable[..., Any]] = staticmethod(fused.compiled)

    def __init__(self, hp: HyperParameters, data: DeviceImages, zoo_seed: int, network_id: int,
                 config: TrainConfig, dtype: torch.dtype):  # fmt: skip
        self.start = time.perf_counter()
        self.hp, self.data, self.id, self.config = hp, data, network_id, config
        dev = data.device
        if data.name != hp.dataset:
            raise ConfigError(f"network {network_id} draws dataset {hp.dataset!r} but was given {data.name!r}")
        init_gen = torch.Generator().manual_seed(torch_seed(zoo_seed, network_id, "init"))
        self.data_gen = torch.Generator().manual_seed(torch_seed(zoo_seed, network_id, "data"))
        self.aug_gen = torch.Generator(device=dev).manual_seed(torch_seed(zoo_seed, network_id, "augment"))
        self.step_key = torch_seed(zoo_seed, network_id, "step")  # its per-step draws (builder.engine.keyed_random)
        self.steps = 0  # training steps taken: the position of its counter-based streams
        net = NWSNet(hp.architecture, hp.activation, bn_momentum=1 - config.bn_decay, bn_eps=config.bn_eps)
        net = initialize_(net, hp.initialization, init_gen).to(dev, dtype)
        state = net.state_dict()
        self.initial = {p.name: state[p.name].detach().clone() for p in hp.architecture.params}
        self.lr = hp.learning_rate

        split = network_split(hp, data, config, self.data_gen)
        self.split, self.eval_sets = split, split.eval_sets
        self.history: dict[str, list[float]] = {m: [] for m in METRICS}
        self.records = Records()
        self.stopper = EarlyStopping(config)
        self.order = self.epoch_order()
        # A batch is hp.batch_size images, or the whole epoch when a budget zoo's epoch is shorter than that.
        self.batch_size = min(hp.batch_size, len(self.order))
        self.n_batches = len(self.order) // self.batch_size
        #: The architecture it trains as (its own, or its dense layers padded: ``TrainConfig.fc_width``) and what its
        #: lane mates share.
        self.lane_arch = lane_architecture(hp, config.fc_width, config.filter_size)
        self.lane_key = (self.lane_arch, self.batch_size)
        self.max_epochs = epoch_limit(config, len(self.order), self.batch_size)
        self.diverged = False  # a non-finite export seen (on_divergence="continue" trains on)
        #: Released evaluation: the (loss, accuracy) of each batch measured through the training graph since the
        #: last export (:meth:`builder.engine.pack_lane.Lane.released_pass`).
        self.train_pass: list[tuple[float, float]] = []
        self.batch = 0  # within the epoch
        self.epoch = 0  # trained epochs
        self.images_seen = 0
        self.status: str | None = None  # decided when it stops: completed, early_stopped or diverged
        self.bytes = 0  # its estimated training memory, set when it is admitted

    def epoch_order(self) -> torch.Tensor:
        """Its next epoch's order (:meth:`NetworkSplit.epoch_order`)."""
        return self.split.epoch_order(self.data_gen)

    def capture(self, weights: dict[str, torch.Tensor], epoch: int, loss_sum: torch.Tensor | None,
                stream: torch.cuda.Stream | None, evaluator: NWSNet | None,
                measured: dict[str, tuple[float, float]] | None = None) -> Export:  # fmt: skip
        """Start this export: copy the weights (float32) and launch the clean evaluation with ``evaluator``, or keep
        the metrics ``measured`` already (the released evaluation); nothing waits for them."""
        with torch.no_grad():
            tensors = {f"w:{k}": v.detach().to(torch.float32, copy=True) for k, v in weights.items()}
            if evaluator is not None:
                state = evaluator.state_dict()
                for name, w in weights.items():
                    state[name].copy_(w)
        if measured is None:
            assert evaluator is not None
            norm_act = fused.eval_norm_act(self.region, evaluator.activation) if self.config.compile else None
            for part, (x, y) in self.eval_sets.items():
                tensors[f"loss:{part}"], tensors[f"correct:{part}"] = evaluate_sums(
                    evaluator, x, y, self.config.eval_batch_size, norm_act
                )
        if loss_sum is not None:
            tensors["loss_sum"] = loss_sum
        return Export(self, epoch, tensors, stream, measured)

    def finish(self, export: Export) -> tuple[bool, float]:
        """Keep an export's metrics and weights; (all weights finite, the epoch's summed training loss)."""
        host = export.arrays()
        for part, (_, y) in self.eval_sets.items():
            if export.measured is not None:
                loss, acc = export.measured[part]
            else:
                loss, acc = metrics(float(host[f"loss:{part}"]), int(host[f"correct:{part}"]), len(y))
            self.history[f"{part}_loss"].append(loss)
            self.history[f"{part}_accuracy"].append(acc)
        arrays = {k[2:]: v for k, v in host.items() if k.startswith("w:")}
        self.records.append(arrays)
        return all(np.isfinite(w).all() for w in arrays.values()), float(host.get("loss_sum", 0.0))

    def result(self) -> TrainResult:
        n_epochs = len(self.records) - 1
        epochs = snapshot_epochs(n_epochs)
        weights = self.records.stack(epochs)
        self.records.close()
        return TrainResult(
            status=self.status,
            n_epochs=n_epochs,
            snapshot_epochs=epochs,
            weights=weights,
            history=self.history,
            seconds=time.perf_counter() - self.start,
            images_seen=self.images_seen,
        )
