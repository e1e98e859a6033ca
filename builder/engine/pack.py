"""The training engine: networks trained together in one set of kernels, each exactly as it trains alone (a
network trained alone, :func:`builder.engine.train.train_network`, is a pack of one; the rules are listed there).

Design (measured choice, see docs/scaling.md, "Training packs of networks"):

- **Randomness per network, the same in any pack.** Every member (:class:`~builder.engine.member.Member`) keeps
  generators keyed by (zoo seed, network id, stream) for its initialisation, data split and epoch orders, and
  augmentation noise, drawn in the same order in any pack; its dropout masks and augmentation parameters are
  counter-based draws (:mod:`builder.engine.keyed_random`) at its own step count, which a lane computes for all its
  members in one call. The arithmetic is batched so that a member's bytes do not depend on its lane's width
  (:meth:`builder.engine.pack_lane.Lane._forward`): a network is the same network in any pack, alone included, and
  ``builder.reproduce`` can re-train it.
- **Lanes.** Stacked arithmetic needs one architecture and one batch size: a pack holds one
  :class:`~builder.engine.pack_lane.Lane` per such shape, and every pack step is one training step of every member of
  every lane, their batches, draws and augmentation made once for the pack (:mod:`builder.engine.pack_front`).
  So a pack mixes whatever the zoo draws (``nws_main``: 243 architectures x 4 batch sizes), and
  stays full: a network that stops frees its slot for the next queued one, whatever its shape.
- **Own epochs.** Every member has its own batch count per epoch (its class balance); a member whose epoch ends
  is exported: its weights copied and its clean evaluation launched, on the device, with the copy to the host
  on a side stream on CUDA. The pack reads that export one step later, while the device runs the step, and
  decides divergence and early stopping for that member alone, so the device never waits for a snapshot; a
  member that stops has trained one step more, discarded with it. Members that stop leave; queued networks take
  their place (a lane is re-stacked at those moments only). How many train at once: ``width`` networks, and at
  most ``budget_bytes`` of estimated training memory (:func:`builder.engine.pack_schedule.member_bytes`).

Data sets, optimizers, learning rates, activations, initialisations and augmentation may differ within a lane.
With ``evaluation="released"`` the metrics are measured through the lane's training graph, at the export (which
then waits for them).

Example:
    >>> from builder.engine.sources import load_images
    >>> from builder.engine.space import get_preset
    >>> space = get_preset("demo")
    >>> hps = [space.sample(0, i) for i in range(4)]
    >>> results = train_pack(hps, {"digits": load_images("digits")}, zoo_seed=0, network_ids=range(4),
    ...                      config=TrainConfig(max_epochs=1))  # doctest: +SKIP
    >>> [r.n_epochs for r in results]  # doctest: +SKIP
    [1, 1, 1, 1]
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import islice
from typing import Any

import torch

from builder.engine.member import DeviceImages, Export, Member
from builder.engine.pack_front import Front
from builder.engine.pack_lane import Lane
from builder.engine.pack_schedule import admissions, lane_architecture, member_bytes
from builder.engine.sources import ImageSet
from builder.engine.train_config import TrainConfig, TrainResult
from weightzoo.errors import ConfigError
from weightzoo.hparams import HyperParameters
from weightzoo.model import NWSNet

__all__ = ["iter_pack", "train_pack"]


class _Pack:
    """The lanes of a pack and what they share: evaluation networks, the memory count, the epoch boundary."""

    def __init__(self, config: TrainConfig, device: torch.device, dtype: torch.dtype,
                 on_epoch: Callable[[int, int, int], None] | None, cuda_graphs: bool = False):  # fmt: skip
        self.config, self.device, self.dtype, self.on_epoch = config, device, dtype, on_epoch
        self.cuda_graphs = cuda_graphs
        self.lanes: dict[tuple, Lane] = {}
        self.front = Front([], config, device, dtype)  # the lanes' shared front, rebuilt when a lane changes
        self.evaluators: dict[tuple, NWSNet] = {}
        self.bytes = 0  # estimated training memory of the members (builder.engine.pack_schedule.member_bytes)
        self.pending: list[Export] = []  # exports captured in the last step, read in the next
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
            by_key.setdefault(m.lane_key, []).append(m)
        touched = {m.lane_key for m in done} | set(by_key)
        for key in [k for k in self.lanes if k in touched] + [k for k in by_key if k not in self.lanes]:
            lane = self.lanes.setdefault(key, Lane(self.config, self.device, self.dtype))
            lane.restack([m for m in lane.members if id(m) not in gone], by_key.get(key, []))
            if not len(lane):
                del self.lanes[key]
        self.front = Front(list(self.lanes.values()), self.config, self.device, self.dtype, self.cuda_graphs)
        for key, members in by_key.items():
            lane = self.lanes[key]
            for m in members:  # the initialisation's export, at once (once per network)
                m.finish(self.capture(lane, lane.members.index(m), 0, None, None))
                m.stopper.update(0, m.history["val_accuracy"][-1])

    def capture(self, lane: Lane, slot: int, epoch: int, loss_sum: torch.Tensor | None,
                stream: torch.cuda.Stream | None) -> Export:  # fmt: skip
        """Start the export of the member in ``slot`` of ``lane``: its metrics measured (clean: launched on an
        evaluation network; released: through the lane's training graph, which moves the statistics exported) and
        its weights copied."""
        m = lane.members[slot]
        if self.config.evaluation == "released":
            measured = lane.released_metrics(slot)
            return m.capture(lane.member_weights(slot), epoch, loss_sum, stream, None, measured)
        return m.capture(lane.member_weights(slot), epoch, loss_sum, stream, self.evaluator(m))

    def step(self) -> list[Member]:
        """One training step of every member of every lane; the members that stop.

        Whether a member stops is decided from the export of its epoch's end, read one step later (the device
        runs that step meanwhile instead of waiting for the copy): a member that stops has trained one step more,
        which is discarded with it, as is an export captured in that step. So a member's result is what it would
        be if decided at once, and on CPU the same bytes."""
        self.front.step()
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
                m.order = m.epoch_order()  # drawn at the epoch's end, before the export
                if m.status is None:
                    loss_sum = lane.take_loss_sum(slot)
                    self.pending.append(self.capture(lane, slot, m.epoch, loss_sum, self.stream))
            if ended and self.config.lr_decay != 1:
                lane.lr_changed()
        return done

    def decide(self, export: Export) -> Member | None:
        """Record an export and decide whether its member stops there (divergence, early stopping, the epoch cap);
        the member if so.
        Exports of a member that already stopped are dropped."""
        m, c = export.member, self.config
        if m.status is not None:
            return None
        finite, loss_sum = m.finish(export)
        m.images_seen = export.epoch * m.n_batches * m.batch_size
        if self.on_epoch is not None:  # progress only
            self.on_epoch(m.id, export.epoch, m.images_seen)
        if not finite or not math.isfinite(loss_sum):
            m.diverged = True
            if c.on_divergence == "stop":
                m.status = "diverged"
        if m.status is None:
            if m.stopper.update(export.epoch, m.history["val_accuracy"][-1]):
                m.status = "early_stopped"
            elif export.epoch >= m.max_epochs:
                m.status = "completed"
            if m.status is not None and m.diverged:
                m.status = "diverged"  # on_divergence="continue": it trained on until a rule stopped it
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
    cuda_graphs: bool = False,
) -> Iterator[tuple[int, TrainResult]]:
    """Train networks ``network_ids`` (hyper-parameters ``hps``, any architectures and batch sizes) as one pack;
    yield ``(network_id, result)`` as each finishes. ``images`` maps data set names to image sets.

    At most ``width`` networks (None: all) and at most ``budget_bytes`` of estimated training memory (None: no
    limit; one network always trains) train at once; the others wait in ``network_ids`` order and take the
    slots of networks that stop. Order networks of one shape together (:func:`builder.engine.pack_schedule.
    form_packs`) to keep the lanes few and wide. ``cuda_graphs`` (CUDA only; ignored elsewhere): the pack's step
    is captured as one CUDA graph after a few eager steps of each composition and replayed (the same kernels on the
    same addresses: the same bytes as eager; not with ``evaluation="released"``).

    Example:
        >>> from builder.engine.space import get_preset
        >>> space = get_preset("demo")
        >>> next(iter_pack([space.sample(0, 0)], {}, zoo_seed=0, network_ids=[0]))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        weightzoo.errors.ConfigError: no images for data set 'digits' ...
    """
    hps, ids, config = list(hps), list(network_ids), config or TrainConfig()
    if len(hps) != len(ids) or not ids:
        raise ConfigError(f"a pack needs one hyper-parameter set per network id, got {len(hps)} and {len(ids)}")
    if width is not None and width < 1:
        raise ConfigError(f"a pack's width must be at least 1, got {width}")
    if cuda_graphs and config.evaluation == "released":
        raise ConfigError("cuda_graphs needs evaluation='clean' (the released evaluation reads metrics mid-step)")
    for hp, nid in zip(hps, ids, strict=True):
        try:
            lane_architecture(hp, config.fc_width, config.filter_size)
        except ConfigError as e:
            raise ConfigError(f"network {nid}: {e}") from None
    dev = torch.device(device)
    data: dict[str, DeviceImages] = {}
    for name in sorted({hp.dataset for hp in hps}):
        if name not in images:
            raise ConfigError(f"no images for data set {name!r} (given: {', '.join(images) or 'none'})")
        img = images[name]
        data[name] = img if isinstance(img, DeviceImages) and img.device == dev else DeviceImages(img, dev)
    width = len(ids) if width is None else width
    queue = deque(zip(hps, ids, strict=True))
    pack = _Pack(config, dev, dtype, on_epoch, cuda_graphs)

    def admit(count: int, free_bytes: float) -> list[Member]:
        """Queued networks for the free slots, in order, while the memory budget allows."""
        needs = [member_bytes(lane_architecture(hp, config.fc_width, config.filter_size), hp.batch_size, dtype)
                 for hp, _ in islice(queue, max(0, width - count))]  # fmt: skip
        new: list[Member] = []
        for need in needs[: admissions(needs, count, free_bytes, width)]:
            hp, nid = queue.popleft()
            new.append(Member(hp, data[hp.dataset], zoo_seed, nid, config, dtype))
            new[-1].bytes = need
        return new

    budget = math.inf if budget_bytes is None else budget_bytes
    with precision(config, dev):
        pack.update([], admit(0, budget))
        while len(pack):
            done = pack.step()
            if done:
                for m in done:
                    yield m.id, m.result()
                left = len(pack) - len(done)
                pack.update(done, admit(left, budget - pack.bytes + sum(m.bytes for m in done)))


@contextmanager
def precision(config: TrainConfig, device: torch.device) -> Iterator[None]:
    """On CUDA, products and convolutions in TF32 or fp32 as ``config.tf32`` says (``torch.backends``' own
    default is TF32 for cuDNN's convolutions, fp32 for products), the flags restored after; nothing elsewhere.

    Example:
        >>> with precision(TrainConfig(tf32=False), torch.device("cuda")):  # (flags only: no GPU needed)
        ...     torch.backends.cudnn.allow_tf32
        False
        >>> torch.backends.cudnn.allow_tf32  # restored: PyTorch's default
        True
    """
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = config.tf32
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def train_pack(
    hps: Sequence[HyperParameters],
    images: Mapping[str, ImageSet | DeviceImages],
    *,
    zoo_seed: int,
    network_ids: Sequence[int],
    **options: Any,
) -> list[TrainResult]:
    """Train the networks as one pack; the results in ``network_ids`` order, each (on one device, dtype and thread
    count) the bytes :func:`builder.engine.train.train_network` returns for it. ``options``: those of
    :func:`iter_pack` (``config``, ``device``, ``dtype``, ``width``, ``budget_bytes``, ``on_epoch``,
    ``cuda_graphs``).

    Example:
        >>> train_pack([], {}, zoo_seed=0, network_ids=[])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        weightzoo.errors.ConfigError: a pack needs one hyper-parameter set per network id, got 0 and 0
    """
    out = dict(iter_pack(hps, images, zoo_seed=zoo_seed, network_ids=network_ids, **options))
    return [out[i] for i in network_ids]
