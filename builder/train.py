"""Training of one zoo network, per the reference: 90/10 train/validation split, class balancing by
subsampling every epoch, optional augmentation, early stopping, per-epoch metrics and the 20-snapshot policy.

Records: record 0 is the initialisation and record ``e`` the weights after epoch ``e``. When training ends after
``n`` epochs, the records at ``round(linspace(0, n, 20))`` are kept: snapshot 1 is the initialisation, snapshot
20 the trained network. (The original kept the weights at the *start* of each epoch, so its last snapshot
missed the last epoch's update; here snapshot 20 is the network whose test accuracy is reported.) Metrics are
measured without augmentation and with batch norm in eval mode (the original measured them with both: a quirk
not copied).

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
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from builder.augment import augment
from builder.sources import ImageSet
from builder.space import torch_seed
from weightzoo.errors import ConfigError
from weightzoo.format.layout import METRICS, NUM_SNAPSHOTS
from weightzoo.hparams import HyperParameters
from weightzoo.model import NWSNet, initialize_, state_tensors


@dataclass(frozen=True)
class TrainConfig:
    """How networks are trained (the same for every network of a zoo)."""

    max_epochs: int = 1000
    #: Early stopping is allowed only after this many epochs.
    min_epochs: int = 20
    #: Batch-norm moving-average decay: 0.99 is TensorFlow 1's default, as in the original. Runs of only a few
    #: hundred steps (the demo) want a faster one, or the moving statistics stay near their initial values.
    bn_decay: float = 0.99
    #: Per-epoch learning-rate factor. 1.0 (constant) is what the released zoo did; 0.96 is what it intended.
    lr_decay: float = 1.0
    validation_fraction: float = 0.1
    #: Stop when validation accuracy fell this many epochs in a row.
    patience_falling: int = 5
    #: ... or stayed below its exponential moving average (factor ``smoothing``) this many epochs in a row.
    patience_smoothed: int = 30
    smoothing: float = 0.5
    #: ... or stayed unchanged this many epochs in a row.
    patience_unchanged: int = 30
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
        if self.max_epochs < 1:
            raise ConfigError(f"max_epochs must be at least 1, got {self.max_epochs}")
        if not 0 < self.validation_fraction < 1:
            raise ConfigError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")
        if not 0 < self.lr_decay <= 1:
            raise ConfigError(f"lr_decay must be in (0, 1], got {self.lr_decay}")
        if not 0 <= self.bn_decay < 1:
            raise ConfigError(f"bn_decay must be in [0, 1), got {self.bn_decay}")
        for name in ("train_images", "train_eval_images", "test_images"):
            value = getattr(self, name)
            if value is not None and value < 20:
                raise ConfigError(f"{name} must be at least 20 images (or None for all), got {value}")


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
    """The 20 records kept after ``n_epochs`` epochs: ``round(linspace(0, n_epochs, 20))``.

    Example:
        >>> snapshot_epochs(38)[:4], snapshot_epochs(38)[-1]
        ([0, 2, 4, 6], 38)
    """
    return [int(e) for e in np.round(np.linspace(0, n_epochs, NUM_SNAPSHOTS))]


class DeviceImages:
    """An image set moved once to a device as uint8 NCHW tensors, shared by every network trained there."""

    def __init__(self, images: ImageSet, device: torch.device | str):
        self.name, self.device = images.name, torch.device(device)

        def put(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).contiguous().to(self.device)

        self.train_x, self.test_x = put(images.train_images), put(images.test_images)
        self.train_y = torch.from_numpy(images.train_labels.astype(np.int64)).to(self.device)
        self.test_y = torch.from_numpy(images.test_labels.astype(np.int64)).to(self.device)


def _optimizer(hp: HyperParameters, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if hp.optimizer == "adam":
        return torch.optim.Adam(params, lr=hp.learning_rate)
    if hp.optimizer == "rmsprop":  # TF1 RMSPropOptimizer: decay 0.9, epsilon 1e-10
        return torch.optim.RMSprop(params, lr=hp.learning_rate, alpha=0.9, eps=1e-10)
    return torch.optim.SGD(params, lr=hp.learning_rate, momentum=0.95)


@torch.inference_mode()
def _evaluate(net: NWSNet, x: torch.Tensor, y: torch.Tensor, batch: int) -> tuple[float, float]:
    """Mean cross-entropy and accuracy, eval mode, no augmentation."""
    if len(y) == 0:
        return math.nan, math.nan
    net.eval()
    loss = torch.zeros((), device=x.device, dtype=torch.float64)
    correct = torch.zeros((), device=x.device, dtype=torch.int64)
    for i in range(0, len(y), batch):
        logits = net(x[i : i + batch].float().div_(255))
        loss += F.cross_entropy(logits, y[i : i + batch], reduction="sum").double()
        correct += (logits.argmax(1) == y[i : i + batch]).sum()
    return float(loss) / len(y), int(correct) / len(y)


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


class _EarlyStopping:
    def __init__(self, config: TrainConfig):
        self.c = config
        self.prev: float | None = None
        self.smoothed: float | None = None
        self.falling = self.below = self.unchanged = 0

    def update(self, epoch: int, val_acc: float) -> bool:
        c = self.c
        if self.prev is not None:
            self.falling = self.falling + 1 if val_acc < self.prev else 0
            self.unchanged = self.unchanged + 1 if val_acc == self.prev else 0
        self.smoothed = val_acc if self.smoothed is None else c.smoothing * self.smoothed + (1 - c.smoothing) * val_acc
        self.below = self.below + 1 if val_acc < self.smoothed else 0
        self.prev = val_acc
        if epoch < c.min_epochs:
            return False
        return (
            self.falling >= c.patience_falling
            or self.below >= c.patience_smoothed
            or self.unchanged >= c.patience_unchanged
        )


def train_network(
    hp: HyperParameters,
    images: ImageSet | DeviceImages,
    *,
    zoo_seed: int,
    network_id: int,
    config: TrainConfig = TrainConfig(),
    device: torch.device | str = "cpu",
) -> TrainResult:
    """Train network ``network_id`` of the zoo with seed ``zoo_seed``; deterministic on a given device."""
    start = time.perf_counter()
    data = images if isinstance(images, DeviceImages) else DeviceImages(images, device)
    dev = data.device
    if data.name != hp.dataset:
        raise ConfigError(f"network {network_id} draws dataset {hp.dataset!r} but was given {data.name!r}")
    # Every random choice comes from generators seeded by (zoo seed, network id, stream).
    init_gen = torch.Generator().manual_seed(torch_seed(zoo_seed, network_id, "init"))
    data_gen = torch.Generator().manual_seed(torch_seed(zoo_seed, network_id, "data"))
    aug_gen = torch.Generator(device=dev).manual_seed(torch_seed(zoo_seed, network_id, "augment"))
    torch.manual_seed(torch_seed(zoo_seed, network_id, "dropout"))  # nn.Dropout draws from the global generator

    net = NWSNet(hp.architecture, hp.activation, bn_momentum=1 - config.bn_decay)
    net = initialize_(net, hp.initialization, init_gen).to(dev)
    optimizer = _optimizer(hp, list(net.parameters()))
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, config.lr_decay)

    # Per-network 90/10 split of the training images (or of a class-balanced subset of them, for budget zoos),
    # and the class index lists for balancing.
    n = len(data.train_y)
    perm = torch.randperm(n, generator=data_gen).to(dev)
    if config.train_images is not None and config.train_images < n:
        perm = _balanced_subset(perm, data.train_y[perm], config.train_images)
        n = len(perm)
    n_val = round(n * config.validation_fraction)
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    train_labels = data.train_y[train_idx]
    per_class = [train_idx[train_labels == c] for c in range(int(data.train_y.max()) + 1)]
    per_class = [p for p in per_class if len(p)]
    per_class_n = min(len(p) for p in per_class)
    k_eval = len(train_idx) if config.train_eval_images is None else min(len(train_idx), config.train_eval_images)
    train_eval_idx = train_idx[torch.randperm(len(train_idx), generator=data_gen)[:k_eval].to(dev)]
    eval_sets = {
        "train": (data.train_x[train_eval_idx], data.train_y[train_eval_idx]),
        "val": (data.train_x[val_idx], data.train_y[val_idx]),
        "test": _test_subset(data, config.test_images),
    }

    history: dict[str, list[float]] = {m: [] for m in METRICS}
    records = _Records()

    def record() -> bool:
        """Keep the weights and metrics of this epoch; False when a weight is no longer finite."""
        weights = {k: v.cpu().numpy().copy() for k, v in state_tensors(net).items()}
        records.append(weights)
        for part, (x, y) in eval_sets.items():
            loss, acc = _evaluate(net, x, y, config.eval_batch_size)
            history[f"{part}_loss"].append(loss)
            history[f"{part}_accuracy"].append(acc)
        return all(np.isfinite(w).all() for w in weights.values())

    record()
    stopper = _EarlyStopping(config)
    status, images_seen, bs = "completed", 0, hp.batch_size
    for epoch in range(1, config.max_epochs + 1):
        # Balance classes by subsampling each to the smallest, then shuffle.
        chosen = [p[torch.randperm(len(p), generator=data_gen)[:per_class_n].to(dev)] for p in per_class]
        order = torch.cat(chosen)
        order = order[torch.randperm(len(order), generator=data_gen).to(dev)]
        net.train()
        loss_sum = torch.zeros((), device=dev)
        n_batches = max(len(order) // bs, 1)  # full batches only: train-mode batch norm needs > 1 image
        for b in range(n_batches):
            idx = order[b * bs : (b + 1) * bs]
            x = data.train_x[idx].float().div_(255)
            if hp.augmentation:
                x = augment(x, aug_gen)
            loss = F.cross_entropy(net(x), data.train_y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
        images_seen += n_batches * min(bs, len(order))
        scheduler.step()
        finite = record()
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
