"""The pack trainer: many zoo networks trained in one set of kernels, each exactly as :func:`builder.train.
train_network` trains it alone.

Design (measured choice, see README "Training packs of networks"):

- **Randomness per network, the same in any pack.** Every member keeps what ``train_network`` keeps for it:
  generators keyed by (zoo seed, network id, stream) for its initialisation, data split and epoch orders, and
  augmentation noise, drawn in the same order; its dropout masks and augmentation parameters are counter-based
  draws (:mod:`builder.keyed_random`) at its own step count, which a lane computes for all its members in one
  call. Only the arithmetic is batched, so a network is the same network in any pack, alone or with
  ``train_network``, and ``builder.reproduce`` can re-train it.
- **Lanes.** Stacked arithmetic needs one architecture and one batch size: a pack holds one
  :class:`~builder.pack_lane.Lane` per such shape, and every pack step is one training step of every member of
  every lane. So a pack mixes whatever the zoo draws (``nws_main``: 243 architectures x 4 batch sizes), and
  stays full: a network that stops frees its slot for the next queued one, whatever its shape.
- **Own epochs.** Every member has its own batch count per epoch (its class balance); a member whose epoch ends
  is exported: its weights copied and its evaluation (the single trainer's) launched, on the device, with the
  copy to the host on a side stream on CUDA. The pack reads that export one step later, while the device runs
  the step, and decides divergence and early stopping for that member alone, so the device never waits for a
  snapshot; a member that stops has trained one step more, discarded with it. Members that stop leave; queued
  networks take their place (a lane is re-stacked at those moments only). How many train at once: ``width``
  networks, and at most ``budget_bytes`` of estimated training memory (:func:`builder.pack_schedule.
  member_bytes`).

Data sets, optimizers, learning rates, activations, initialisations and augmentation may differ within a lane.
``evaluation="released"`` is not supported (:class:`~weightzoo.errors.ConfigError`): use the single trainer.

Example:
    >>> from builder.sources import load_images
    >>> from builder.space import get_preset
    >>> space = get_preset("demo")
    >>> hps = [space.sample(0, i) for i in range(4)]
    >>> results = train_pack(hps, {"digits": load_images("digits")}, zoo_seed=0, network_ids=range(4),
    ...                      config=TrainConfig(max_epochs=1))  # doctest: +SKIP
    >>> [r.n_epochs for r in results]  # doctest: +SKIP
    [1, 1, 1, 1]
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from builder.pack_lane import Lane
from builder.pack_schedule import member_bytes, pack_key
from builder.sources import ImageSet
from builder.space import torch_seed
from builder.train import (
    DeviceImages,
    EarlyStopping,
    TrainConfig,
    TrainResult,
    _evaluate_sums,
    _metrics,
    _Records,
    network_split,
    snapshot_epochs,
)
from weightzoo.errors import ConfigError
from weightzoo.format.layout import METRICS
from weightzoo.hparams import HyperParameters
from weightzoo.model import NWSNet, initialize_

__all__ = ["iter_pack", "train_pack"]


class _Export:
    """One export of a member, captured at the end of its epoch: the weights (float32) and the evaluation's sums,
    on their way to the host. On CUDA the copy runs on a side stream into pinned memory, after the kernels that
    produced them, and the pack reads it one step later (:meth:`_Pack.step`), so the device never idles for it;
    on CPU the tensors are already there."""

    def __init__(self, member: Member, epoch: int, tensors: dict[str, torch.Tensor], stream: torch.cuda.Stream | None):
        self.member, self.epoch = member, epoch
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
    """One network of a pack: its generators, data split, epoch state, records and history (what
    ``train_network`` keeps in local variables), set up with the same calls in the same order."""

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
        self.step_key = torch_seed(zoo_seed, network_id, "step")  # its per-step draws (builder.keyed_random)
        self.steps = 0  # training steps taken: the position of its counter-based streams
        net = NWSNet(hp.architecture, hp.activation, bn_momentum=1 - config.bn_decay, bn_eps=config.bn_eps)
        net = initialize_(net, hp.initialization, init_gen).to(dev, dtype)
        state = net.state_dict()
        self.initial = {p.name: state[p.name].detach().clone() for p in hp.architecture.params}
        self.lr = hp.learning_rate

        split = network_split(hp, data, config, self.data_gen)  # the split train_network draws
        self.split, self.eval_sets = split, split.eval_sets
        self.history: dict[str, list[float]] = {m: [] for m in METRICS}
        self.records = _Records()
        self.stopper = EarlyStopping(config)
        self.order = self.epoch_order()
        bs = hp.batch_size
        if len(self.order) < bs:
            raise ConfigError(
                f"network {network_id}: an epoch of {len(self.order)} images is shorter than its batch of {bs}; "
                "the pack trainer needs full batches (train it with the single trainer)"
            )
        self.n_batches = len(self.order) // bs
        self.batch = 0  # within the epoch
        self.epoch = 0  # trained epochs
        self.images_seen = 0
        self.status: str | None = None  # decided when it stops: completed, early_stopped or diverged
        self.bytes = 0  # its estimated training memory, set when it is admitted

    def epoch_order(self) -> torch.Tensor:
        """Its next epoch's order, drawn as train_network draws it (:meth:`builder.train.NetworkSplit.epoch_order`)."""
        return self.split.epoch_order(self.data_gen)

    def capture(self, weights: dict[str, torch.Tensor], evaluator: NWSNet, epoch: int,
                loss_sum: torch.Tensor | None, stream: torch.cuda.Stream | None) -> _Export:  # fmt: skip
        """Start this export: copy the weights (float32) and launch the evaluation; nothing waits for them."""
        with torch.no_grad():
            state = evaluator.state_dict()
            for name, w in weights.items():
                state[name].copy_(w)
            tensors = {f"w:{k}": v.detach().to(torch.float32, copy=True) for k, v in weights.items()}
        for part, (x, y) in self.eval_sets.items():
            tensors[f"loss:{part}"], tensors[f"correct:{part}"] = _evaluate_sums(
                evaluator, x, y, self.config.eval_batch_size
            )
        if loss_sum is not None:
            tensors["loss_sum"] = loss_sum
        return _Export(self, epoch, tensors, stream)

    def finish(self, export: _Export) -> tuple[bool, float]:
        """Keep an export's metrics and weights; (all weights finite, the epoch's summed training loss)."""
        host = export.arrays()
        for part, (_, y) in self.eval_sets.items():
            loss, acc = _metrics(float(host[f"loss:{part}"]), int(host[f"correct:{part}"]), len(y))
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


