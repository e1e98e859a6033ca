"""One lane of a pack (:mod:`builder.engine.pack`): the networks of one architecture and batch size, their parameters,
batch-norm statistics and optimizer slots stacked ``[P, ...]``, trained one step at a time in one set of kernels.

- Convolutions are one grouped convolution (``groups=P``) on ``[B, P*C, H, W]``; batch norm is per (network,
  channel) on that layout (:mod:`builder.engine.batch_norm`); dense layers are ``baddbmm``.
- What a step needs before the forward pass (the batches, the keyed draws, the augmentation) is made once for the
  whole pack by its front (:mod:`builder.engine.pack_front`); a lane reads its members' images, labels and
  dropout masks as views (:meth:`Lane.compute`). A lane stepped alone is a pack of itself (:meth:`Lane.step`).
- Trainable tensors, their two optimizer slots and their gradients live in one ``[P, N]`` buffer each (the
  forward pass takes views by one split), so the three TF1 optimizers (:mod:`weightzoo.optim`) are a few kernels
  per optimizer on contiguous rows (members are kept sorted by optimizer and activation: :func:`member_order`),
  with per-network learning rates. Activations differing between members are applied per run of equal ones, each
  into its slice of one output (:mod:`builder.engine.mixed_activation`).
- A lane may hold networks of other shapes padded to its own (``TrainConfig.fc_width``: dense units added;
  ``TrainConfig.filter_size``: kernels centred in larger ones, their padding's gradients masked): each computes its
  own sums plus exact zeros (:func:`_placement`).
- With ``TrainConfig.compile``, each layer's batch norm and activation run as one compiled region
  (:mod:`builder.engine.fused`; the same arithmetic up to rounding, a member's bytes still the same in any pack).

Example:
    >>> _runs(["adam", "adam", "sgd_momentum"])
    [('adam', 0, 2), ('sgd_momentum', 2, 3)]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from builder.engine import fused
from builder.engine.augment import augment
from builder.engine.batch_norm import batch_norm_train
from builder.engine.keyed_random import copy_from_host_, mask_words
from builder.engine.member import Member
from builder.engine.mixed_activation import mixed_activation
from builder.engine.pack_front import Front
from builder.engine.train_config import TrainConfig
from weightzoo.hparams import HyperParameters
from weightzoo.optim import ADAM_BETAS, adam_alpha, adam_update_, momentum_update_, rmsprop_update_

__all__ = ["ACTIVATION_RUN_KERNELS", "ADAM_STEP_KERNELS", "OPTIMIZER_RUN_KERNELS", "Lane", "member_order", "sort_first"]

#: Input channels per member below which a grouped convolution is padded with zero channels (see _grouped_conv).
MIN_GROUP_CHANNELS = 4


def _grouped_conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, padding: int) -> torch.Tensor:
    """Per-member convolutions as one grouped convolution: ``x`` [B, P*Cin, H, W], ``w`` [P, Cout, Cin, k, k].

    A member's result must not depend on its pack (see :meth:`Lane._forward`). Members with fewer than
    ``MIN_GROUP_CHANNELS`` input channels (the RGB input) get zero channels appended, and their kernels zero
    slices: the same sums plus exact zeros, on a path whose rounding does not change with the group count (at 3
    input and 8 output channels per group, oneDNN's forward kernel rounds differently from 3 groups on).
    """
    P, c_in = w.shape[0], w.shape[2]
    if c_in < MIN_GROUP_CHANNELS:
        extra = MIN_GROUP_CHANNELS - c_in
        x = F.pad(x.view(x.shape[0], P, c_in, *x.shape[2:]), (0, 0, 0, 0, 0, extra)).flatten(1, 2)
        w = F.pad(w, (0, 0, 0, 0, 0, extra))
    return F.conv2d(x, w.flatten(0, 1), b.flatten(), padding=padding, groups=P)


def _is_kernel(name: str, shape: Sequence[int]) -> bool:
    """A convolution kernel [C_out, C_in, k, k] (what ``TrainConfig.filter_size`` centres in a larger one)."""
    return name.startswith("conv") and len(shape) == 4


def _placement(name: str, own: Sequence[int], lane: Sequence[int]) -> tuple[slice, ...]:
    """Where a member's tensor ``name`` of its own shape lies in its lane's (padded) shape: the leading block (dense
    units added: ``TrainConfig.fc_width``), but a convolution kernel centred in the lane's larger one
    (``TrainConfig.filter_size``: the same sums, with the convolution padded by half the larger size).

    Example:
        >>> _placement("fc0.weight", (2, 3), (4, 3)), _placement("conv0.weight", (8, 3, 3, 3), (8, 3, 7, 7))[2:]
        ((slice(0, 2, None), slice(0, 3, None)), (slice(2, 5, None), slice(2, 5, None)))
    """
    out = [slice(0, k) for k in own]
    if _is_kernel(name, own):
        for d in (2, 3):
            start = (lane[d] - own[d]) // 2
            out[d] = slice(start, start + own[d])
    return tuple(out)


def _padded(t: torch.Tensor, shape: tuple[int, ...], name: str = "") -> torch.Tensor:
    """``t`` placed in a zero tensor of ``shape`` (itself when the shapes agree; :func:`_placement`): a member's
    tensor ``name`` in its lane's padded layout.

    Example:
        >>> _padded(torch.ones(2, 1), (3, 2)).tolist()
        [[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]]
    """
    if tuple(t.shape) == tuple(shape):
        return t
    out = t.new_zeros(shape)
    out[_placement(name, t.shape, shape)] = t
    return out


def _member_mask_index(first_bit: int, batch: int, units: list[int], padded: list[int]) -> np.ndarray:
    """Where a member's dropout bits lie ([batch, sum(padded)] positions in its lane's bits, from ``first_bit``): its
    draw is [batch, sum(units)], layer after layer; a padded layer's extra units take its first bit."""
    own = first_bit + np.arange(batch * sum(units)).reshape(batch, sum(units))
    parts, offset = [], 0
    for u, p in zip(units, padded, strict=True):
        block = np.full((batch, p), first_bit, dtype=np.int64)
        block[:, :u] = own[:, offset : offset + u]
        parts.append(block)
        offset += u
    return np.concatenate(parts, axis=1)


