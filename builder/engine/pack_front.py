"""The front of a pack step: what every lane of a pack (:mod:`builder.engine.pack_lane`) needs before its forward
pass, made once for the whole pack rather than once per lane.

A step's front is per network or per image, never per architecture: the batches (one gather per data set), their
conversion to floats, the keyed draws (:mod:`builder.engine.keyed_random`: dropout bits and augmentation uniforms,
one hash over every element the pack draws), and the augmentation of every augmented network's batch
(:func:`builder.engine.augment.apply_params` on all their images at once). So its kernels do not grow with the
number of lanes (shapes): with ``nws_main``'s 972 shapes a pack of 256 networks runs about 30 lanes a step, and
the front used to be launched by each (about a third of a lane step's kernels, ``benchmarks/zoo_projection.py``).
Each lane then reads its members' images, labels and dropout masks as views of the front's tensors.

Every value is the one a lane made for itself before: an element of a network's draw stream is a pure function
of (its stream, its index) whatever the layout (:func:`~builder.engine.keyed_random.words_at`); the augmentation
acts per image, the colour parameters per batch, gathered from the same uniforms
(:func:`~builder.engine.augment.params_at`); the noise is each member's own generator's draw, of its batch's shape.
So a network's bytes do not change (``tests/test_pack.py``, ``tests/test_fidelity.py``).

The step is staged first (:meth:`Front._stage`: batch indices, stream words, noise, host-side decisions written
into fixed tensors), then computed (:meth:`Front._compute`: device work only), so one CUDA graph can replay the
pack's whole step while its composition lasts (``cuda_graphs``).

Example:
    >>> import torch
    >>> from builder.engine.member import DeviceImages, Member
    >>> from builder.engine.pack_lane import Lane
    >>> from builder.engine.sources import load_images
    >>> from builder.engine.space import get_preset
    >>> from builder.engine.train_config import TrainConfig
    >>> config, data = TrainConfig(), DeviceImages(load_images("digits"), "cpu")
    >>> hps = [get_preset("demo").sample(0, i) for i in range(2)]
    >>> lanes = []
    >>> for i, hp in enumerate(hps):
    ...     lanes.append(Lane(config, torch.device("cpu"), torch.float32))
    ...     lanes[-1].restack([], [Member(hp, data, 0, i, config, torch.float32)])
    >>> front = Front(lanes, config, torch.device("cpu"), torch.float32)
    >>> front.step(); [m.steps for lane in lanes for m in lane.members]
    [1, 1]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from builder.engine.augment import apply_params, params_at, uniforms_per_batch
from builder.engine.keyed_random import (
    copy_from_host_,
    element_words,
    mask_words,
    stream_words,
    to_uniform,
    words_at,
)
from builder.engine.train_config import TrainConfig
from weightzoo.model import DROPOUT

if TYPE_CHECKING:
    from builder.engine.pack_lane import Lane

__all__ = ["GRAPH_WARMUP", "Front"]

#: Eager steps of a new pack composition before its step is captured as a CUDA graph (``cuda_graphs``).
GRAPH_WARMUP = 3


class _Masks(NamedTuple):
    """Where a lane's dropout masks come from: its members' words ``first`` to ``end`` of the pack's bits (as many
    each when they all have the lane's units), and, in a lane that pads dense layers, the positions of each
    member's bits in the lane's layout within them (``index`` [P, B, units])."""

    first: int
    end: int
    members: int
    batch: int
    units: list[int]
    index: torch.Tensor | None


def _tensor(values: list[np.ndarray] | np.ndarray, device: torch.device) -> torch.Tensor:
    array = np.concatenate(values) if isinstance(values, list) else values
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64)).to(device)


class Front:
    """The shared front of a pack's step over ``lanes`` (their compositions fixed: build a new one when a lane is
    re-stacked) and the step itself (:meth:`step`)."""

    def __init__(self, lanes: Sequence[Lane], config: TrainConfig, device: torch.device, dtype: torch.dtype,
                 cuda_graphs: bool = False):  # fmt: skip
        self.lanes = [lane for lane in lanes if len(lane)]
        self.config, self.device, self.dtype = config, device, dtype
        self.cuda_graphs = cuda_graphs and device.type == "cuda"
        self._graph: torch.cuda.CUDAGraph | None = None
        self._warm = 0
        dev = device
        self.members = [m for lane in self.lanes for m in lane.members]
        if not self.members:
            return
        image = self.members[0].data.train_x.shape[1:]
        # Image rows: lane after lane, member after member, a batch each.
        first_row, row = [], 0
        for lane in self.lanes:
            for _ in lane.members:
                first_row.append(row)
                row += lane.batch_size
        self.n_images = row
        sizes = [lane.batch_size for lane in self.lanes for _ in lane.members]
        # One gather per data set: its members and the image rows they fill.
        self.gathers = []
        for name in sorted({m.data.name for m in self.members}):
            chosen = [g for g, m in enumerate(self.members) if m.data.name == name]
            rows = _tensor([first_row[g] + np.arange(sizes[g]) for g in chosen], dev)
            self.gathers.append((self.members[chosen[0]].data, chosen, rows))
        self.indices = [torch.empty(len(rows), dtype=torch.int64, device=dev) for _, _, rows in self.gathers]
        # The draws: every member's dropout words (member after member), then every augmented member's augmentation
        # uniforms; element j of member g's stream, for all of them in one hash. A member draws one bit per unit it
        # has; in a lane whose members all have its units, the lane's masks are a view of the bits, in a lane that
        # pads dense layers (TrainConfig.fc_width) they are gathered into its layout (padded units: any bit, as
        # their activations are exact zeros).
        elements, streams, self.mask_spans, start = [], [], [], 0
        n_words = []  # each member's dropout words
        for lane in self.lanes:
            bs, padded = lane.batch_size, list(lane.arch.fc_units)
            own = [list(m.hp.architecture.fc_units) for m in lane.members]
            first = start
            for units in own:
                n_words.append(mask_words(bs, units))
                start += n_words[-1]
            uniform = all(units == padded for units in own)
            # a padding lane's positions within its own bits are made once per composition (Lane.mask_index)
            index = None if uniform else lane.mask_index()
            self.mask_spans.append(_Masks(first, start, len(lane), bs, padded, index))
        for g, words in enumerate(n_words):
            elements.append(np.arange(words))
            streams.append(np.full(words, g))
        self.n_mask_words = start
        self.augmented = [g for g, m in enumerate(self.members) if m.hp.augmentation]
        geo, col, aug_rows, u_start = [], [], [], 0
        for g in self.augmented:
            n, bs = uniforms_per_batch(sizes[g]), sizes[g]
            elements.append(n_words[g] + np.arange(n))
            streams.append(np.full(n, g))
            geo.append(u_start + np.arange(6 * bs).reshape(bs, 6))
            col.append(np.broadcast_to(u_start + 6 * bs + np.arange(5), (bs, 5)))
            aug_rows.append(first_row[g] + np.arange(bs))
            u_start += n
        self.streams = _tensor(streams, dev)
        self.hashed = element_words(_tensor(elements, dev))
        self.shifts = torch.arange(32, dtype=torch.int64, device=dev)
        if self.augmented:
            self.geo, self.col = _tensor(geo, dev).view(-1, 6), _tensor(col, dev).view(-1, 5)
            self.aug_rows = _tensor(aug_rows, dev)
            self.all_augmented = len(self.aug_rows) == self.n_images
        # The step's inputs, written in place before each step (:meth:`_stage`), read by :meth:`_compute`.
        self.words = torch.empty((len(self.members), 2), dtype=torch.int64, device=dev)
        n_noise = sum(sizes[g] for g in self.augmented)
        self.noise = torch.empty((n_noise, *image), dtype=dtype, device=dev)
        self.step_keys = [m.step_key for m in self.members]

    def step(self) -> None:
        """One training step of every member of every lane (its next batch); advances every member's stream
        position. With the released evaluation, each lane first measures the batches of its members whose epoch is
        under way (:meth:`~builder.engine.pack_lane.Lane.released_step`)."""
        if not self.members:
            return
        if self.config.evaluation == "released":
            for lane in self.lanes:
                lane.released_step()
        self._stage()  # after the released passes, which draw from the same generators first
        if self.cuda_graphs:
            self._graph_step()
        else:
            self._compute()
        for m in self.members:
            m.steps += 1

    def _stage(self) -> None:
        """Write this step's inputs into the fixed tensors: each member's batch indices (from its epoch order), its
        stream words (:func:`~builder.engine.keyed_random.stream_words`, on the host), each augmented member's
        noise from its own generator."""
        members = self.members
        for (_, chosen, _), out in zip(self.gathers, self.indices, strict=True):
            parts = []
            for g in chosen:
                m, bs = members[g], members[g].batch_size
                parts.append(m.order[m.batch * bs : (m.batch + 1) * bs])
            torch.cat(parts, out=out)
        copy_from_host_(self.words, stream_words(self.step_keys, [m.steps for m in members]))
        start = 0
        for g in self.augmented:
            m = members[g]
            bs = m.batch_size
            out = self.noise[start : start + bs]
            torch.randn(out.shape, generator=m.aug_gen, dtype=out.dtype, device=m.aug_gen.device, out=out)
            start += bs

    def inputs(self) -> list[tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]]:
        """The step's device work before the lanes: per lane, its members' images ([P*B, 3, H, W] floats, augmented
        where they augment), labels [P*B] and dropout masks (per dense layer [P, B, units], 0 or 2), views of
        tensors made once for the pack."""
        x, y = self._batch()
        x = x.to(self.dtype).div_(255)
        words = words_at(self.words.index_select(0, self.streams), self.hashed)  # each element's stream, then it
        bits = (words[: self.n_mask_words, None] >> self.shifts) & 1
        kept = bits.to(self.dtype) * (1 / (1 - DROPOUT))
        if self.augmented:
            params = params_at(to_uniform(words[self.n_mask_words :]), self.geo, self.col)
            if self.all_augmented:
                x = apply_params(x, params, self.noise)
            else:
                x[self.aug_rows] = apply_params(x[self.aug_rows], params, self.noise)
        out, row = [], 0
        flat = kept.view(-1)
        for span in self.mask_spans:
            P, bs, units = span.members, span.batch, span.units
            total = sum(units)
            if span.index is None:  # every member has the lane's units: [P, words] of equal rows
                rows = kept[span.first : span.end].view(P, -1)[:, : bs * total].view(P, bs, total)
            else:
                rows = flat[span.first * 32 : span.end * 32][span.index]
            n = P * bs
            out.append((x[row : row + n], y[row : row + n], list(rows.split(units, dim=2))))
            row += n
        return out

    def _compute(self) -> None:
        """The step's device work, from the staged inputs: the front (:meth:`inputs`), then every lane's forward
        pass, backward pass and optimizer (no value read back to the host, no tensor made from host data)."""
        for lane, (x, y, masks) in zip(self.lanes, self.inputs(), strict=True):
            lane.compute(x, y, masks)

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The members' staged batches, [N, 3, H, W] uint8 and [N] labels, lane after lane, member after member."""
        if len(self.gathers) == 1:
            data, idx = self.gathers[0][0], self.indices[0]
            return data.train_x[idx], data.train_y[idx]
        first = self.gathers[0][0]
        x = torch.empty((self.n_images, *first.train_x.shape[1:]), dtype=first.train_x.dtype, device=self.device)
        y = torch.empty(self.n_images, dtype=first.train_y.dtype, device=self.device)
        for (data, _, rows), idx in zip(self.gathers, self.indices, strict=True):
            x[rows], y[rows] = data.train_x[idx], data.train_y[idx]
        return x, y

    def _graph_step(self) -> None:
        """:meth:`_compute` as a CUDA graph: ``GRAPH_WARMUP`` eager steps on a side stream after each change of
        composition (real steps), then captured once and replayed every step until the pack changes."""
        current = torch.cuda.current_stream(self.device)
        if self._graph is None and self._warm < GRAPH_WARMUP:
            side = torch.cuda.Stream(self.device)
            side.wait_stream(current)
            with torch.cuda.stream(side):
                self._compute()
            current.wait_stream(side)
            self._warm += 1
            return
        if self._graph is None:
            self._graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self._graph):
                self._compute()
        self._graph.replay()

    def fixed_tensors(self) -> list[torch.Tensor]:
        """Every tensor :meth:`_compute` may read that it did not make: the staged inputs, the layout, the data sets
        and the lanes' state (what a CUDA graph replays from fixed addresses)."""
        if not self.members:
            return []
        out = [self.words, self.noise, self.streams, self.hashed, self.shifts, *self.indices]
        if self.augmented:
            out += [self.geo, self.col, self.aug_rows]
        out += [span.index for span in self.mask_spans if span.index is not None]
        for data, _, rows in self.gathers:
            out += [data.train_x, data.train_y, rows]
        for lane in self.lanes:
            out += [*lane.state.values(), *lane.flat.values(), lane.lr, lane.lr32, lane.loss_seed]
            out += [] if lane.grad_mask is None else [lane.grad_mask]
        return out
