"""Training of one zoo network as the original code trains it (``classifier.py`` of Eilertsen et al.; every rule
is quoted in ``../shared/nws-reference.md``, "Exact training semantics").

- Data: the per-network 90/10 train/validation split of the dataset's training pool (for MNIST and
  Fashion-MNIST the 55,000 images TensorFlow's ``read_data_sets`` left after its own 5,000-image validation set:
  training images 5,000..59,999), class balancing by subsampling every class to the smallest one every epoch,
  reshuffled every epoch; ``floor(N / batch)`` full batches an epoch.
- Optimizers with TensorFlow 1's update rules (:mod:`weightzoo.optim`), TensorLayer batch norm
  (:mod:`weightzoo.model`), the augmentation of :mod:`builder.augment`, a constant learning rate (the original's
  0.96 decay never took effect; ``lr_decay=0.96`` applies it).
- Early stopping (:class:`EarlyStopping`) and the 20 snapshots: exports 1, 2, ... are the weights before epoch
  1 (the initialisation) and after each epoch; training breaks right after the export that triggers early
  stopping, and the exports ``round(linspace(1, n_exports, 20))`` are kept: snapshot 1 is the initialisation,
  snapshot 20 the network after its last epoch, as in the original.

Deliberate difference (``TrainConfig.evaluation``): by default metrics are measured cleanly, without
augmentation, with batch norm in eval mode, on the whole validation and test sets and, for the train metric, on a
fixed random subset of at most ``train_eval_images`` (10,000) training images. The original measured them
through its training graph: augmented, with batch statistics, and every such pass (the per-step training
accuracy and each validation and test batch) updated the moving statistics that were then exported.
``evaluation="released"`` reproduces that, for comparing a regenerated zoo with the released one.

Example:
    >>> from builder.sources import load_images
    >>> from builder.space import get_preset
    >>> hp = get_preset("demo").sample(0, 0)
    >>> result = train_network(hp, load_images("digits"), zoo_seed=0, network_id=0,
    ...                        config=TrainConfig(max_epochs=1))  # doctest: +SKIP
    >>> result.snapshot_epochs[:3], result.status  # doctest: +SKIP
    ([0, 0, 0], 'completed')
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from builder.augment import augment, augment_with
from builder.keyed_random import step_draws, to_device
from builder.sources import ImageSet, train_pool_start
from builder.space import torch_seed
from weightzoo.errors import ConfigError, UnknownNameError
from weightzoo.format.layout import METRICS, NUM_SNAPSHOTS
from weightzoo.hparams import HyperParameters
from weightzoo.model import BN_DECAY, BN_EPS, NWSNet, initialize_, state_tensors
from weightzoo.optim import make_optimizer
from weightzoo.options import RANGES, check_params

#: What a network of a given (zoo seed, id, configuration) becomes. Bumped whenever training changes the weights:
#: 1 = before the exact original rules; 2 = the original's early stopping, TF1 optimizers, TensorLayer batch norm,
#: per-batch colour augmentation with both shears, the 55,000-image MNIST pool; 3 = dropout masks and augmentation
#: parameters drawn by :mod:`builder.keyed_random` (a function of the network and its step, so a pack draws them
#: for all its networks at once); 4 = the pack trainer's lanes give a network the same bytes at any width (a lane
#: of one computes as a lane of two, the first convolution padded to 4 input channels: see
#: :meth:`builder.pack_lane.Lane._forward_loss`); networks of the single trainer are those of version 3. Recorded
#: in every manifest; ``builder.reproduce`` and ``--resume`` refuse to mix versions (but see
#: :data:`SAME_NETWORKS`).
GENERATION_VERSION = 4
#: Older generation versions whose networks this release trains identically, with the trainers that made them:
#: ``builder.reproduce`` accepts those zoos.
SAME_NETWORKS: dict[int, tuple[str, ...]] = {3: ("single",)}
#: How metrics are measured: "clean" (default) or "released" (the original's train-mode graph; see above).
EVALUATIONS: tuple[str, ...] = ("clean", "released")


@dataclass(frozen=True)
class TrainConfig:
    """How networks are trained (the same for every network of a zoo)."""

    max_epochs: int = 1000
    #: Early stopping is allowed once this many epochs are trained (the original: from the 20th export on).
    min_epochs: int = 19
    #: Batch-norm moving-average decay: 0.9, TensorLayer's ``BatchNormLayer`` default, as in the original.
    bn_decay: float = BN_DECAY
    #: Batch-norm epsilon: 1e-5, TensorLayer's default (recorded so readers rebuild the networks exactly).
    bn_eps: float = BN_EPS
    #: Per-epoch learning-rate factor. 1.0 (constant) is what the released zoo did; 0.96 is what it intended.
    lr_decay: float = 1.0
    validation_fraction: float = 0.1
    #: Stop when validation accuracy fell this many times in a row (an unchanged epoch does not break the run).
    patience_falling: int = 5
    #: ... or was below its smoothed value (``smoothing`` * smoothed + (1 - ``smoothing``) * accuracy, seeded
    #: with the initialisation's accuracy) in this many epochs IN ALL (the original's counter is never reset).
    patience_smoothed: int = 30
    smoothing: float = 0.5
    #: ... or stayed unchanged (a difference below ``tie_tolerance``) this many epochs in a row.
    patience_unchanged: int = 30
    tie_tolerance: float = 1e-8
    #: "clean": metrics without augmentation, batch norm in eval mode, whole sets (default). "released": as the
    #: original measured them (see the module docstring); the stored moving statistics then differ too.
    evaluation: str = "clean"
    #: Budget zoos: each network trains on a class-balanced random subset of this many of the dataset's training
    #: images, drawn once from its own data stream, before the 90/10 split (None: all of them, as the reference).
    train_images: int | None = None
    #: Train metrics are measured on a fixed random subset of this many training images (None: all).
    train_eval_images: int | None = 10_000
    #: Test metrics are measured on a fixed random subset of this many test images (None: the whole test set, as
    #: the reference). The subset is the same for every network of a dataset.
    test_images: int | None = None
    eval_batch_size: int = 1000

    def __post_init__(self) -> None:
        """Each value in its range (:data:`weightzoo.options.RANGES`, the ranges the command line checks)."""
        for name in ("max_epochs", "lr_decay", "bn_decay", "eval_batch_size"):
            RANGES[name].check(name, getattr(self, name))
        check_params({n: getattr(self, n) for n in ("train_images", "train_eval_images", "test_images")})  # None: all
        if not (isinstance(self.validation_fraction, float) and 0 < self.validation_fraction < 1):
            raise ConfigError(f"validation_fraction={self.validation_fraction!r}; expected a number in (0, 1)")
        if not (isinstance(self.bn_eps, float) and 0 < self.bn_eps < 1):
            raise ConfigError(f"bn_eps={self.bn_eps!r}; expected a positive number below 1")
        for name in ("min_epochs", "patience_falling", "patience_smoothed", "patience_unchanged"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name}={value!r}; expected a non-negative integer")
        if self.evaluation not in EVALUATIONS:
            raise UnknownNameError("evaluation", self.evaluation, EVALUATIONS)


@dataclass
class TrainResult:
    """What training one network produced; ``weights`` maps names to [20, *shape] float32 arrays."""

    status: str
    n_epochs: int
    snapshot_epochs: list[int]
    weights: dict[str, np.ndarray]
    history: dict[str, list[float]]
    snapshots: dict[str, list[float]] = field(init=False)
    seconds: float = 0.0
    images_seen: int = 0

    def __post_init__(self) -> None:
        self.snapshots = {m: [self.history[m][e] for e in self.snapshot_epochs] for m in METRICS}


def snapshot_epochs(n_epochs: int) -> list[int]:
    """The epochs whose weights are kept after ``n_epochs`` epochs: the original keeps the exports
    ``round(linspace(1, n_exports, 20))`` of its ``n_exports = n_epochs + 1`` (export 1: the initialisation).

    Example:
        >>> snapshot_epochs(38)[:4], snapshot_epochs(38)[-1]
        ([0, 2, 4, 6], 38)
    """
    exports = np.round(np.linspace(1, n_epochs + 1, NUM_SNAPSHOTS)).astype(np.int64)
    return [int(e) - 1 for e in exports]


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
def _evaluate_sums(net: NWSNet, x: torch.Tensor, y: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy (float64) and number of correct predictions (int64), eval mode, no augmentation, as
    tensors on the device: nothing waits for them (the pack trainer reads them a step later)."""
    net.eval()
    dtype = net.out.weight.dtype
    loss = torch.zeros((), device=x.device, dtype=torch.float64)
    correct = torch.zeros((), device=x.device, dtype=torch.int64)
    for i in range(0, len(y), batch):
        logits = net(x[i : i + batch].to(dtype).div_(255))
        loss += F.cross_entropy(logits, y[i : i + batch], reduction="sum").double()
        correct += (logits.argmax(1) == y[i : i + batch]).sum()
    return loss, correct