def _mean_pairs(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    """The mean (loss, accuracy) of per-batch figures, as the original averaged them."""
    return (sum(p[0] for p in pairs) / len(pairs), sum(p[1] for p in pairs) / len(pairs))


def _runs(keys: Sequence[str]) -> list[tuple[str, int, int]]:
    """Maximal runs of equal keys: (key, start, end)."""
    runs: list[tuple[str, int, int]] = []
    for i, k in enumerate(keys):
        if runs and runs[-1][0] == k:
            runs[-1] = (k, runs[-1][1], i + 1)
        else:
            runs.append((k, i, i + 1))
    return runs


#: Kernels of one run of members sharing an optimizer in a step's update (:meth:`Lane._optimize`; counted:
#: ``tests/test_pack.py``), plus those of a step with any Adam member (its step sizes and beta powers, once), and
#: of one run sharing an activation, per layer (forward and backward: one kernel each,
#: :func:`~builder.engine.mixed_activation.mixed_activation`).
OPTIMIZER_RUN_KERNELS = {"adam": 12, "rmsprop": 9, "sgd_momentum": 3}
ADAM_STEP_KERNELS = 7
ACTIVATION_RUN_KERNELS = 2


def sort_first(hps: Sequence[HyperParameters], compiled: bool = False) -> str:
    """Which field a lane of networks ``hps`` sorts its members by first, ``optimizer`` or ``activation`` (then
    the other, then the network id): whichever launches fewer kernels per step, as the runs of equal optimizers
    and of equal activations each cost theirs (:data:`OPTIMIZER_RUN_KERNELS`, :data:`ACTIVATION_RUN_KERNELS` per
    layer); ``compiled`` (``TrainConfig.compile``): the optimizer, as a compiled region applies every member's
    activation at once. A member's bytes do not depend on the order (nor on its lane's other members).

    Example:
        >>> import dataclasses
        >>> from builder.engine.space import get_preset
        >>> hp = get_preset("nws_main").sample(0, 0)
        >>> sort_first([dataclasses.replace(hp, optimizer=o) for o in ("adam", "rmsprop")])
        'optimizer'
        >>> sort_first([dataclasses.replace(hp, optimizer=o, activation=a)
        ...             for o in ("adam", "rmsprop", "sgd_momentum") for a in ("elu", "relu", "tanh")])
        'activation'
    """
    if compiled:
        return "optimizer"
    layers = sum(hps[0].architecture.blocks) + len(hps[0].architecture.fc_units)

    def kernels(first: str) -> int:
        order = sorted(hps, key=lambda hp: _sort_key(hp, first))
        opt = sum(OPTIMIZER_RUN_KERNELS[o] for o, _, _ in _runs([hp.optimizer for hp in order]))
        return opt + ACTIVATION_RUN_KERNELS * layers * len(_runs([hp.activation for hp in order]))

    return "activation" if kernels("activation") < kernels("optimizer") else "optimizer"


def _sort_key(hp: HyperParameters, first: str) -> tuple[str, str]:
    return (hp.activation, hp.optimizer) if first == "activation" else (hp.optimizer, hp.activation)


def member_order(members: Sequence[Member], compiled: bool = False) -> list[Member]:
    """A lane's members in the order it stacks them (:func:`sort_first`)."""
    if not members:
        return []
    first = sort_first([m.hp for m in members], compiled)
    return sorted(members, key=lambda m: (*_sort_key(m.hp, first), m.id))


class Lane:
    """The stacked state of the members of one (architecture, batch size) now training: parameters (leaves),
    batch-norm statistics, optimizer slots, per-member scalars and stream positions."""

    #: How a layer's compiled region runs (``TrainConfig.compile``): compiled by Inductor; the projection counts a
    #: step with a stand-in (:func:`builder.engine.fused.counted`).
    region: Callable[[Callable[..., Any]], Callable[..., Any]] = staticmethod(fused.compiled)

    def __init__(self, config: TrainConfig, device: torch.device, dtype: torch.dtype, cuda_graphs: bool = False):
        self.config, self.device, self.dtype = config, device, dtype
        self.members: list[Member] = []
        self.state: dict[str, torch.Tensor] = {}
        self.flat: dict[str, torch.Tensor] = {}
        #: Stepped alone (:meth:`step`): replay each step as a CUDA graph (see :mod:`builder.engine.pack_front`).
        self.cuda_graphs = cuda_graphs and device.type == "cuda"
        self._front: Front | None = None
        self._mask_index: torch.Tensor | None = None
        self._codes: dict[tuple, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.members)

    def restack(self, keep: list[Member], new: list[Member]) -> None:
        """Re-form the stacks for ``keep`` (members already here) plus ``new`` (fresh, initial state)."""
        old = {id(m): i for i, m in enumerate(self.members)}
        members = member_order(keep + new, self.config.compile)
        self.members = members
        if not members:
            self.state, self.flat = {}, {}
            return
        arch = members[0].lane_arch  # the shape every member trains as (its own, or dense layers padded)
        names = [p.name for p in arch.params]
        shapes = {p.name: p.shape for p in arch.params}
        f32, dev = torch.float32, self.device

        def fresh(m: Member, key: str) -> torch.Tensor:
            kind, _, name = key.partition(":")
            if kind == "p":
                return _padded(m.initial[name], shapes[name], name)
            if kind == "s1":  # adam m, rmsprop ms (ones, as TF1), momentum buffer
                init = torch.ones_like if m.hp.optimizer == "rmsprop" else torch.zeros_like
                return _padded(init(m.initial[name]), shapes[name], name)
            if kind == "s2":  # adam v
                return torch.zeros(shapes[name], dtype=m.initial[name].dtype, device=dev)
            if key == "b1p":
                return torch.tensor(ADAM_BETAS[0], dtype=f32, device=dev)
            if key == "b2p":
                return torch.tensor(ADAM_BETAS[1], dtype=f32, device=dev)
            return torch.zeros((), dtype=f32, device=dev)  # loss_sum

        trainable = [n for n in names if not n.endswith(("running_mean", "running_var"))]
        keys = [f"p:{n}" for n in names if n not in trainable] + ["b1p", "b2p", "loss_sum"]
        state = {}
        for key in keys:
            parts = [self.state[key][old[id(m)]] if id(m) in old else fresh(m, key) for m in members]
            state[key] = torch.stack(parts).detach()
        # Trainable tensors, their optimizer slots and gradients: one [P, N] buffer each, so the optimizer is a few
        # kernels per optimizer run, not a few per tensor (the forward pass takes views).
        flat = {}
        for kind in ("p", "s1", "s2"):
            rows = []
            for m in members:
                if id(m) in old:
                    rows.append(self.flat[kind][old[id(m)]])
                else:
                    rows.append(torch.cat([fresh(m, f"{kind}:{n}").reshape(-1) for n in trainable]))
            flat[kind] = torch.stack(rows).detach()
        flat["p"].requires_grad_(True)
        # Kernels centred in larger ones (TrainConfig.filter_size): the padding's gradients are not zero (it sees
        # real inputs), so they are masked to exact zeros each step, and the padding stays zero under every optimizer.
        padded = [n for n in trainable if _is_kernel(n, shapes[n])]
        own = [{p.name: p.shape for p in m.hp.architecture.params} for m in members]
        self.grad_mask = None
        if any(o[n] != shapes[n] for o in own for n in padded):
            rows = []
            for o in own:
                parts = [_padded(torch.ones(o[n], dtype=self.dtype), shapes[n], n) if n in padded
                         else torch.ones(shapes[n], dtype=self.dtype) for n in trainable]  # fmt: skip
                rows.append(torch.cat([p.reshape(-1) for p in parts]))
            self.grad_mask = torch.stack(rows).to(dev)
        spans, start = {}, 0
        for spec in arch.params:
            if spec.name in trainable:
                spans[spec.name] = (start, spec.size, spec.shape)
                start += spec.size
        self.state, self.flat, self.spans = state, flat, spans
        self.names, self.arch = names, arch
        self.batch_size = members[0].batch_size
        self.opt_runs = _runs([m.hp.optimizer for m in members])
        self.act_runs = _runs([m.hp.activation for m in members])
        P = len(members)
        self.loss_seed = torch.ones(P, dtype=self.dtype, device=dev)
        self.lr, self.lr32 = torch.empty(P, dtype=self.dtype, device=dev), torch.empty(P, dtype=f32, device=dev)
        self._front, self._mask_index, self._codes = None, None, {}
        self.lr_changed()

    def mask_index(self) -> torch.Tensor:
        """[P, B, units] positions of each member's dropout bits within the lane's own (member after member,
        :func:`~builder.engine.keyed_random.mask_words` each), in the lane's padded layout; made once per composition
        (a lane that pads dense layers gathers its masks with it: :mod:`builder.engine.pack_front`)."""
        if self._mask_index is None:
            bs, padded, bit, parts = self.batch_size, list(self.arch.fc_units), 0, []
            for m in self.members:
                units = list(m.hp.architecture.fc_units)
                parts.append(_member_mask_index(bit, bs, units, padded))
                bit += mask_words(bs, units) * 32
            self._mask_index = torch.from_numpy(np.stack(parts)).to(self.device)
        return self._mask_index

    def lr_changed(self) -> None:
        """The members' learning rates, into the lane's (fixed) tensors."""
        lrs = [m.lr for m in self.members]
        copy_from_host_(self.lr, torch.tensor(lrs, dtype=self.dtype))
        copy_from_host_(self.lr32, torch.tensor(lrs, dtype=torch.float32))

    @staticmethod
    def _act(x: torch.Tensor, dim: int, width: int, runs: list[tuple[str, int, int]]) -> torch.Tensor:
        """Each member's activation on its slice of ``dim`` (``width`` entries per member; ``runs``: runs of
        members with equal activations)."""
        if len(runs) == 1:
            return fused.ACT[runs[0][0]](x)
        # Each run written into its slice of one output (no concatenation forward or backward).
        return mixed_activation(x, dim, [(e - s) * width for _, s, e in runs], [a for a, _, _ in runs])

    def tensors(self, flat: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Every tensor of the members by name, [P, *shape]: trainable ones as views of ``flat`` (default: the
        parameter buffer, so gradients reach it), batch-norm statistics from their stacks."""
        flat = self.flat["p"] if flat is None else flat
        # One split (its gradient: one concatenation) rather than a slice per tensor (a buffer-sized gradient each).
        parts = dict(zip(self.spans, flat.split([size for _, size, _ in self.spans.values()], dim=1), strict=True))
        return {n: parts[n].unflatten(1, self.spans[n][2]) if n in parts else self.state[f"p:{n}"] for n in self.names}

    def step(self) -> None:
        """One training step of every member alone (a pack of this lane: :class:`~builder.engine.pack_front.Front`,
        which a pack shares between its lanes); advances every member's stream position."""
        if self._front is None:
            self._front = Front([self], self.config, self.device, self.dtype, self.cuda_graphs)
        self._front.step()

    def released_step(self) -> None:
        """The released evaluation's per-step measure: each member whose epoch is under way measures its coming batch
        through the training graph (:meth:`released_pass`; the first batch of an epoch was measured at the export
        before it)."""
        slots = [s for s, m in enumerate(self.members) if m.batch > 0]
        if not slots:
            return
        bs, chosen = self.batch_size, [self.members[s] for s in slots]
        idx = [m.order[m.batch * bs : (m.batch + 1) * bs] for m in chosen]
        x = torch.stack([m.data.train_x[i] for m, i in zip(chosen, idx, strict=True)])
        y = torch.stack([m.data.train_y[i] for m, i in zip(chosen, idx, strict=True)])
        for m, result in zip(chosen, self.released_pass(slots, x, y), strict=True):
            m.train_pass.append(result)

    def compute(self, x: torch.Tensor, y: torch.Tensor, masks: list[torch.Tensor]) -> None:
        """The lane's device work of a step from the front's inputs (:meth:`builder.engine.pack_front.Front.inputs`:
        images [P*B, 3, H, W] as floats, augmented, labels [P*B], dropout masks): forward, backward, optimizer (no
        value read back to the host, no tensor made from host data)."""
        P, bs = len(self.members), self.batch_size
        logits = self._forward(self.tensors(), x, masks, self.act_runs)
        loss = F.cross_entropy(logits.flatten(0, 1), y, reduction="none").view(P, bs).mean(1)
        loss.backward(self.loss_seed)  # each member's own loss, seeded with ones made once (no sum, no seed each step)
        if self.grad_mask is not None:
            self.flat["p"].grad.mul_(self.grad_mask)
        with torch.no_grad():
            self.state["loss_sum"] += loss.detach()
            self._optimize()
        self.flat["p"].grad = None

    @torch.no_grad()
    def released_pass(self, slots: list[int], x: torch.Tensor, y: torch.Tensor) -> list[tuple[float, float]]:
        """Batches through the original's training graph without dropout, as its per-step accuracy and its
        evaluation measured them: each member's ``x[i]`` ([n, 3, H, W] uint8; augmented with a fresh draw of its
        generator when it augments), batch norm on batch statistics, the moving statistics updated. The members in
        ``slots`` only; (loss, accuracy) of each."""
        members = [self.members[s] for s in slots]
        xs = []
        for m, xm in zip(members, x, strict=True):
            xm = xm.to(self.dtype).div_(255)
            xs.append(augment(xm, m.aug_gen) if m.hp.augmentation else xm)
        S = self.tensors(self.flat["p"].detach())
        index = torch.tensor(slots, device=self.device)
        sub = {n: t.index_select(0, index) for n, t in S.items()}
        logits = self._forward(sub, torch.cat(xs), None, _runs([m.hp.activation for m in members]))
        for n in self.names:  # the moving statistics the pass updated, back into the stacks
            if n.endswith(("running_mean", "running_var")):
                self.state[f"p:{n}"].index_copy_(0, index, sub[n])
        out = []
        for row, ym in zip(logits, y, strict=True):
            out.append((float(F.cross_entropy(row, ym)), float((row.argmax(1) == ym).float().mean())))
        return out

    def released_metrics(self, slot: int) -> dict[str, tuple[float, float]]:
        """The member's metrics at an export, measured as the original measured them (``evaluation="released"``):
        the first batch of its coming epoch (its training metrics: the mean over the epoch's batches), then its
        validation and test sets in ``floor(n / batch)`` batches in order (one shorter batch when a set is smaller
        than a batch), the mean of the per-batch figures; every pass updates the moving statistics exported next."""
        m, bs = self.members[slot], self.batch_size
        idx = m.order[:bs]
        m.train_pass.extend(self.released_pass([slot], m.data.train_x[idx][None], m.data.train_y[idx][None]))
        measured = {"train": _mean_pairs(m.train_pass)}
        m.train_pass.clear()
        for part in ("val", "test"):
            x, y = m.eval_sets[part]
            if len(y) == 0:
                measured[part] = (math.nan, math.nan)
                continue
            passes = []
            for b in range(max(len(y) // bs, 1)):
                passes += self.released_pass([slot], x[b * bs : (b + 1) * bs][None], y[b * bs : (b + 1) * bs][None])
            measured[part] = _mean_pairs(passes)
        return measured

    def _forward(self, S: dict[str, torch.Tensor], x: torch.Tensor, masks: list[torch.Tensor] | None,
                 act_runs: list[tuple[str, int, int]]) -> torch.Tensor:  # fmt: skip
        """Logits [P, n, 10] of the members whose tensors are ``S`` ([P, *shape] each) on their batches ``x``
        ([P*n, 3, H, W], member-major): the training graph, batch norm on batch statistics, the moving statistics
        (``S``'s) updated as TensorLayer's layer does, dropout by ``masks`` (None: keep everything).

        Pack independence: a member's bytes are the same in a pack of any width (``builder.reproduce`` retrains a
        network as a pack of one). On CPU, the kernels' rounding changes in two places, both measured with
        ``benchmarks/pack_width.py``: column sums over ``[B, P*n]`` (the dense batch norm's backward) take
        another path when ``P*n`` is below the kernel's vector block (a lane of one member with 16, 20, 24 or 48
        units), and convolutions (a grouped convolution of one group runs another algorithm than of two; and see
        :func:`_grouped_conv`). So a lane of one computes as a lane of two, the second a constant copy of the
        first (its gradients and statistics discarded), and the first convolution is padded. Every other kernel
        gives the same bits at widths 2 to 16.
        """
        arch, momentum = self.arch, 1 - self.config.bn_decay
        P = next(iter(S.values())).shape[0]
        bs = x.shape[0] // P
        twin = P == 1
        if twin:  # a lane of one computes as a lane of two (see above); the twin's copy is a constant
            x, P = torch.cat([x, x]), 2
            masks = None if masks is None else [torch.cat([m, m]) for m in masks]
            S = {
                n: t if n.endswith(("running_mean", "running_var")) else torch.cat([t, t.detach()])
                for n, t in S.items()
            }
        h = x.view(P, bs, *x.shape[1:]).transpose(0, 1).reshape(bs, P * x.shape[1], *x.shape[2:])
        k = arch.filter_size
        layer = 0
        compiled = self.config.compile  # batch norm and activation as compiled regions (builder.engine.fused)
        activation, codes = self._activation(act_runs) if compiled else ("", None)
        for n_layers in arch.blocks:
            for _ in range(n_layers):
                w, b = S[f"conv{layer}.weight"], S[f"conv{layer}.bias"]
                h = _grouped_conv(h, w, b, k // 2).unflatten(1, (P, -1))
                if compiled:
                    h = self._fused(fused.norm_act, h, f"conv{layer}_bn", momentum, S, activation, codes)
                    h = h.flatten(1, 2)
                else:
                    h = self._batch_norm(h, f"conv{layer}_bn", momentum, S).flatten(1, 2)
                    h = self._act(h, 1, w.shape[1], act_runs)
                layer += 1
            h = F.max_pool2d(h, 2, 2)
        C = h.shape[1] // P
        h = h.view(bs, P, C, *h.shape[2:]).permute(1, 0, 3, 4, 2).reshape(P, bs, -1)  # (h, w, c) per member
        for j in range(len(arch.fc_units)):
            w, b = S[f"fc{j}.weight"], S[f"fc{j}.bias"]
            h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
            # [P, bs, n] seen as [bs, P, n] (a view): batch norm over the batch, per member and unit
            if compiled:
                mask = () if masks is None else (masks[j].transpose(0, 1),)
                h = self._fused(fused.act_norm, h.transpose(0, 1), f"fc{j}_bn", momentum, S, activation, codes, *mask)
                h = h.transpose(0, 1)
                continue
            h = self._act(h, 0, 1, act_runs)
            h = self._batch_norm(h.transpose(0, 1), f"fc{j}_bn", momentum, S).transpose(0, 1)
            if masks is not None:
                h = h * masks[j]
        logits = torch.baddbmm(S["out.bias"].unsqueeze(1), h, S["out.weight"].transpose(1, 2))
        return logits[:1] if twin else logits

    def _batch_norm(self, x: torch.Tensor, name: str, momentum: float, S: dict[str, torch.Tensor]) -> torch.Tensor:
        # Not F.batch_norm: that kernel's per-channel results depend on the channel count (the pack size) on CPU;
        # batch_norm_train's (var_mean and elementwise arithmetic, its backward in closed form) do not (pack
        # independence, bit for bit). One var_mean serves the normalisation and the moving statistics.
        # x [B, P, C, ...] (a view of the lane's layout), so the members' [P, C] scales and shifts (views of the
        # parameter buffer) broadcast without a copy.
        gamma, beta = S[f"{name}.weight"], S[f"{name}.bias"]
        y, mean, var = batch_norm_train(x, gamma, beta, self.config.bn_eps)
        self._moving(name, mean, var, momentum, S)
        return y

    @staticmethod
    @torch.no_grad()
    def _moving(name: str, mean: torch.Tensor, var: torch.Tensor, momentum: float, S: dict[str, torch.Tensor]
                ) -> None:  # fmt: skip
        """The layer's moving statistics (in ``S``) moved towards the batch's ``mean`` and ``var``."""
        moving_mean, moving_var = S[f"{name}.running_mean"], S[f"{name}.running_var"]
        n = moving_mean.shape[0]  # a lane of one: the statistics of the first of the twins
        moving_mean.lerp_(mean[:n], momentum)
        moving_var.lerp_(var[:n], momentum)

    def _fused(self, fn: Callable[..., Any], x: torch.Tensor, name: str, momentum: float, S: dict[str, torch.Tensor],
               activation: str, codes: torch.Tensor | None, *mask: torch.Tensor) -> torch.Tensor:  # fmt: skip
        """A layer's batch norm and activation as a compiled region (``fn``: :func:`~builder.engine.fused.norm_act`
        or :func:`~builder.engine.fused.act_norm`), the moving statistics updated."""
        y, mean, var = self.region(fn)(x, S[f"{name}.weight"], S[f"{name}.bias"], self.config.bn_eps, activation, codes,
                                       *mask)  # fmt: skip
        self._moving(name, mean, var, momentum, S)
        return y

    def _activation(self, act_runs: list[tuple[str, int, int]]) -> tuple[str, torch.Tensor | None]:
        """A compiled region's activation: the lane's one, or ``"mixed"`` and each member's code
        (:data:`~builder.engine.fused.CODES`; made once per composition)."""
        if len(act_runs) == 1:
            return act_runs[0][0], None
        key = tuple(act_runs)
        if key not in self._codes:
            codes = [fused.CODES[a] for a, s, e in act_runs for _ in range(s, e)]
            self._codes[key] = torch.tensor(codes, device=self.device)
        return "mixed", self._codes[key]

    def _optimize(self) -> None:
        """The TF1 update rules (:mod:`weightzoo.optim`'s functions) on each optimizer's rows of the flat buffers,
        with each member's learning rate."""
        S, F_ = self.state, self.flat
        alpha = None
        if any(opt == "adam" for opt, _, _ in self.opt_runs):
            # Adam's step sizes and beta powers once per step for every member (elementwise, so each Adam member's
            # are what its run alone computes; the other members' are never read), not once per Adam run.
            alpha = adam_alpha(self.lr32, S["b1p"], S["b2p"]).to(self.dtype)[:, None]
            S["b1p"].mul_(ADAM_BETAS[0])
            S["b2p"].mul_(ADAM_BETAS[1])
        # with compiled regions (TrainConfig.compile) each run's update is one compiled kernel, in place
        run = self.region if self.config.compile else (lambda update: update)
        for opt, s, e in self.opt_runs:
            p, g, m1 = F_["p"][s:e], F_["p"].grad[s:e], F_["s1"][s:e]
            lr = self.lr[s:e, None]
            if opt == "adam":
                assert alpha is not None
                run(adam_update_)(p, g, m1, F_["s2"][s:e], alpha[s:e])
            elif opt == "rmsprop":
                run(rmsprop_update_)(p, g, m1, lr)
            else:
                run(momentum_update_)(p, g, m1, lr)

    def member_weights(self, slot: int) -> dict[str, torch.Tensor]:
        """The state of the member in ``slot``, in its own shapes (views of the stacks; padding left out)."""
        own = {p.name: p.shape for p in self.members[slot].hp.architecture.params}
        tensors = self.tensors(self.flat["p"].detach())
        return {n: t[slot][_placement(n, own[n], t.shape[1:])] for n, t in tensors.items()}

    def take_loss_sum(self, slot: int) -> torch.Tensor:
        """The member's summed training loss since the last call (its epoch's; a 0-d tensor on the device, so
        nothing waits for it), reset to zero."""
        value = self.state["loss_sum"][slot].clone()
        self.state["loss_sum"][slot] = 0
        return value
