"""Samples for the meta-classifiers: which networks and snapshots, their labels and inputs, under the protocol.

:func:`load_samples` reads a zoo once, network by network, in four steps: exclusions (diverged or non-finite
networks, see :mod:`weightzoo.baselines.protocol`) and per-tensor statistics
(:mod:`weightzoo.baselines.features`); the train/test split by network; the classes and their balancing; then the
samples of each split, one per (network, snapshot), with their labels, statistics and/or flat vectors.

It reads every network once, through :class:`~weightzoo.zoo.Zoo`'s one read path, ``iter_arrays(snapshots)``
(storage order, one shard open at a time, only the selected snapshots' bytes), and otherwise ``index``, ``url``
and ``architecture()`` (a filtered zoo, ``zoo.filter(...)``, selects networks): the statistics, the screening and
the flat vectors come from that one pass. :class:`~weightzoo.baselines.dataset_zoo.DatasetZoo` offers the same
over a ``datasets.DatasetDict``.

Example (``zoo_path``: a small zoo written by the test fixtures):
    >>> from weightzoo import open_zoo
    >>> train, test, protocol = load_samples(open_zoo(zoo_path), "learning_rate", 20, test_fraction=0.5)
    >>> protocol.task, len(train) + len(test), train.stats.shape[1] == len(protocol.feature_names)
    ('regression', 6, True)
    >>> set(train.network_id) & set(test.network_id)
    set()
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from typing import Protocol as TypingProtocol

import numpy as np

from weightzoo.baselines.features import (
    KINDS,
    align_stats,
    aligned_slots,
    feature_names,
    stats_feature_names,
    tensor_stats,
)
from weightzoo.baselines.protocol import Protocol, balance_classes, label_of, split_networks, task_of
from weightzoo.errors import ConfigError, UnknownNameError
from weightzoo.format.layout import NUM_SNAPSHOTS, SPLITS, parse_snapshots
from weightzoo.format.record import BN_EPS
from weightzoo.hparams import ARCHITECTURE_FIELDS
from weightzoo.zoo import Zoo


class ZooSource(TypingProtocol):
    """What :func:`load_samples` reads: :class:`~weightzoo.zoo.Zoo` (and its filtered views) and
    :class:`~weightzoo.baselines.dataset_zoo.DatasetZoo` both are one."""

    url: str

    @property
    def index(self) -> Any: ...

    def architecture(self, network_id: int) -> Any: ...

    def iter_arrays(
        self, snapshots: Sequence[int] | None = None, *, check: bool | None = None
    ) -> Iterator[tuple[dict[str, Any], dict[str, np.ndarray]]]: ...


#: What :func:`load_samples` can compute per sample: per-tensor statistics, flat reference-order vectors.
FEATURE_KINDS: tuple[str, ...] = ("stats", "statnn", "weights", "networks")


@dataclass
class Samples:
    """The samples of one split: one row per (network, snapshot).

    ``y`` holds class indices into ``Protocol.classes`` (classification) or float targets (regression);
    ``stats`` the per-tensor statistics [n, tensors x 7] (when requested); ``weights`` the flat reference-order
    vectors [n, num_params] float32 (when requested); ``weightn_conv`` the conv/dense boundary of each sample.

    Example:
        >>> s = Samples(np.array([0, 0, 5, 5]), np.array([19, 20, 19, 20]), np.array([1, 1, 0, 0]), np.full(4, 300))
        >>> s.subset(s.snapshot == 20).network_id.tolist(), len(s)
        ([0, 5], 4)
    """

    network_id: np.ndarray
    snapshot: np.ndarray
    y: np.ndarray
    weightn_conv: np.ndarray
    stats: np.ndarray | None = None
    #: The StatNN features (:data:`weightzoo.baselines.features.STATNN_STATS`), when requested.
    statnn: np.ndarray | None = None
    weights: np.ndarray | None = None
    #: One :class:`~weightzoo.baselines.probe.NetworkSample` per sample (an object array), when requested.
    networks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, mask: np.ndarray) -> Samples:
        """The samples where ``mask`` (boolean or indices) selects, e.g. ``samples.subset(samples.snapshot == 20)``."""
        return Samples(
            network_id=self.network_id[mask],
            snapshot=self.snapshot[mask],
            y=self.y[mask],
            weightn_conv=self.weightn_conv[mask],
            stats=None if self.stats is None else self.stats[mask],
            statnn=None if self.statnn is None else self.statnn[mask],
            weights=None if self.weights is None else self.weights[mask],
            networks=None if self.networks is None else self.networks[mask],
        )


def load_samples(
    zoo: ZooSource,
    target: str,
    snapshots: Any = "11..20",
    *,
    features: tuple[str, ...] = ("stats",),
    balance: bool | str = True,
    random_state: int | None = 0,
    shuffle_labels: bool = False,
    test_fraction: float | None = None,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
) -> tuple[Samples, Samples, Protocol]:
    """Train and test samples of ``zoo`` for ``target`` under the reference protocol (see the module docstring).

    ``features`` picks what to compute: ``"stats"`` (per-tensor statistics) and/or ``"weights"`` (flat vectors).
    ``shuffle_labels=True`` permutes the labels across networks within each split (a control: any model must
    then score near chance). ``progress`` wraps the iteration over the networks read (e.g. ``tqdm``).
    ``test_fraction`` (for zoos too small for their own split) ignores the index's ``split`` and puts that fraction
    of the usable networks of every class (stratified, seeded, at least one per class) into the test side; the
    split stays by whole networks.

    Example:
        >>> from weightzoo import open_zoo
        >>> zoo = open_zoo(zoo_path)
        >>> train, test, protocol = load_samples(zoo, "test_accuracy", "19..20", features=("stats", "weights"),
        ...                                      test_fraction=0.5)
        >>> train.weights.shape[1] == zoo.row(0)["num_params"], sorted(set(train.snapshot.tolist()))
        (True, [19, 20])
    """
    task = task_of(target)
    snaps = parse_snapshots(snapshots, getattr(zoo, "num_snapshots", NUM_SNAPSHOTS))
    bad = set(features) - set(FEATURE_KINDS)
    if bad:
        raise UnknownNameError("feature kind", sorted(bad)[0], list(FEATURE_KINDS))
    rng = np.random.default_rng(random_state)
    rows = {r["network_id"]: r for r in zoo.index.to_pylist()}
    if not rows:
        raise ConfigError(f"{zoo.url}: the zoo holds no networks")
    stat_kinds = [k for k in KINDS if k in features]
    slots = _mixed_architecture_slots(zoo, rows) if stat_kinds else None
    screened = _screen_networks(zoo, rows, target, snaps, set(features), slots, progress)
    stats, flat, kept, excluded = screened
    usable = [n for n in rows if n not in excluded]
    split = split_networks(usable, rows, target, test_fraction, rng, random_state=random_state, excluded=excluded,
                           source=zoo.url)  # fmt: skip
    by_split = split.networks
    balanced = None
    if task == "classification":
        balanced = balance_classes(by_split, rows, target, rng, balance=balance, source=zoo.url)
    names: dict[str, list[str]] = {}
    for kind in stat_kinds:
        train_ids = balanced.networks["train"] if balanced else by_split["train"]
        stats[kind], names[kind] = _name_columns(zoo, stats[kind], slots, usable[0], train_ids, kind)
    protocol = Protocol(
        target=target,
        task=task,
        snapshots=snaps,
        classes=balanced.classes if balanced else [],
        dropped_classes=balanced.dropped_classes if balanced else [],
        excluded=excluded,
        networks_available={s: len(v) for s, v in by_split.items()},
        networks_used={s: len(v) for s, v in (balanced.networks if balanced else by_split).items()},
        class_counts=balanced.class_counts if balanced else {},
        feature_names=next(iter(names.values()), []),
        balanced=bool(balance) and task == "classification",
        balance_order=balanced.order if balanced else "first",
        split=split.how,
    )
    by_split = balanced.networks if balanced else by_split
    train, test = (_split_samples(rows, protocol, by_split[s], stats, flat, shuffle_labels, rng) for s in SPLITS)
    if kept is not None:
        eps = _bn_eps(zoo)
        for samples in (train, test):
            samples.networks = _network_samples(zoo, rows, kept, samples, snaps, eps)
    return train, test, protocol


def _bn_eps(zoo: ZooSource) -> float:
    """The batch-norm epsilon of the zoo's networks: its manifest's record; a ``datasets`` source (no manifest)
    holds networks of generation version 2 or later, trained with TensorLayer's 1e-5."""
    manifest = getattr(zoo, "manifest", None)
    return manifest.record.train.bn_eps if manifest is not None else BN_EPS


