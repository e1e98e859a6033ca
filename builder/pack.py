"""The pack trainer: many zoo networks trained in one set of kernels, each exactly as :func:`builder.train.
train_network` trains it alone.

Design (measured choice, see README "Training packs of networks"):

- **Randomness per network, drawn as the single trainer draws it.** Every member keeps the generators
  ``train_network`` makes for it (``init``, ``data``, ``augment`` keyed by (zoo seed, network id, stream), and the
  global generator's state after ``torch.manual_seed(dropout seed)`` and the network's construction) and draws
  from them in the same order: its split, its epoch orders, its augmentation parameters and noise, its dropout
  masks (``F.dropout`` of ones with the member's generator state swapped in, so the mask is the very one
  ``nn.Dropout`` draws). Only the arithmetic is batched, so a network is the same network in any pack, alone or
  with ``train_network``, and ``builder.reproduce`` can re-train it.
- **Batched arithmetic.** Parameters are stacked ``[P, ...]``: convolutions are one grouped convolution
  (``groups=P``) on ``[B, P*C, H, W]``, batch norm is per (network, channel) on that layout, dense layers are
  ``baddbmm``. Augmentation is one :func:`builder.augment.apply_params` call over the pack's augmented images.
  The three TF1 optimizers (:mod:`weightzoo.optim`) are applied to contiguous slices of the stack (members are
  kept sorted by optimizer, then activation), with per-network learning rates.
- **Own epochs.** Every member has its own batch count per epoch (its class balance), so a pack step is one
  training step of every member; a member whose epoch ends is evaluated (the single trainer's ``_evaluate``),
  recorded, and checked for divergence and early stopping on its own. Members that stop leave the pack; queued
  networks take their place (the pack is re-stacked at those moments only).

A pack needs one architecture and one batch size (:mod:`builder.pack_schedule` forms such packs); data sets,
optimizers, learning rates, activations, initialisations and augmentation may differ. ``evaluation="released"``
is not supported (:class:`~weightzoo.errors.ConfigError`): use the single trainer for it.

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
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from builder.augment import AugmentParams, apply_params, sample_params
from builder.sources import ImageSet
from builder.space import torch_seed
from builder.train import (
    DeviceImages,
    EarlyStopping,
    TrainConfig,
    TrainResult,
    _evaluate,
    _Records,
    network_split,
    snapshot_epochs,
)
from weightzoo.errors import ConfigError
from weightzoo.format.layout import METRICS
from weightzoo.hparams import HyperParameters
from weightzoo.model import NWSNet, initialize_
from weightzoo.optim import ADAM_BETAS, ADAM_EPS, MOMENTUM, RMSPROP_DECAY, RMSPROP_EPS

__all__ = ["iter_pack", "train_pack"]

_ACT = {"relu": F.relu, "elu": F.elu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}


def _default_generator(device: torch.device) -> torch.Generator:
    """The generator ``nn.Dropout`` draws from on ``device`` (the global one of that device)."""
    if device.type == "cuda":
        return torch.cuda.default_generators[device.index if device.index is not None else torch.cuda.current_device()]
    return torch.default_generator


class _Member:
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
        # As train_network: seed the global generator, then build the network (its default initialisers draw from
        # the global generator too); the state left is where this network's dropout masks start.
        torch.manual_seed(torch_seed(zoo_seed, network_id, "dropout"))
        net = NWSNet(hp.architecture, hp.activation, bn_momentum=1 - config.bn_decay, bn_eps=config.bn_eps)
        net = initialize_(net, hp.initialization, init_gen).to(dev, dtype)
        self.dropout_state = _default_generator(dev).get_state()
        state = net.state_dict()
        self.initial = {p.name: state[p.name].detach().clone() for p in hp.architecture.params}
        self.lr = hp.learning_rate

        split = network_split(hp, data, config, self.data_gen)  # the split train_network draws
        self.per_class, self.per_class_n, self.eval_sets = split.per_class, split.per_class_n, split.eval_sets
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
        self.status = "completed"

    def epoch_order(self) -> torch.Tensor:
        """Balance classes by subsampling each to the smallest, then shuffle (as train_network)."""
        dev = self.data.device
        gen, k = self.data_gen, self.per_class_n
        chosen = [p[torch.randperm(len(p), generator=gen)[:k].to(dev)] for p in self.per_class]
        order = torch.cat(chosen)
        return order[torch.randperm(len(order), generator=self.data_gen).to(dev)]

    def record(self, weights: dict[str, torch.Tensor], evaluator: NWSNet) -> bool:
        """Measure and keep this export's metrics and weights; False when a weight is no longer finite."""
        with torch.no_grad():
            state = evaluator.state_dict()
            for name, w in weights.items():
                state[name].copy_(w)
        for part, (x, y) in self.eval_sets.items():
            loss, acc = _evaluate(evaluator, x, y, self.config.eval_batch_size)
            self.history[f"{part}_loss"].append(loss)
            self.history[f"{part}_accuracy"].append(acc)
        arrays = {k: v.detach().to(torch.float32).cpu().numpy().copy() for k, v in weights.items()}
        self.records.append(arrays)
        return all(np.isfinite(w).all() for w in arrays.values())

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


