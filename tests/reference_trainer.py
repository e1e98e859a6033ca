"""The per-network training loop the engine replaced (generation versions 2 to 4's single trainer), kept as the
reference the engine (:mod:`builder.engine.pack`, :mod:`builder.engine.pack_lane`) must equal in float64: it trains
one network with the reader's model (:class:`weightzoo.model.NWSNet`: its forward pass, its TensorLayer batch norm)
and the optimizer classes of :mod:`weightzoo.optim`, one tensor at a time, with the same draws. Used by tests only."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from builder.engine.augment import augment, augment_with
from builder.engine.keyed_random import step_draws
from builder.engine.member import DeviceImages, EarlyStopping, Records, evaluate_sums, metrics, network_split
from builder.engine.sources import ImageSet
from builder.engine.space import torch_seed
from builder.engine.train_config import TrainConfig, TrainResult, epoch_limit, snapshot_epochs
from weightzoo.errors import ConfigError
from weightzoo.format.layout import METRICS
from weightzoo.hparams import HyperParameters
from weightzoo.model import NWSNet, initialize_, state_tensors
from weightzoo.optim import make_optimizer


def evaluate(net: NWSNet, x: torch.Tensor, y: torch.Tensor, batch: int) -> tuple[float, float]:
    loss, correct = evaluate_sums(net, x, y, batch)
    return metrics(float(loss), int(correct), len(y))


def reference_train(
    hp: HyperParameters,
    images: ImageSet | DeviceImages,
    *,
    zoo_seed: int,
    network_id: int,
    config: TrainConfig = TrainConfig(),
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    on_epoch: Callable[[int, int, int], None] | None = None,
) -> TrainResult:
    """Train network ``network_id`` of the zoo with seed ``zoo_seed``; deterministic on a given device.

    ``on_epoch(network_id, epoch, images_seen)`` is called after every epoch (progress reports; it changes
    nothing). ``dtype`` is the arithmetic's (float32, the zoo's; float64 serves equivalence tests, e.g. of
    :mod:`builder.engine.pack`); the weights come back as float32 either way."""
    start = time.perf_counter()
    data = images if isinstance(images, DeviceImages) else DeviceImages(images, device)
    dev = data.device
    if data.name != hp.dataset:
        raise ConfigError(f"network {network_id} draws dataset {hp.dataset!r} but was given {data.name!r}")
    # Every random choice comes from streams keyed by (zoo seed, network id, stream): generators for the
    # initialisation, the data split and order, and the augmentation noise; a counter-based stream per training
    # step for the dropout masks and the augmentation parameters (builder.engine.keyed_random), as the pack draws them.
    init_gen = torch.Generator().manual_seed(torch_seed(zoo_seed, network_id, "init"))
    data_gen = torch.Generator().manual_seed(torch_seed(zoo_seed, network_id, "data"))
    aug_gen = torch.Generator(device=dev).manual_seed(torch_seed(zoo_seed, network_id, "augment"))
    step_key = torch_seed(zoo_seed, network_id, "step")

    net = NWSNet(hp.architecture, hp.activation, bn_momentum=1 - config.bn_decay, bn_eps=config.bn_eps)
    net = initialize_(net, hp.initialization, init_gen).to(dev, dtype)
    optimizer = make_optimizer(hp.optimizer, net.parameters(), hp.learning_rate)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, config.lr_decay)

    split = network_split(hp, data, config, data_gen)
    eval_sets = split.eval_sets
    released = config.evaluation == "released"
    bs = hp.batch_size

    def batch_images(idx: torch.Tensor, uniforms: torch.Tensor | None = None) -> torch.Tensor:
        """The batch, augmented with a training step's uniforms (None: a fresh draw, released evaluation)."""
        x = data.train_x[idx].to(dtype).div_(255)
        if not hp.augmentation:
            return x
        return augment(x, aug_gen) if uniforms is None else augment_with(x, uniforms, aug_gen)

    history: dict[str, list[float]] = {m: [] for m in METRICS}
    records = Records()
    # Released evaluation: the training metrics of an export are the running mean over the epoch's batches,
    # each measured (train-mode graph, no dropout) just before its step, as the original logs them.
    train_pass: list[tuple[float, float]] = []

    def record(next_order: torch.Tensor) -> bool:
        """Measure and keep this export's metrics and weights; False when a weight is no longer finite."""
        if released:
            # The original measured the first batch of the coming epoch before exporting; then its validation
            # and test sets, every pass updating the moving statistics that are exported right after.
            train_pass.append(_released_pass(net, batch_images, data.train_y, next_order[:bs]))
            metrics = {"train": tuple(float(np.mean(v)) for v in zip(*train_pass, strict=True))}
            train_pass.clear()
            for part in ("val", "test"):
                metrics[part] = _evaluate_released(net, *eval_sets[part], bs, aug_gen if hp.augmentation else None)
        else:
            metrics = {part: evaluate(net, x, y, config.eval_batch_size) for part, (x, y) in eval_sets.items()}
        for part, (loss, acc) in metrics.items():
            history[f"{part}_loss"].append(loss)
            history[f"{part}_accuracy"].append(acc)
        weights = {k: v.cpu().numpy().copy() for k, v in state_tensors(net).items()}
        records.append(weights)
        return all(np.isfinite(w).all() for w in weights.values())

    order = split.epoch_order(data_gen)
    record(order)
    stopper = EarlyStopping(config)
    stopper.update(0, history["val_accuracy"][-1])
    status, images_seen, step = "completed", 0, 0
    units = hp.architecture.fc_units
    n_batches = max(len(order) // bs, 1)  # full batches only: train-mode batch norm needs > 1 image
    diverged = False
    for epoch in range(1, epoch_limit(config, len(order), min(bs, len(order))) + 1):
        net.train()
        loss_sum = torch.zeros((), device=dev)
        for b in range(n_batches):
            idx = order[b * bs : (b + 1) * bs]
            if released and b > 0:  # batch 0 was measured at the export before this epoch
                train_pass.append(_released_pass(net, batch_images, data.train_y, idx))
            draws = step_draws([step_key], [step], len(idx), units, dtype, hp.augmentation, dev)
            x = batch_images(idx, draws.augment)
            loss = F.cross_entropy(net(x, [m[0] for m in draws.masks]), data.train_y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
            step += 1
        images_seen += n_batches * min(bs, len(order))
        if on_epoch is not None:
            on_epoch(network_id, epoch, images_seen)
        scheduler.step()
        order = split.epoch_order(data_gen)  # drawn before the export: the released evaluation measures its first batch
        finite = record(order)
        if not finite or not math.isfinite(float(loss_sum)):
            diverged = True
            if config.on_divergence == "stop":
                break
        if stopper.update(epoch, history["val_accuracy"][-1]):
            status = "early_stopped"
            break
    if diverged:
        status = "diverged"

    n_epochs = len(records) - 1
    epochs = snapshot_epochs(n_epochs)
    weights = records.stack(epochs)
    records.close()
    return TrainResult(
        status=status,
        n_epochs=n_epochs,
        snapshot_epochs=epochs,
        weights=weights,
        history=history,
        seconds=time.perf_counter() - start,
        images_seen=images_seen,
    )


@torch.no_grad()
def _released_pass(net: NWSNet, batch_images, labels: torch.Tensor, idx: torch.Tensor) -> tuple[float, float]:
    """One batch through the original's training graph without dropout: augmented (a fresh draw), batch norm on
    batch statistics, updating the moving statistics. Returns (loss, accuracy) of the batch."""
    net.train()
    net.dropout.eval()  # keep_prob 1.0
    logits = net(batch_images(idx))
    net.dropout.train()
    y = labels[idx]
    return float(F.cross_entropy(logits, y)), float((logits.argmax(1) == y).float().mean())


@torch.no_grad()
def _evaluate_released(
    net: NWSNet, x: torch.Tensor, y: torch.Tensor, batch: int, aug_gen: torch.Generator | None
) -> tuple[float, float]:
    """Validation or test metrics as the original measured them: ``floor(n / batch)`` batches in order (one
    shorter batch when the set is smaller than a batch), each through the training graph (augmented when the
    network augments, batch statistics, moving statistics updated), the mean of the per-batch figures."""
    if len(y) == 0:
        return math.nan, math.nan
    net.train()
    net.dropout.eval()
    losses, accs = [], []
    for b in range(max(len(y) // batch, 1)):
        xb, yb = x[b * batch : (b + 1) * batch].to(net.out.weight.dtype).div_(255), y[b * batch : (b + 1) * batch]
        if aug_gen is not None:
            xb = augment(xb, aug_gen)
        logits = net(xb)
        losses.append(float(F.cross_entropy(logits, yb)))
        accs.append(float((logits.argmax(1) == yb).float().mean()))
    net.dropout.train()
    return float(np.mean(losses)), float(np.mean(accs))