def _network_samples(
    zoo: ZooSource,
    rows: dict[int, dict[str, Any]],
    kept: dict[int, dict[str, np.ndarray]],
    samples: Samples,
    snaps: tuple[int, ...],
    bn_eps: float,
) -> np.ndarray:
    """One :class:`~weightzoo.baselines.probe.NetworkSample` per sample (views of the arrays read)."""
    from weightzoo.baselines.probe import NetworkSample

    position = {s: j for j, s in enumerate(snaps)}
    out = np.empty(len(samples), dtype=object)
    for i, (nid, snap) in enumerate(zip(samples.network_id.tolist(), samples.snapshot.tolist(), strict=True)):
        arrays = kept[nid]
        tensors = {name: a[position[snap]] for name, a in arrays.items()}
        out[i] = NetworkSample(tensors, zoo.architecture(nid), rows[nid].get("activation", ""), bn_eps)
    return out


def _mixed_architecture_slots(zoo: ZooSource, rows: dict[int, dict[str, Any]]) -> list[str] | None:
    """The layer roles to align the statistics on when the zoo mixes architectures, else ``None``."""
    if getattr(getattr(zoo, "manifest", None), "declared", False):  # a converted zoo of another family: one
        return None
    archs = {tuple(r[f] for f in ARCHITECTURE_FIELDS): n for n, r in rows.items()}
    if len(archs) == 1:
        return None
    return aligned_slots([zoo.architecture(n) for n in archs.values()])