def _grouped_conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, padding: int) -> torch.Tensor:
    """Per-member convolutions as one grouped convolution: ``x`` [B, P*Cin, H, W], ``w`` [P, Cout, Cin, k, k].
    A pack of one runs with a zero-cost-to-exactness twin (groups=2): CPU kernels for groups=1 round differently
    from the grouped ones, and a member must come out the same whatever its pack."""
    P = w.shape[0]
    if P == 1:
        c = w.shape[1]
        out = F.conv2d(torch.cat([x, x], 1), torch.cat([w, w]).flatten(0, 1), torch.cat([b, b]).flatten(),
                       padding=padding, groups=2)  # fmt: skip
        return out[:, :c]
    return F.conv2d(x, w.flatten(0, 1), b.flatten(), padding=padding, groups=P)


def _runs(keys: Sequence[str]) -> list[tuple[str, int, int]]:
    """Maximal runs of equal keys: (key, start, end)."""
    runs: list[tuple[str, int, int]] = []
    for i, k in enumerate(keys):
        if runs and runs[-1][0] == k:
            runs[-1] = (k, runs[-1][1], i + 1)
        else:
            runs.append((k, i, i + 1))
    return runs


class _Pack:
    """The stacked state of the members now training: parameters (leaves), batch-norm statistics, optimizer
    slots, per-member scalars. Members are kept sorted by (optimizer, activation, id)."""

    def __init__(
        self,
        config: TrainConfig,
        device: torch.device,
        dtype: torch.dtype,
        on_epoch: Callable[[int, int, int], None] | None = None,
    ):
        self.config, self.device, self.dtype, self.on_epoch = config, device, dtype, on_epoch
        self.members: list[_Member] = []
        self.state: dict[str, torch.Tensor] = {}
        self.evaluators: dict[str, NWSNet] = {}

    def __len__(self) -> int:
        return len(self.members)

    def restack(self, keep: list[_Member], new: list[_Member]) -> None:
        """Re-form the stacks for ``keep`` (members already here) plus ``new`` (fresh, initial state)."""
        old = {id(m): i for i, m in enumerate(self.members)}
        members = sorted(keep + new, key=lambda m: (m.hp.optimizer, m.hp.activation, m.id))
        if not members:
            self.members, self.state = [], {}
            return
        arch = members[0].hp.architecture
        names = [p.name for p in arch.params]
        f32 = torch.float32

        def fresh(m: _Member, key: str) -> torch.Tensor:
            kind, _, name = key.partition(":")
            if kind == "p":
                return m.initial[name]
            if kind == "s1":  # adam m, rmsprop ms (ones, as TF1), momentum buffer
                init = torch.ones_like if m.hp.optimizer == "rmsprop" else torch.zeros_like
                return init(m.initial[name])
            if kind == "s2":  # adam v
                return torch.zeros_like(m.initial[name])
            if key == "b1p":
                return torch.tensor(ADAM_BETAS[0], dtype=f32, device=self.device)
            if key == "b2p":
                return torch.tensor(ADAM_BETAS[1], dtype=f32, device=self.device)
            return torch.zeros((), dtype=f32, device=self.device)  # loss_sum

        trainable = [n for n in names if not n.endswith(("running_mean", "running_var"))]
        keys = [f"p:{n}" for n in names] + [f"s1:{n}" for n in trainable] + [f"s2:{n}" for n in trainable]
        keys += ["b1p", "b2p", "loss_sum"]
        state = {}
        for key in keys:
            parts = [self.state[key][old[id(m)]] if id(m) in old else fresh(m, key) for m in members]
            state[key] = torch.stack(parts).detach()
        for n in trainable:
            state[f"p:{n}"].requires_grad_(True)
        self.members, self.state, self.names, self.trainable = members, state, names, trainable
        self.arch = arch
        self.opt_runs = _runs([m.hp.optimizer for m in members])
        self.act_runs = _runs([m.hp.activation for m in members])
        self.lr_changed()

    def lr_changed(self) -> None:
        lrs = [m.lr for m in self.members]
        self.lr = torch.tensor(lrs, dtype=self.dtype, device=self.device)
        self.lr32 = torch.tensor(lrs, dtype=torch.float32, device=self.device)

    def _act(self, x: torch.Tensor, dim: int, width: int) -> torch.Tensor:
        """Each member's activation on its slice of ``dim`` (``width`` entries per member)."""
        if len(self.act_runs) == 1:
            return _ACT[self.act_runs[0][0]](x)
        return torch.cat([_ACT[a](x.narrow(dim, s * width, (e - s) * width)) for a, s, e in self.act_runs], dim)

    def step(self) -> None:
        """One training step of every member (its next batch)."""
        P, dt = len(self.members), self.dtype
        bs = self.members[0].hp.batch_size
        idx = [m.order[m.batch * bs : (m.batch + 1) * bs] for m in self.members]
        x = torch.cat([m.data.train_x[i] for m, i in zip(self.members, idx, strict=True)]).to(dt).div_(255)
        y = torch.cat([m.data.train_y[i] for m, i in zip(self.members, idx, strict=True)])
        aug = [s for s, m in enumerate(self.members) if m.hp.augmentation]
        if aug:
            x = self._augment(x.view(P, bs, *x.shape[1:]), aug).flatten(0, 1)
        masks = self._dropout_masks(bs)
        loss = self._forward_loss(x, y, masks, P, bs)
        loss.sum().backward()
        with torch.no_grad():
            self.state["loss_sum"] += loss.detach()
            self._optimize()
        for n in self.trainable:
            self.state[f"p:{n}"].grad = None

    def _augment(self, x: torch.Tensor, aug: list[int]) -> torch.Tensor:
        """Each augmented member's parameters and noise drawn from its own generator (as ``augment`` draws them),
        applied in one batched call."""
        bs = x.shape[1]
        params, noises = [], []
        for s in aug:
            g = self.members[s].aug_gen
            params.append(sample_params(bs, g))
            noises.append(torch.randn((bs, *x.shape[2:]), generator=g, device=g.device, dtype=x.dtype))
        fields = {}
        for name in vars(params[0]):
            values = [getattr(p, name) for p in params]
            if values[0].ndim == 0:  # one per batch: one per member, broadcast over its images
                v = torch.stack(values).repeat_interleave(bs)
                fields[name] = v.view(-1, 1, 1) if name in ("hue", "saturation") else v.view(-1, 1, 1, 1)
            else:
                fields[name] = torch.cat(values)
        rows = torch.tensor(aug, device=x.device)
        out = apply_params(x[rows].flatten(0, 1), AugmentParams(**fields), torch.cat(noises))
        x = x.clone()
        x[rows] = out.view(len(aug), bs, *x.shape[2:])
        return x

    def _dropout_masks(self, bs: int) -> list[torch.Tensor]:
        """[P, B, n] masks (0 or 2) per dense layer: ``F.dropout`` with each member's generator state swapped in,
        layer after layer, as its forward pass draws them."""
        gen = _default_generator(self.device)
        saved = gen.get_state()
        units = self.arch.fc_units
        per_member = []
        for m in self.members:
            gen.set_state(m.dropout_state)
            per_member.append(
                [F.dropout(torch.ones(bs, n, dtype=self.dtype, device=self.device), 0.5, True) for n in units]
            )
            m.dropout_state = gen.get_state()
        gen.set_state(saved)
        return [torch.stack([pm[j] for pm in per_member]) for j in range(len(units))]

    def _forward_loss(self, x: torch.Tensor, y: torch.Tensor, masks: list[torch.Tensor], P: int, bs: int):
        """Per-member mean cross-entropy [P] of the training forward pass (batch norm on batch statistics,
        moving statistics updated as TensorLayer's layer does)."""
        S, arch, c = self.state, self.arch, self.config
        momentum = 1 - c.bn_decay
        h = x.view(P, bs, *x.shape[1:]).transpose(0, 1).reshape(bs, P * x.shape[1], *x.shape[2:])
        k = arch.filter_size
        layer = 0
        for n_layers in arch.blocks:
            for _ in range(n_layers):
                w, b = S[f"p:conv{layer}.weight"], S[f"p:conv{layer}.bias"]
                h = _grouped_conv(h, w, b, k // 2)
                h = self._batch_norm(h, f"conv{layer}_bn", momentum)
                h = self._act(h, 1, w.shape[1])
                layer += 1
            h = F.max_pool2d(h, 2, 2)
        C = h.shape[1] // P
        h = h.view(bs, P, C, *h.shape[2:]).permute(1, 0, 3, 4, 2).reshape(P, bs, -1)  # (h, w, c) per member
        for j in range(len(arch.fc_units)):
            w, b = S[f"p:fc{j}.weight"], S[f"p:fc{j}.bias"]
            h = self._act(torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2)), 0, 1)
            n = h.shape[2]
            z = self._batch_norm(h.transpose(0, 1).reshape(bs, P * n), f"fc{j}_bn", momentum)
            h = z.view(bs, P, n).transpose(0, 1) * masks[j]
        logits = torch.baddbmm(S["p:out.bias"].unsqueeze(1), h, S["p:out.weight"].transpose(1, 2))
        return F.cross_entropy(logits.flatten(0, 1), y, reduction="none").view(P, bs).mean(1)

    def _batch_norm(self, x: torch.Tensor, name: str, momentum: float) -> torch.Tensor:
        S = self.state
        dims = [0, *range(2, x.ndim)]
        with torch.no_grad():
            var, mean = torch.var_mean(x, dim=dims, correction=0)
            S[f"p:{name}.running_mean"].view(-1).lerp_(mean, momentum)
            S[f"p:{name}.running_var"].view(-1).lerp_(var, momentum)
        # Written out rather than F.batch_norm: that kernel's per-channel results depend on the channel count (the
        # pack size) on CPU; var_mean and elementwise arithmetic do not (pack independence, bit for bit).
        var, mean = torch.var_mean(x, dim=dims, correction=0, keepdim=True)
        shape = [1, -1] + [1] * (x.ndim - 2)
        # The CPU kernel's form: y = x * alpha + (beta - mean * alpha), alpha = gamma / sqrt(var + eps).
        alpha = S[f"p:{name}.weight"].view(shape) / torch.sqrt(var + self.config.bn_eps)
        return x * alpha + (S[f"p:{name}.bias"].view(shape) - mean * alpha)

    def _optimize(self) -> None:
        """The TF1 update rules of :mod:`weightzoo.optim` on each optimizer's slice of the stacks."""
        S = self.state
        b1, b2 = ADAM_BETAS
        for opt, s, e in self.opt_runs:
            if opt == "adam":
                alpha = self.lr32[s:e] * torch.sqrt(1 - S["b2p"][s:e]) / (1 - S["b1p"][s:e])
            for n in self.trainable:
                p, m1 = S[f"p:{n}"], S[f"s1:{n}"]
                g = p.grad[s:e]
                p, m1 = p.narrow(0, s, e - s), m1.narrow(0, s, e - s)
                lr = self.lr[s:e].view(-1, *[1] * (p.ndim - 1))
                if opt == "adam":
                    v = S[f"s2:{n}"].narrow(0, s, e - s)
                    m1.add_((g - m1) * (1 - b1))
                    v.add_((g * g - v) * (1 - b2))
                    a = alpha.to(p.dtype).view_as(lr)
                    p.sub_(m1 * a / (torch.sqrt(v) + ADAM_EPS))
                elif opt == "rmsprop":
                    m1.add_((g * g - m1) * (1 - RMSPROP_DECAY))
                    p.sub_(lr * g / torch.sqrt(m1 + RMSPROP_EPS))
                else:  # TF1 momentum = torch SGD(momentum=0.95); a zero buffer makes the first step buf = g
                    m1.mul_(MOMENTUM).add_(g)
                    p.addcmul_(m1, lr, value=-1)
            if opt == "adam":
                S["b1p"][s:e] = S["b1p"][s:e] * b1
                S["b2p"][s:e] = S["b2p"][s:e] * b2

    def member_weights(self, slot: int) -> dict[str, torch.Tensor]:
        return {n: self.state[f"p:{n}"][slot].detach() for n in self.names}

    def evaluator(self, m: _Member) -> NWSNet:
        """A network of the pack's architecture and ``m``'s activation to measure members with."""
        net = self.evaluators.get(m.hp.activation)
        if net is None:
            c = self.config
            net = NWSNet(m.hp.architecture, m.hp.activation, bn_momentum=1 - c.bn_decay, bn_eps=c.bn_eps)
            net = self.evaluators[m.hp.activation] = net.to(self.device, self.dtype)
        return net

    def end_epoch(self, slot: int) -> bool:
        """The epoch boundary of the member in ``slot`` (as train_network's loop); True when it stops."""
        m, c = self.members[slot], self.config
        m.epoch += 1
        m.batch = 0
        m.images_seen += m.n_batches * m.hp.batch_size
        if self.on_epoch is not None:  # progress only: as train_network's on_epoch, after the epoch's steps
            self.on_epoch(m.id, m.epoch, m.images_seen)
        m.lr = m.lr * c.lr_decay
        m.order = m.epoch_order()
        finite = m.record(self.member_weights(slot), self.evaluator(m))
        loss_sum = float(self.state["loss_sum"][slot])
        self.state["loss_sum"][slot] = 0
        if not finite or not math.isfinite(loss_sum):
            m.status = "diverged"
            return True
        if m.stopper.update(m.epoch, m.history["val_accuracy"][-1]):
            m.status = "early_stopped"
            return True
        return m.epoch >= c.max_epochs


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
    on_epoch: Callable[[int, int, int], None] | None = None,
) -> Iterator[tuple[int, TrainResult]]:
    """Train networks ``network_ids`` (hyper-parameters ``hps``) as a pack of at most ``width`` at a time
    (None: all); yield ``(network_id, result)`` as each finishes. ``images`` maps data set names to image sets.

    Example:
        >>> from builder.space import get_preset
        >>> space = get_preset("demo")
        >>> ids = [i for i in range(40) if space.sample(0, i).batch_size == space.sample(0, 0).batch_size][:2]
        >>> next(iter_pack([space.sample(0, i) for i in ids], {}, zoo_seed=0, network_ids=ids))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        weightzoo.errors.ConfigError: no images for data set 'digits' ...
    """
    hps, ids, config = list(hps), list(network_ids), config or TrainConfig()
    if len(hps) != len(ids) or not ids:
        raise ConfigError(f"a pack needs one hyper-parameter set per network id, got {len(hps)} and {len(ids)}")
    if config.evaluation != "clean":
        raise ConfigError("the pack trainer measures clean metrics only; use the single trainer for 'released'")
    shapes = {(hp.architecture, hp.batch_size) for hp in hps}
    if len(shapes) > 1:
        raise ConfigError(f"a pack needs one architecture and batch size, got {len(shapes)} (builder.pack_schedule)")
    dev = torch.device(device)
    data: dict[str, DeviceImages] = {}
    for name in sorted({hp.dataset for hp in hps}):
        if name not in images:
            raise ConfigError(f"no images for data set {name!r} (given: {', '.join(images) or 'none'})")
        img = images[name]
        data[name] = img if isinstance(img, DeviceImages) and img.device == dev else DeviceImages(img, dev)
    width = len(ids) if width is None else max(1, width)
    cpu_state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None
    queue = list(zip(hps, ids, strict=True))
    pack = _Pack(config, dev, dtype, on_epoch)
    try:
        new = [_new_member(hp, nid, data, zoo_seed, config, dtype) for hp, nid in queue[:width]]
        queue = queue[width:]
        pack.restack([], new)
        for m in new:
            m.record(pack.member_weights(pack.members.index(m)), pack.evaluator(m))
            m.stopper.update(0, m.history["val_accuracy"][-1])
        while len(pack):
            pack.step()
            done = []
            for slot, m in enumerate(pack.members):
                m.batch += 1
                if m.batch == m.n_batches and pack.end_epoch(slot):
                    done.append(m)
            if done:
                for m in done:
                    yield m.id, m.result()
                keep = [m for m in pack.members if all(m is not d for d in done)]
                new = [_new_member(hp, nid, data, zoo_seed, config, dtype) for hp, nid in queue[: len(done)]]
                queue = queue[len(done) :]
                pack.restack(keep, new)
                for m in new:
                    m.record(pack.member_weights(pack.members.index(m)), pack.evaluator(m))
                    m.stopper.update(0, m.history["val_accuracy"][-1])
            elif any(m.batch == 0 for m in pack.members):
                pack.lr_changed()
    finally:
        torch.set_rng_state(cpu_state)
        if cuda_state is not None:
            torch.cuda.set_rng_state(cuda_state, dev)


def _new_member(hp, nid, data, zoo_seed, config, dtype) -> _Member:
    return _Member(hp, data[hp.dataset], zoo_seed, nid, config, dtype)


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
    kwargs = {"config": config, "device": device, "dtype": dtype, "width": width, "on_epoch": on_epoch}
    out = dict(iter_pack(hps, images, zoo_seed=zoo_seed, network_ids=network_ids, **kwargs))
    return [out[i] for i in network_ids]