class _Pack:
    """The lanes of a pack and what they share: evaluation networks, the memory count, the epoch boundary."""

    def __init__(self, config: TrainConfig, device: torch.device, dtype: torch.dtype,
                 on_epoch: Callable[[int, int, int], None] | None):  # fmt: skip
        self.config, self.device, self.dtype, self.on_epoch = config, device, dtype, on_epoch
        self.lanes: dict[tuple, Lane] = {}
        self.evaluators: dict[tuple, NWSNet] = {}
        self.bytes = 0  # estimated training memory of the members (builder.pack_schedule.member_bytes)
        self.pending: list[_Export] = []  # exports captured in the last step, read in the next
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None  # for the exports' copies

    def __len__(self) -> int:
        return sum(len(lane) for lane in self.lanes.values())

    def evaluator(self, m: Member) -> NWSNet:
        """A network of ``m``'s architecture and activation to measure members with."""
        key = (m.hp.architecture, m.hp.activation)
        net = self.evaluators.get(key)
        if net is None:
            c = self.config
            net = NWSNet(m.hp.architecture, m.hp.activation, bn_momentum=1 - c.bn_decay, bn_eps=c.bn_eps)
            net = self.evaluators[key] = net.to(self.device, self.dtype)
        return net

    def update(self, done: list[Member], new: list[Member]) -> None:
        """Members ``done`` leave, ``new`` join (each in its shape's lane); the initialisation export of the new."""
        gone = {id(m) for m in done}
        self.bytes += sum(m.bytes for m in new) - sum(m.bytes for m in done)
        by_key: dict[tuple, list[Member]] = {}
        for m in new:
            by_key.setdefault(pack_key(m.hp), []).append(m)
        touched = {pack_key(m.hp) for m in done} | set(by_key)
        for key in [k for k in self.lanes if k in touched] + [k for k in by_key if k not in self.lanes]:
            lane = self.lanes.setdefault(key, Lane(self.config, self.device, self.dtype))
            lane.restack([m for m in lane.members if id(m) not in gone], by_key.get(key, []))
            if not len(lane):
                del self.lanes[key]
        for key, members in by_key.items():
            lane = self.lanes[key]
            for m in members:  # the initialisation's export, at once (once per network)
                m.finish(m.capture(lane.member_weights(lane.members.index(m)), self.evaluator(m), 0, None, None))
                m.stopper.update(0, m.history["val_accuracy"][-1])

    def step(self) -> list[Member]:
        """One training step of every member of every lane; the members that stop.

        Whether a member stops is decided from the export of its epoch's end, read one step later (the device
        runs that step meanwhile instead of waiting for the copy): a member that stops has trained one step more,
        which is discarded with it, as is an export captured in that step. So a member's result is what it would
        be if decided at once, and on CPU the same bytes."""
        for lane in self.lanes.values():
            lane.step()
        done = [m for m in (self.decide(export) for export in self.pending) if m is not None]
        self.pending = []
        for lane in self.lanes.values():
            ended = False
            for slot, m in enumerate(lane.members):
                m.batch += 1
                if m.batch < m.n_batches:
                    continue
                ended, m.batch, m.epoch = True, 0, m.epoch + 1
                m.lr = m.lr * self.config.lr_decay
                m.order = m.epoch_order()  # drawn at the epoch's end, as train_network draws it
                if m.status is None:
                    loss_sum = lane.take_loss_sum(slot)
                    self.pending.append(m.capture(lane.member_weights(slot), self.evaluator(m), m.epoch, loss_sum,
                                                  self.stream))  # fmt: skip
            if ended and self.config.lr_decay != 1:
                lane.lr_changed()
        return done

    def decide(self, export: _Export) -> Member | None:
        """Record an export and decide (as train_network's loop) whether its member stops there; the member if so.
        Exports of a member that already stopped are dropped."""
        m, c = export.member, self.config
        if m.status is not None:
            return None
        finite, loss_sum = m.finish(export)
        m.images_seen = export.epoch * m.n_batches * m.hp.batch_size
        if self.on_epoch is not None:  # progress only: as train_network's on_epoch
            self.on_epoch(m.id, export.epoch, m.images_seen)
        if not finite or not math.isfinite(loss_sum):
            m.status = "diverged"
        elif m.stopper.update(export.epoch, m.history["val_accuracy"][-1]):
            m.status = "early_stopped"
        elif export.epoch >= c.max_epochs:
            m.status = "completed"
        return None if m.status is None else m


