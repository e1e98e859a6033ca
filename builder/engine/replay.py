"""The full zoo's schedule replayed: the generator's packs, admissions and departures, each pack step and export
charged the work :mod:`builder.engine.projection` counts from the engine.

The replay draws the zoo's own hyper-parameters (``nws_fixed`` and ``nws_main``, by (zoo seed, network id)), forms
the packs the generator forms (:func:`builder.engine.pack_schedule.form_packs`, ``QUEUE_DEPTH`` times the width)
and replays each pack's admissions and departures as :func:`builder.engine.pack.iter_pack` makes them, with every
network's stop epoch drawn from a stated distribution (the original's networks stopped early, most between 80 and
150 epochs). Between two departures the lanes do not change, so the replay advances from one to the next and
charges the pack's front and every lane the work of one of their steps times the steps taken.

Example:
    >>> min(stop_epochs(1000)) >= 80 and max(stop_epochs(1000)) <= 150
    True
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np

from builder.engine.pack_schedule import QUEUE_DEPTH, admissions, form_packs, member_bytes, pack_key
from builder.engine.projection import DATASET_SIZES, Device, Work, WorkCounter
from weightzoo.hparams import HyperParameters

__all__ = ["MERGES", "MERGE_KERNELS", "Projection", "merged", "project", "stop_epochs"]

#: Shape merges a projection can assume (:func:`project`), not built in the engine: each pads one architecture
#: field to the largest value nws_main draws (zero weights, gradients masked), so networks that differ only there
#: share a lane. (Built, counted by ``WorkCounter``: ``TrainConfig.fc_width`` and ``TrainConfig.filter_size``.)
MERGES: dict[str, tuple[str, int]] = {
    "conv_width": ("width_conv", 12),
}
#: Kernels a merged lane is assumed to add per step: the dropout bits gathered into the padded layout, and the
#: padded weights' gradients masked (one multiply of the lane's gradient buffer).
MERGE_KERNELS = 2


def stop_epochs(n: int, seed: int = 0, low: int = 80, high: int = 150) -> list[int]:
    """``n`` stop epochs drawn uniformly from ``low..high`` (the stated distribution of the projection).

    Example:
        >>> min(stop_epochs(1000)) >= 80 and max(stop_epochs(1000)) <= 150
        True
    """
    return [int(e) for e in np.random.default_rng(seed).integers(low, high + 1, n)]


@dataclass
class Projection:
    """The totals of a replayed schedule: training (lane steps) and exports, network-steps, and per launch mode and
    precision the roofline seconds with the seconds each bound dominated."""

    networks: int = 0
    network_steps: int = 0
    lane_steps: int = 0
    pack_steps: int = 0
    train: Work = field(default_factory=Work)
    exports: Work = field(default_factory=Work)
    seconds: Counter = field(default_factory=Counter)  # (mode, precision) -> seconds
    bound_seconds: Counter = field(default_factory=Counter)  # (mode, precision, bound) -> seconds

    @property
    def ops_per_network_step(self) -> float:
        """Training kernels per network-step (what launch-bound training pays per network and step)."""
        return self.train.kernels / max(self.network_steps, 1)

    def hours(self, mode: str, precision: str) -> float:
        return self.seconds[mode, precision] / 3600

    def dominant(self, mode: str, precision: str) -> str:
        """The bound that dominated the most seconds."""
        bounds = {b: s for (m, p, b), s in self.bound_seconds.items() if (m, p) == (mode, precision)}
        return max(bounds, key=bounds.__getitem__)

    def merge(self, other: Projection) -> None:
        """Add another projection's totals to this one."""
        self.networks += other.networks
        self.network_steps += other.network_steps
        self.lane_steps += other.lane_steps
        self.pack_steps += other.pack_steps
        self.train, self.exports = self.train + other.train, self.exports + other.exports
        self.seconds.update(other.seconds)
        self.bound_seconds.update(other.bound_seconds)

    def add(self, work: Work, times: int, device: Device) -> None:
        """Charge ``work`` done ``times`` times, under every launch mode and precision of ``device``."""
        for mode, launch, graph in device.modes():
            for precision, peak in device.peak_flops.items():
                seconds, bound = work.seconds(launch, device.bandwidth, peak, graph)
                self.seconds[mode, precision] += seconds * times
                self.bound_seconds[mode, precision, bound] += seconds * times


def _epoch_steps(hp: HyperParameters) -> int:
    return DATASET_SIZES[hp.dataset][0] // hp.batch_size