def _screen_networks(
    zoo: ZooSource,
    rows: dict[int, dict[str, Any]],
    target: str,
    snaps: tuple[int, ...],
    features: set[str],
    slots: list[str] | None,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None,
) -> tuple[dict[str, dict[int, np.ndarray]], dict[int, np.ndarray] | None,
           dict[int, dict[str, np.ndarray]] | None, dict[int, str]]:  # fmt: skip
    """Read every network once, in storage order (``zoo.iter_arrays``, the selected snapshots only); return the
    per-tensor statistics of the usable ones by kind (``"stats"``, ``"statnn"``: those requested; aligned on
    ``slots`` when given), their flat vectors [snapshots, num_params] (``"weights"``), their arrays
    (``"networks"``), and the excluded ones with the reason."""
    with_flat = "weights" in features
    kept: dict[int, dict[str, np.ndarray]] | None = {} if "networks" in features else None
    regression = task_of(target) == "regression"
    excluded: dict[int, str] = {}
    stats: dict[str, dict[int, np.ndarray]] = {k: {} for k in KINDS if k in features}
    flat: dict[int, np.ndarray] | None = {} if with_flat else None
    networks: Iterable[tuple[dict[str, Any], dict[str, np.ndarray]]] = zoo.iter_arrays(list(snaps), check=False)
    for row, arrays in networks if progress is None else progress(networks):
        nid = row["network_id"]
        if row["status"] == "diverged":
            excluded[nid] = "diverged"
            continue
        if not all(np.isfinite(a).all() for a in arrays.values()):
            excluded[nid] = f"non-finite weights (status {row['status']})"
            continue
        if regression and not all(np.isfinite(float(label_of(row, target, s))) for s in snaps):
            excluded[nid] = f"non-finite {target}"
            continue
        for kind, blocks in stats.items():
            blocks[nid] = tensor_stats(arrays, tuple(range(1, len(snaps) + 1)), kind)
            if slots is not None:
                blocks[nid] = align_stats(blocks[nid], zoo.architecture(nid), slots, kind)
        if flat is not None:
            flat[nid] = np.concatenate([np.asarray(a).reshape(len(snaps), -1) for a in arrays.values()], axis=1)
        if kept is not None:
            kept[nid] = arrays
    return stats, flat, kept, excluded


