"""What the full zoo asks of one GPU: the work of its pack steps and exports, counted from the engine.

The projection (``benchmarks/zoo_projection.py``) replays the real schedule of 16,000 networks
(:mod:`builder.engine.replay`: the zoo's own draws, the generator's packs, admissions and departures) and charges
each pack step and export the work counted here.

What a pack step costs is counted, not assumed, by running the engine's own :class:`~builder.engine.pack_front.
Front` and :class:`~builder.engine.pack_lane.Lane` on small synthetic images under
:class:`~builder.engine.op_count.OpCounter` (:class:`WorkCounter`):

- **kernels**: the front's (batches, draws, augmentation, once per pack step) depend only on its number of data
  sets and on whether none, some or all of its members augment; a lane's do not depend on its widths, filter
  size, batch size, data or number of members, only on its depths and on whether it is a lane of one (which
  computes as two), plus its optimizer runs and its activation runs (linear in their number; in the lane's own
  member order), plus a gradient mask where kernels are padded. Each term is counted once on small packs
  (:meth:`WorkCounter.lane_kernels`, :meth:`WorkCounter.front_kernels`); ``tests/test_projection.py`` holds the
  model to counts of random real packs.
- **bytes and FLOPs** grow with the networks and their batch: per member and step, counted on lanes of two at two
  small batch sizes for every architecture and extrapolated linearly in the batch (exact for convolutions and
  products, which are linear in it).
- **exports**: a network's weights copy and clean evaluation (``train_eval_images`` training images, its
  validation and test sets in batches of ``eval_batch_size``) once at initialisation and once per epoch, counted
  by the member's own :meth:`~builder.engine.member.Member.capture` as a linear function of batches and images.

Hours follow from stated device assumptions (:class:`Device`): each lane step, each front and each export takes the
longest of its kernels times the launch cost, its bytes over the memory bandwidth and its FLOPs over the peak,
summed (a roofline per step; steps are serial on one device).

Example:
    >>> Device().launch_s["eager"], Device().graph_s, Device().peak_flops["tf32"] / 1e12
    (6e-06, 1e-06, 495.0)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from builder.engine.fused import RegionCall, RegionWork, counted
from builder.engine.member import DeviceImages, Member
from builder.engine.op_count import OpCounter
from builder.engine.pack_front import Front
from builder.engine.pack_lane import ADAM_STEP_KERNELS, Lane, _runs, _sort_key, sort_first
from builder.engine.sources import ImageSet
from builder.engine.train_config import TrainConfig
from weightzoo.architecture import Architecture
from weightzoo.hparams import ACTIVATIONS, HyperParameters
from weightzoo.model import NWSNet

_FIXED = (3, 2)  # the depths the terms that do not depend on them are counted at
#: The smallest network of the nws_main space (at ``_FIXED`` depths): what the counts that do not depend on the
#: architecture run on.
_SMALLEST = dict(dataset="mnist", batch_size=32, learning_rate=1e-3, augmentation=False, optimizer="adam",
                 activation="relu", initialization="normal", filter_size=3, depth_conv=3, depth_fc=2, width_conv=4,
                 width_fc=64)  # fmt: skip
_ACTIVATIONS = sorted(ACTIVATIONS)

__all__ = ["DATASET_SIZES", "Device", "Work", "WorkCounter"]

#: Per reference data set, the full-scale figures a network's work depends on: balanced training images per
#: epoch (10 x the smallest class of its 90 % split, about 0.9 x the smallest class of the pool), validation
#: images (the other 10 % of the pool), test images (the whole test set), clean-evaluation training subset
#: (``TrainConfig.train_eval_images``, at most the split).
DATASET_SIZES: dict[str, tuple[int, int, int, int]] = {
    "mnist": (48_780, 5_500, 10_000, 10_000),  # pool 55,000; smallest class about 5,420
    "fashion": (49_500, 5_500, 10_000, 10_000),  # pool 55,000, about 5,500 a class
    "cifar10": (45_000, 5_000, 10_000, 10_000),  # 5,000 a class
    "svhn": (41_930, 7_326, 26_032, 10_000),  # 73,257; smallest class (9) 4,659
    "stl10": (4_500, 500, 8_000, 4_500),  # 500 a class
    "digits": (1_290, 144, 360, 1_293),  # the embedded offline set (scikit-learn's digits, 1,437 + 360)
}


@dataclass(frozen=True)
class Device:
    """The device a projection is for (defaults: one H100 SXM; public figures, dense, no sparsity): the cost of an
    eager kernel launch (4-8 µs; ``eager`` the middle), of a kernel inside a replayed CUDA graph (about 1 µs), the
    memory bandwidth and the fp32 and TF32 peaks. In the ``cuda graph`` mode a pack step's staging (batch
    indices, stream words, noise) and every export stay eager."""

    name: str = "H100 SXM"
    launch_s: Mapping[str, float] = field(
        default_factory=lambda: {"eager (4 µs)": 4e-6, "eager": 6e-6, "eager (8 µs)": 8e-6}
    )
    graph_s: float = 1e-6
    bandwidth: float = 3.35e12
    peak_flops: Mapping[str, float] = field(default_factory=lambda: {"fp32": 67e12, "tf32": 495e12})

    def modes(self) -> list[tuple[str, float, float | None]]:
        """(name, eager launch, launch inside a graph or None) of every launch mode a projection reports."""
        return [*((m, s, None) for m, s in self.launch_s.items()), ("cuda graph", self.launch_s["eager"], self.graph_s)]


@dataclass
class Work:
    """Kernels, bytes and FLOPs of some device work; ``eager``: those of the kernels launched eagerly even when
    the rest is a replayed CUDA graph."""

    kernels: float = 0.0
    bytes: float = 0.0
    flops: float = 0.0
    eager: float = 0.0

    def __add__(self, other: Work) -> Work:
        return Work(self.kernels + other.kernels, self.bytes + other.bytes, self.flops + other.flops,
                    self.eager + other.eager)  # fmt: skip

    def __sub__(self, other: Work) -> Work:
        return self + other * -1

    def __mul__(self, k: float) -> Work:
        return Work(self.kernels * k, self.bytes * k, self.flops * k, self.eager * k)

    def seconds(self, launch: float, bandwidth: float, peak: float, graph: float | None = None) -> tuple[float, str]:
        """The roofline time of this work, and its bound: ``launch``, ``memory`` or ``compute`` (``graph``: the
        cost of a kernel inside a CUDA graph, for all but the ``eager`` ones; None: every kernel eager)."""
        launches = self.kernels * launch if graph is None else self.eager * launch + (self.kernels - self.eager) * graph
        times = {"launch": launches, "memory": self.bytes / bandwidth, "compute": self.flops / peak}
        bound = max(times, key=times.__getitem__)
        return times[bound], bound


def _line(x0: float, w0: Work, x1: float, w1: Work) -> tuple[Work, Work]:
    """(fixed, slope) of work linear in ``x`` (a batch's images) through the counts ``w0`` at ``x0`` and ``w1`` at
    ``x1``.

    Example:
        >>> fixed, slope = _line(2, Work(bytes=10), 4, Work(bytes=14))
        >>> fixed.bytes, slope.bytes
        (6.0, 2.0)
    """
    slope = (w1 - w0) * (1 / (x1 - x0))
    return w0 - slope * x0, slope


def _synthetic(name: str, n: int) -> DeviceImages:
    """``n`` random images of ten balanced classes, named ``name`` (the arithmetic's shapes, not its data)."""
    rng = np.random.default_rng(len(name) * 1000 + n)
    x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    y = np.arange(n) % 10
    return DeviceImages(ImageSet(name, x, y, x[:20], y[:20], origin="synthetic:projection"), "cpu")


class WorkCounter:
    """The counted work of lane steps and exports, memoised by what it depends on (see the module docstring).

    Example:
        >>> from builder.engine.space import get_preset
        >>> hp = get_preset("nws_fixed").sample(0, 0)
        >>> counter = WorkCounter()
        >>> counter.lane_step([hp]).kernels > 100
        True
    """

    #: Images of the two small synthetic sets that give two batch sizes (a member's batch is at most its epoch).
    SMALL, LARGE = 30, 400

    def __init__(self, fc_width: int | None = None, eval_batch_size: int | None = None,
                 filter_size: int | None = None, compile: bool = False) -> None:  # fmt: skip
        #: ``fc_width``, ``filter_size``: the engine's padding (``TrainConfig.fc_width``, ``.filter_size``),
        #: counted in every lane it makes; ``eval_batch_size``: the exports' evaluation batch
        #: (``TrainConfig.eval_batch_size``; None: its default); ``compile``: each layer's batch norm and
        #: activation as a compiled region (``TrainConfig.compile``), its work Inductor's (:class:`RegionWork`).
        eval_batch = eval_batch_size or TrainConfig.eval_batch_size
        self.config = TrainConfig(train_eval_images=20, test_images=20, fc_width=fc_width, filter_size=filter_size,
                                  eval_batch_size=eval_batch, compile=compile)  # fmt: skip
        self.regions = RegionWork()
        #: The smallest network, at the engine's padded shape (the counts that do not depend on the shape run on it).
        self.smallest = {**_SMALLEST, "width_fc": fc_width or _SMALLEST["width_fc"],
                         "filter_size": filter_size or _SMALLEST["filter_size"]}  # fmt: skip
        self._images: dict[tuple[str, int], DeviceImages] = {}
        self._kernels: dict[tuple, int] = {}  # _lane's counts
        self._per_member: dict[Architecture, tuple[tuple[Work, Work], tuple[Work, Work]]] = {}
        self._aug_bytes: tuple[Work, Work] | None = None
        self._front_extra: tuple[tuple[Work, Work], tuple[Work, Work]] | None = None
        self._export: dict[Architecture, tuple[Work, Work, Work]] = {}
        self._layers: dict[Architecture, list[tuple[str, bool, tuple[int, ...]]]] = {}  # compiled regions per member

    def _data(self, name: str, n: int = LARGE) -> DeviceImages:
        if (name, n) not in self._images:
            self._images[name, n] = _synthetic(name, n)
        return self._images[name, n]

    def count_pack(self, lanes: Sequence[Sequence[HyperParameters]], n_images: int = LARGE, flops: bool = False
                   ) -> OpCounter:  # fmt: skip
        """Run one step of a real pack of these lanes (each one architecture and batch size) on synthetic images and
        count its second step (the first fills the engine's memoised constants). The counter also holds
        ``staged`` (the kernels of the staging), ``front`` (of the shared front's device work) and ``lanes`` (of
        each lane's), counted apart on the same step's inputs, and the bytes (and FLOPs) of the front with its
        staging (``front_work``) and of the lanes (``lane_work``)."""
        config, dev, f32 = self.config, torch.device("cpu"), torch.float32
        built, nid = [], 0
        for hps in lanes:
            members = []
            for hp in hps:
                members.append(Member(hp, self._data(hp.dataset, n_images), 0, nid, config, f32))
                nid += 1
            built.append(Lane(config, dev, f32))
            built[-1].restack([], members)
        calls: list[RegionCall] = []  # the compiled regions' calls (TrainConfig.compile), Inductor's work each
        for lane in built:
            lane.region = counted(calls)
        front = Front(built, config, dev, f32)
        front.step()
        with OpCounter() as staged:
            front._stage()
        with OpCounter() as front_count:
            inputs = front.inputs()
        parts, lane_work, lane_calls = [], Work(), []
        for lane, (x, y, masks) in zip(front.lanes, inputs, strict=True):
            calls.clear()
            with OpCounter(flops=flops) as lane_count:
                lane.compute(x, y, masks)
            lane_calls.append(list(calls))
            regions = self._region_work(calls)
            parts.append(lane_count.kernels + int(regions.kernels))
            lane_work = lane_work + Work(0, lane_count.bytes + regions.bytes, lane_count.flops if flops else 0)
        with OpCounter(flops=flops) as count:
            front.step()
        count.batch_size = built[0].batch_size  # type: ignore[attr-defined]
        count.staged = staged.kernels  # type: ignore[attr-defined]
        count.front = front_count.kernels  # type: ignore[attr-defined]
        count.lanes = parts  # type: ignore[attr-defined]
        count.front_work = Work(0, staged.bytes + front_count.bytes)  # type: ignore[attr-defined]
        count.lane_work = lane_work  # type: ignore[attr-defined]
        count.calls = lane_calls  # type: ignore[attr-defined]
        return count

    def _region_work(self, calls: Sequence[RegionCall]) -> Work:
        """Inductor's kernels and bytes for these compiled regions' calls (:class:`RegionWork`)."""
        work = Work()
        for call in calls:
            kernels, moved = self.regions(call)
            work = work + Work(kernels, moved)
        return work

    def count_lane(self, hps: Sequence[HyperParameters], n_images: int = LARGE, flops: bool = False) -> OpCounter:
        """:meth:`count_pack` of one lane (a pack of it alone)."""
        return self.count_pack([hps], n_images, flops)

    def _lane(self, depths: tuple[int, int], pairs: Sequence[tuple[str, str]], size: int = 2) -> int:
        """Kernels of the device work of a lane (not its front) of the smallest architecture of ``depths``: one
        member per (optimizer, activation) pair, copies of the last up to ``size``."""
        key = (depths, tuple(pairs), size)
        if key not in self._kernels:
            base = HyperParameters(**{**self.smallest, "depth_conv": depths[0], "depth_fc": depths[1]})
            hps = [dataclasses.replace(base, optimizer=o, activation=a) for o, a in pairs]
            hps += [hps[-1]] * (size - len(hps))
            self._kernels[key] = self.count_lane(hps).lanes[0]
        return self._kernels[key]

    def lane_kernels(self, hps: Sequence[HyperParameters]) -> int:
        """Kernels of one lane's device work in a pack step (its front aside), by the additive model of the module
        docstring, each term counted on small lanes: the lane of two (or one) of its depths, plus a run of each
        optimizer (in the order the lane stacks its members: :func:`~builder.engine.pack_lane.sort_first`) and its
        activation runs, plus the gradient mask of a lane whose kernels pad some member's
        (``TrainConfig.filter_size``: one kernel)."""
        P, d = len(hps), (hps[0].depth_conv, hps[0].depth_fc)
        plain = [("adam", "relu")]
        total = self._lane(d, plain, size=1 if P == 1 else 2)
        first = sort_first(hps, self.config.compile)
        order = sorted(hps, key=lambda hp: _sort_key(hp, first))
        # each optimizer run's kernels (counted once per optimizer, at the depths of the nws_fixed lane) past the
        # base lane's one Adam run
        optimizers = [o for o, _, _ in _runs([hp.optimizer for hp in order])]
        total += sum(map(self._optimizer_run, optimizers)) - self._optimizer_run("adam")
        total -= ADAM_STEP_KERNELS * max(optimizers.count("adam") - 1, 0)  # Adam's step sizes: once a step
        runs = len(_runs([hp.activation for hp in order]))
        if runs > 1:  # linear in the runs past one (counted at 2 and 3 runs)
            two, three = (self._lane(d, [("adam", a) for a in _ACTIVATIONS[:r]]) for r in (2, 3))
            total += two - self._lane(d, plain) + (three - two) * (runs - 2)
        pad = self.config.filter_size
        return total + (pad is not None and any(hp.filter_size != pad for hp in hps))

    def _optimizer_run(self, optimizer: str) -> int:
        """Kernels of one run of members sharing ``optimizer`` in a lane step (with another's, less its alone)."""
        other = "rmsprop" if optimizer == "adam" else "adam"
        return self._lane(_FIXED, [(other, "relu"), (optimizer, "relu")]) - self._lane(_FIXED, [(other, "relu")])

    def front_kernels(self, hps: Sequence[HyperParameters], padded_lanes: int = 0) -> int:
        """Kernels of the front of a pack step (:mod:`builder.engine.pack_front`) whose members are ``hps``: they
        depend only on its number of data sets, on whether none, some or all of its members augment (counted once
        per such case on a small pack) and on how many of its lanes pad some member's dense layers (one gather of
        dropout bits each, ``padded_lanes``)."""
        datasets, naug = len({hp.dataset for hp in hps}), sum(hp.augmentation for hp in hps)
        aug = "none" if naug == 0 else "all" if naug == len(hps) else "some"
        key = ("front", datasets, aug)
        if key not in self._kernels:
            names = sorted(DATASET_SIZES)[:datasets]
            size = datasets + (aug == "some")
            base = HyperParameters(**self.smallest)
            small = [dataclasses.replace(base, dataset=names[i % datasets],
                                         augmentation=aug == "all" or (aug == "some" and i > 0))
                     for i in range(size)]  # fmt: skip
            self._kernels[key] = self.count_lane(small).front
        return self._kernels[key] + padded_lanes

    def padded_lanes(self, lanes: Sequence[Sequence[HyperParameters]]) -> int:
        """How many of these lanes pad some member's dense layers (``TrainConfig.fc_width`` above its width)."""
        pad = self.config.fc_width
        return sum(pad is not None and any(hp.width_fc != pad for hp in lane) for lane in lanes)

    def front_step(self, hps: Sequence[HyperParameters], padded_lanes: int = 0) -> Work:
        """The work of the front of a pack step whose members are ``hps`` and of its staging: kernels
        (:meth:`front_kernels`), each member's bytes (:meth:`_member`); ``eager``: the staging (one kernel per data
        set, one for the stream words, one per augmented member)."""
        datasets, naug = len({hp.dataset for hp in hps}), sum(hp.augmentation for hp in hps)
        staged = datasets + 1 + naug
        work = Work(self.front_kernels(hps, padded_lanes) + staged, eager=staged)
        for hp in hps:
            work = work + self._member(hp)[1]
        (some, some_slope), (per_set, per_set_slope) = self._front_per_image()
        images = sum(hp.batch_size for hp in hps)
        if 0 < naug < len(hps):
            work = work + some + some_slope * images
        if datasets > 1:  # each data set's images gathered into place (none with one): fitted at two
            work = work + (per_set + per_set_slope * images) * (datasets / 2)
        return work

    def _front_per_image(self) -> tuple[tuple[Work, Work], tuple[Work, Work]]:
        """What the front moves beyond its members' shares, (fixed, per image of the pack) each: when only some
        members augment (their images taken out of the batch and put back), and with two data sets (each gathered
        into place); fitted on pairs of the smallest network at two batch sizes."""
        if self._front_extra is None:
            base = HyperParameters(**_SMALLEST)
            aug, other = dataclasses.replace(base, augmentation=True), dataclasses.replace(base, dataset="fashion")
            self._member(aug)  # fits what augmenting adds to the augmented member's own share
            assert self._aug_bytes is not None
            some, sets = [], []
            for n in (self.SMALL, self.LARGE):
                plain = self.count_lane([base, base], n)
                bs = plain.batch_size
                own = self._aug_bytes[0] + self._aug_bytes[1] * bs
                some.append((2 * bs, self.count_lane([aug, base], n).front_work - plain.front_work - own))
                sets.append((2 * bs, self.count_lane([base, other], n).front_work - plain.front_work))
            self._front_extra = (_line(*some[0], *some[1]), _line(*sets[0], *sets[1]))
        return self._front_extra

    def _per_member_fit(self, hp: HyperParameters) -> tuple[tuple[Work, Work], tuple[Work, Work]]:
        """Bytes and FLOPs of a member in a lane of two such, fitted at two batch sizes: (fixed, per image) of its
        lane's work, then of its share of the front's."""
        small, large = (self.count_lane([hp, hp], n, flops=True) for n in (self.SMALL, self.LARGE))
        regions = [c for c in large.calls[0] if c.fn in ("norm_act", "act_norm")]  # (not the optimizer's)
        self._layers[hp.architecture] = [(c.fn, c.masked, c.shape[2:]) for c in regions]
        lane, front = (
            _line(small.batch_size, getattr(small, part) * 0.5, large.batch_size, getattr(large, part) * 0.5)
            for part in ("lane_work", "front_work")
        )
        return lane, front

    def _member(self, hp: HyperParameters) -> tuple[Work, Work]:
        """(lane, front) bytes and FLOPs of one member: its architecture's (an Adam, ReLU member's), linear in its
        batch (fitted at two small ones); augmenting its batch adds to the front's (the same for every
        architecture: it acts on the images)."""
        arch = hp.architecture
        if arch not in self._per_member:
            base = dataclasses.replace(hp, optimizer="adam", activation="relu", augmentation=False, dataset="mnist")
            self._per_member[arch] = self._per_member_fit(base)
        (lane_fixed, lane_slope), (front_fixed, front_slope) = self._per_member[arch]
        lane, front = lane_fixed + lane_slope * hp.batch_size, front_fixed + front_slope * hp.batch_size
        if hp.augmentation:
            if self._aug_bytes is None:
                base = HyperParameters(**_SMALLEST)
                plain = self._per_member_fit(base)[1]
                aug = self._per_member_fit(dataclasses.replace(base, augmentation=True))[1]
                self._aug_bytes = (aug[0] - plain[0], aug[1] - plain[1])
            front = front + self._aug_bytes[0] + self._aug_bytes[1] * hp.batch_size
        return lane, front

    def member_step(self, hp: HyperParameters) -> Work:
        """Bytes and FLOPs one member adds to its lane's step (:meth:`_member`)."""
        return self._member(hp)[0]

    def lane_step(self, hps: Sequence[HyperParameters]) -> Work:
        """The work of one step of a lane of these networks in a pack (its front aside): its kernels
        (:meth:`lane_kernels`), and its members' bytes and FLOPs (:meth:`member_step`, and with compiled regions
        what the lane's activations add: :meth:`region_delta`)."""
        work = Work(self.lane_kernels(hps))
        activations = {hp.activation for hp in hps}
        activation = activations.pop() if len(activations) == 1 else "mixed"
        for hp in hps:
            work = work + self.member_step(hp) + self.region_delta(hp, activation)
        return work

    def region_delta(self, hp: HyperParameters, activation: str) -> Work:
        """What a member's compiled regions (``TrainConfig.compile``) move beyond its fitted share (fitted as a
        ReLU member's, :meth:`_member`) in a lane whose regions run ``activation`` (``"mixed"``: its members
        differ in theirs): Inductor's bytes for each of its layers at its batch, less the ReLU region's. Nothing
        without compiled regions (eager, a member's bytes do not depend on its activation)."""
        if not self.config.compile or activation == "relu":
            return Work()
        self._member(hp)
        delta = 0.0
        for fn, masked, rest in self._layers[hp.architecture]:
            shape = (hp.batch_size, 1, *rest)  # the member's share: one member of the lane's regions
            delta += self.regions(RegionCall(fn, activation, masked, torch.float32, shape))[1]
            delta -= self.regions(RegionCall(fn, "relu", masked, torch.float32, shape))[1]
        return Work(bytes=delta)

    def export(self, hp: HyperParameters, sizes: tuple[int, int, int, int] | None = None) -> Work:
        """One export of a network: weights copied, clean evaluation of its three sets (``sizes``: those of
        :data:`DATASET_SIZES`, by default its data set's) in batches of ``eval_batch_size``."""
        arch = hp.architecture
        if arch not in self._export:
            member = Member(hp, self._data(hp.dataset), 0, 0, self.config, torch.float32)
            net = NWSNet(arch, hp.activation)
            weights = {k: v.clone() for k, v in net.state_dict().items()}
            x, y = self._data(hp.dataset).train_x, self._data(hp.dataset).train_y
            calls: list[RegionCall] = []  # the evaluation's compiled regions (TrainConfig.compile)
            member.region = counted(calls)

            def count(images: int, batch: int) -> Work:
                member.eval_sets = {part: (x[:images], y[:images]) for part in ("train", "val", "test")}
                member.config = dataclasses.replace(self.config, eval_batch_size=batch)
                calls.clear()
                with OpCounter(flops=True) as c:
                    member.capture(weights, 1, None, None, net)
                return Work(c.kernels, c.bytes, c.flops) + self._region_work(calls)

            a, b, c = count(8, 4), count(8, 8), count(16, 8)  # 6, 3, 6 batches; 24, 24, 48 images
            per_batch, per_image = (a - b) * (1 / 3), (c - a) * (1 / 24)
            self._export[arch] = (b - per_batch * 3 - per_image * 24, per_batch, per_image)
        fixed, per_batch, per_image = self._export[arch]
        _, val, test, train_eval = sizes or DATASET_SIZES[hp.dataset]
        parts = (train_eval, val, test)
        batches = sum(math.ceil(n / self.config.eval_batch_size) for n in parts)
        work = fixed + per_batch * batches + per_image * sum(parts)
        return dataclasses.replace(work, eager=work.kernels)