class _Replay:
    """One pack's admissions and departures, as :func:`builder.engine.pack.iter_pack` makes them."""

    def __init__(self, hps: Mapping[int, HyperParameters], ids: Sequence[int], stops: Mapping[int, int],
                 counter: WorkCounter, width: int, budget_bytes: float, out: Projection, device: Device,
                 epoch_steps: Mapping[int, int] | None, shapes: Mapping[int, HyperParameters] | None = None,
                 merged: bool = False):  # fmt: skip
        self.hps, self.stops, self.counter, self.out, self.device = hps, stops, counter, out, device
        #: what each network trains as in its lane (its own shape, or the padded one of a merge)
        self.shapes, self.merged = shapes or hps, merged
        self.epoch_steps = epoch_steps or {nid: _epoch_steps(hps[nid]) for nid in ids}
        self.queue, self.width, self.budget = deque(ids), width, budget_bytes
        self.left: dict[int, int] = {}  # network id -> steps to go (its epochs, and the step read one late)
        self.lanes: dict[tuple, list[int]] = {}
        self.works: dict[tuple, Work] = {}
        self.front = Work()  # the pack step's shared front (builder.engine.pack_front)
        self.used = 0.0

    def _key(self, nid: int) -> tuple:
        """The lane network ``nid`` trains in (:func:`~builder.engine.pack_schedule.pack_key`, with the counter's
        dense-layer padding)."""
        return pack_key(self.shapes[nid], self.counter.config.fc_width, self.counter.config.filter_size)

    def admit(self) -> list[int]:
        """Queued networks for the free slots, by the pack's own rule (:func:`~builder.engine.pack_schedule.
        admissions`)."""
        room = max(0, self.width - len(self.left))
        needs = [member_bytes(*self._key(nid)) for nid in islice(self.queue, room)]
        taken = needs[: admissions(needs, len(self.left), self.budget - self.used, self.width)]
        self.used += sum(taken)
        return [self.queue.popleft() for _ in taken]

    def update(self, done: Sequence[int]) -> None:
        """Networks ``done`` leave (their memory freed), queued ones take the free slots; the lanes they touch
        are re-counted."""
        touched = set()
        for nid in done:
            key = self._key(nid)
            self.lanes[key].remove(nid)
            self.used -= member_bytes(*key)
            touched.add(key)
        for nid in self.admit():
            hp, exports = self.hps[nid], self.stops[nid] + 1
            self.left[nid] = self.stops[nid] * self.epoch_steps[nid] + 1
            self.lanes.setdefault(self._key(nid), []).append(nid)
            touched.add(self._key(nid))
            self.out.networks += 1
            export = self.counter.export(hp)
            self.out.exports = self.out.exports + export * exports
            self.out.add(export, exports, self.device)
        for key in touched:
            if self.lanes[key]:
                shapes = [self.shapes[i] for i in self.lanes[key]]
                self.works[key] = self.counter.lane_step(shapes)
                if self.merged:  # the assumed cost of a merged lane (MERGE_KERNELS; the gradient mask's traffic)
                    masks = sum(3 * 4 * shape.architecture.num_params for shape in shapes)
                    self.works[key] = self.works[key] + Work(MERGE_KERNELS, masks)
            else:
                del self.lanes[key], self.works[key]
        if self.left:
            lanes = [[self.shapes[i] for i in ids] for ids in self.lanes.values()]
            self.front = self.counter.front_step([self.shapes[i] for i in self.left], self.counter.padded_lanes(lanes))

    def run(self, progress: Any = None) -> None:
        """From the first admissions to the last departure, one interval between departures at a time."""
        self.update([])
        while self.left:
            steps = min(self.left.values())
            self.out.train = self.out.train + self.front * steps
            self.out.add(self.front, steps, self.device)
            self.out.pack_steps += steps
            for work in self.works.values():
                self.out.train = self.out.train + work * steps
                self.out.add(work, steps, self.device)
                self.out.lane_steps += steps
            self.out.network_steps += steps * len(self.left)
            done = [nid for nid, n in self.left.items() if n == steps]
            self.left = {nid: n - steps for nid, n in self.left.items() if n > steps}
            self.update(done)
            if progress is not None:
                progress.update(len(done))


def project(
    hps: Mapping[int, HyperParameters],
    stops: Mapping[int, int],
    counter: WorkCounter,
    device: Device | None = None,
    width: int = 256,
    budget_bytes: float = math.inf,
    progress: Any = None,
    epoch_steps: Mapping[int, int] | None = None,
    merges: Sequence[str] = (),
) -> Projection:
    """Replay the training of ``hps`` (network id -> hyper-parameters; each stops after ``stops[id]`` epochs of
    ``epoch_steps[id]`` steps, by default its data set's :data:`DATASET_SIZES` over its batch) in packs of
    ``width`` as the generator forms and runs them, and add up the counted work (``progress``: a tqdm bar,
    advanced per network done). ``merges`` (:data:`MERGES`): assume networks differing only in those fields
    share lanes, padded to the largest value (counted as lanes of the padded shape, plus ``MERGE_KERNELS`` per
    lane step and the gradient mask's traffic; not built in the engine).

    Example:
        >>> from builder.engine.space import get_preset
        >>> hps = {i: get_preset("nws_fixed").sample(0, i) for i in range(3)}
        >>> p = project(hps, {i: 1 for i in hps}, WorkCounter(), width=2)
        >>> p.networks, p.network_steps == sum(_epoch_steps(hp) + 1 for hp in hps.values())
        (3, True)
    """
    device, out = device or Device(), Projection()
    shapes = {nid: merged(hp, merges) for nid, hp in hps.items()}
    epoch_steps = epoch_steps or {nid: _epoch_steps(hp) for nid, hp in hps.items()}
    for ids in form_packs(shapes, width * QUEUE_DEPTH, counter.config.fc_width, counter.config.filter_size):
        _Replay(hps, ids, stops, counter, width, budget_bytes, out, device, epoch_steps, shapes, bool(merges)).run(
            progress
        )
    return out


def merged(hp: HyperParameters, merges: Sequence[str] = ()) -> HyperParameters:
    """The shape ``hp`` would train as in a lane under the assumed ``merges`` (:data:`MERGES`).

    Example:
        >>> from builder.engine.space import get_preset
        >>> hp = get_preset("nws_fixed").sample(0, 0)
        >>> merged(hp, ["conv_width"]).architecture.width_conv, merged(hp).width_conv
        (12, 8)
    """
    unknown = sorted(set(merges) - set(MERGES))
    if unknown:
        raise ValueError(f"unknown merge {unknown[0]!r}; expected one of: {', '.join(MERGES)}")
    return dataclasses.replace(hp, **{MERGES[m][0]: MERGES[m][1] for m in merges})