def _metrics(loss_sum: float, correct: int, n: int) -> tuple[float, float]:
    """Mean cross-entropy and accuracy from :func:`_evaluate_sums` (NaN for an empty set)."""
    return (math.nan, math.nan) if n == 0 else (loss_sum / n, correct / n)


def _evaluate(net: NWSNet, x: torch.Tensor, y: torch.Tensor, batch: int) -> tuple[float, float]:
    """Mean cross-entropy and accuracy, eval mode, no augmentation."""
    loss, correct = _evaluate_sums(net, x, y, batch)
    return _metrics(float(loss), int(correct), len(y))


class _Records:
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


def _balanced_subset(order: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
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


def _test_subset(data: DeviceImages, k: int | None) -> tuple[torch.Tensor, torch.Tensor]:
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
        >>> [e for e, acc in enumerate(curve) if stop.update(e, acc)][:1]  # five falls; the tie does not reset
        [25]
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
        from ``data_gen`` on the host and moved to the device without waiting for it. Both trainers draw here."""
        dev = self.per_class[0].device
        gen, k = data_gen, self.per_class_n
        order = torch.cat([p[to_device(torch.randperm(len(p), generator=gen)[:k], dev)] for p in self.per_class])
        return order[to_device(torch.randperm(len(order), generator=gen), dev)]


def network_split(
    hp: HyperParameters, data: DeviceImages, config: TrainConfig, data_gen: torch.Generator
) -> NetworkSplit:
    """The per-network 90/10 split of the training pool (or of a class-balanced subset of it, for budget zoos),
    drawn from the network's data stream: the one place both trainers (this module and :mod:`builder.pack`) get
    it from, so they draw the same. The original splits at ``int(0.9 N)``: the validation set is the rest."""
    dev = data.device
    first = train_pool_start(hp.dataset, len(data.train_y))
    perm = first + torch.randperm(len(data.train_y) - first, generator=data_gen).to(dev)
    n = len(perm)
    if config.train_images is not None and config.train_images < n:
        perm = _balanced_subset(perm, data.train_y[perm], config.train_images)
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
        "test": _test_subset(data, config.test_images),
    }
    return NetworkSplit(per_class, min(len(p) for p in per_class), eval_sets)


def train_network(
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
    :mod:`builder.pack`); the weights come back as float32 either way."""
    start = time.perf_counter()
    data = images if isinstance(images, DeviceImages) else DeviceImages(images, device)
    dev = data.device
    if data.name != hp.dataset:
        raise ConfigError(f"network {network_id} draws dataset {hp.dataset!r} but was given {data.name!r}")
    # Every random choice comes from streams keyed by (zoo seed, network id, stream): generators for the
    # initialisation, the data split and order, and the augmentation noise; a counter-based stream per training
    # step for the dropout masks and the augmentation parameters (builder.keyed_random), as the pack draws them.
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
    records = _Records()
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
            metrics = {part: _evaluate(net, x, y, config.eval_batch_size) for part, (x, y) in eval_sets.items()}
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
    for epoch in range(1, config.max_epochs + 1):
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
            status = "diverged"
            break
        if stopper.update(epoch, history["val_accuracy"][-1]):
            status = "early_stopped"
            break

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