def _name_columns(
    zoo: ZooSource,
    stats: dict[int, np.ndarray],
    slots: list[str] | None,
    first_usable: int,
    train: list[int],
    kind: str = "stats",
) -> tuple[dict[int, np.ndarray], list[str]]:
    """The statistics and their column names; with mixed architectures only the layer roles some training
    network has (a column with no value teaches nothing)."""
    if slots is None:
        return stats, stats_feature_names(zoo, first_usable, kind)
    names = np.asarray(feature_names(slots, kind))
    seen = np.any([~np.isnan(stats[n][0]) for n in train], axis=0)
    return {n: v[:, seen] for n, v in stats.items()}, names[seen].tolist()


def _split_samples(
    rows: dict[int, dict[str, Any]],
    protocol: Protocol,
    nets: list[int],
    stats: dict[str, dict[int, np.ndarray]],
    flat: dict[int, np.ndarray] | None,
    shuffle_labels: bool,
    rng: np.random.Generator,
) -> Samples:
    """The samples of one split: every selected snapshot of every network in ``nets``, network-major."""
    snaps = protocol.snapshots
    net_col = np.repeat(np.asarray(nets, dtype=np.int64), len(snaps))
    snap_col = np.tile(np.asarray(snaps, dtype=np.int64), len(nets))
    labels = [label_of(rows[n], protocol.target, k) for n, k in zip(net_col.tolist(), snap_col.tolist(), strict=True)]
    if protocol.task == "classification":
        y = np.asarray([protocol.classes.index(v) for v in labels], dtype=np.int64)
    else:
        y = np.asarray(labels, dtype=np.float64)
    if shuffle_labels:  # permute by network, so a network's snapshots keep one (wrong) label
        perm = rng.permutation(len(nets))
        y = y.reshape(len(nets), len(snaps))[perm].reshape(-1)
    samples = Samples(
        network_id=net_col,
        snapshot=snap_col,
        y=y,
        weightn_conv=np.asarray([rows[n]["weightn_conv"] for n in net_col.tolist()], dtype=np.int64),
    )
    for kind, blocks in stats.items():  # samples.stats, samples.statnn
        setattr(samples, kind, np.concatenate([blocks[n] for n in nets]) if nets else np.zeros((0, 0)))
    if flat is not None:
        samples.weights = _stack_vectors([v for n in nets for v in flat[n]])
    return samples


def flat_vectors(zoo: Zoo, network_ids: list[int], snapshots: tuple[int, ...]) -> np.ndarray:
    """Flat reference-order vectors [networks x snapshots, num_params] float32 (one architecture), or, when the
    networks' lengths differ, a 1-D object array of vectors (the ``dmc`` model accepts both).

    Example:
        >>> from weightzoo import open_zoo
        >>> zoo = open_zoo(zoo_path)
        >>> v = flat_vectors(zoo, [0, 1], (1, 20))
        >>> v.shape == (4, zoo.row(0)["num_params"]), bool((v[1] == zoo.flat(0, 20).numpy()).all())
        (True, True)
    """
    idx = np.asarray(snapshots) - 1
    rows: list[np.ndarray] = []
    for nid in network_ids:
        arrays = zoo.read_arrays(nid)
        block = np.concatenate([np.asarray(a[idx]).reshape(len(idx), -1) for a in arrays.values()], axis=1)
        rows.extend(block)
    return _stack_vectors(rows)


def _stack_vectors(rows: list[np.ndarray]) -> np.ndarray:
    """Vectors as [n, length] float32, or a 1-D object array when their lengths differ."""
    if len({len(r) for r in rows}) <= 1:
        return np.stack(rows).astype(np.float32, copy=False) if rows else np.zeros((0, 0), np.float32)
    ragged = np.empty(len(rows), dtype=object)
    ragged[:] = rows
    return ragged