def iter_pack(
    hps: Sequence[HyperParameters],
    images: Mapping[str, ImageSet | DeviceImages],
    *,
    zoo_seed: int,
    network_ids: Sequence[int],
    config: TrainConfig | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    width: int | None = None,
    budget_bytes: int | None = None,
    on_epoch: Callable[[int, int, int], None] | None = None,
) -> Iterator[tuple[int, TrainResult]]:
    """Train networks ``network_ids`` (hyper-parameters ``hps``, any architectures and batch sizes) as one pack;
    yield ``(network_id, result)`` as each finishes. ``images`` maps data set names to image sets.

    At most ``width`` networks (None: all) and at most ``budget_bytes`` of estimated training memory (None: no
    limit; one network always trains) train at once; the others wait in ``network_ids`` order and take the
    slots of networks that stop. Order networks of one shape together (:func:`builder.pack_schedule.
    form_packs`) to keep the lanes few and wide.

    Example:
        >>> from builder.space import get_preset
        >>> space = get_preset("demo")
        >>> next(iter_pack([space.sample(0, 0)], {}, zoo_seed=0, network_ids=[0]))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        weightzoo.errors.ConfigError: no images for data set 'digits' ...
    """
    hps, ids, config = list(hps), list(network_ids), config or TrainConfig()
    if len(hps) != len(ids) or not ids:
        raise ConfigError(f"a pack needs one hyper-parameter set per network id, got {len(hps)} and {len(ids)}")
    if config.evaluation != "clean":
        raise ConfigError("the pack trainer measures clean metrics only; use the single trainer for 'released'")
    if width is not None and width < 1:
        raise ConfigError(f"a pack's width must be at least 1, got {width}")
    dev = torch.device(device)
    data: dict[str, DeviceImages] = {}
    for name in sorted({hp.dataset for hp in hps}):
        if name not in images:
            raise ConfigError(f"no images for data set {name!r} (given: {', '.join(images) or 'none'})")
        img = images[name]
        data[name] = img if isinstance(img, DeviceImages) and img.device == dev else DeviceImages(img, dev)
    width = len(ids) if width is None else width
    queue = deque(zip(hps, ids, strict=True))
    pack = _Pack(config, dev, dtype, on_epoch)

    def admit(count: int, free_bytes: float) -> list[Member]:
        """Queued networks for the free slots, in order, while the memory budget allows."""
        new: list[Member] = []
        while queue and count + len(new) < width:
            hp, nid = queue[0]
            need = member_bytes(hp.architecture, hp.batch_size, dtype)
            if count + len(new) > 0 and need > free_bytes:
                break
            queue.popleft()
            new.append(Member(hp, data[hp.dataset], zoo_seed, nid, config, dtype))
            new[-1].bytes, free_bytes = need, free_bytes - need
        return new

    budget = math.inf if budget_bytes is None else budget_bytes
    pack.update([], admit(0, budget))
    while len(pack):
        done = pack.step()
        if done:
            for m in done:
                yield m.id, m.result()
            left = len(pack) - len(done)
            pack.update(done, admit(left, budget - pack.bytes + sum(m.bytes for m in done)))


def train_pack(
    hps: Sequence[HyperParameters],
    images: Mapping[str, ImageSet | DeviceImages],
    *,
    zoo_seed: int,
    network_ids: Sequence[int],
    config: TrainConfig | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    width: int | None = None,
    budget_bytes: int | None = None,
    on_epoch: Callable[[int, int, int], None] | None = None,
) -> list[TrainResult]:
    """Train the networks as one pack; the results in ``network_ids`` order, each what :func:`builder.train.
    train_network` returns for it (to float tolerance: see the module docstring).

    Example:
        >>> train_pack([], {}, zoo_seed=0, network_ids=[])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        weightzoo.errors.ConfigError: a pack needs one hyper-parameter set per network id, got 0 and 0
    """
    kwargs = {"config": config, "device": device, "dtype": dtype, "width": width, "budget_bytes": budget_bytes,
              "on_epoch": on_epoch}  # fmt: skip
    out = dict(iter_pack(hps, images, zoo_seed=zoo_seed, network_ids=network_ids, **kwargs))
    return [out[i] for i in network_ids]
