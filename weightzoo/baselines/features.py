"""Samples for the meta-classifiers: which networks and snapshots, their labels, per-layer statistics, balancing.

The protocol of the reference (Eilertsen et al. 2020):

- train and test are the index's ``split`` column, by whole networks: no network is ever on both sides;
- every selected snapshot of a network is one sample (``snapshots="11..20"`` gives 10 samples per network);
- classification targets are class-balanced per split by subsampling the *networks* of every class to the
  smallest class of that split (seeded), so every class has the same number of samples and chance is ``1/C``;
- classes are the values present in the zoo: a value with no usable network in one of the splits is not a class
  (it is reported in ``Protocol.dropped_classes``);
- networks that diverged (status ``diverged``, or any non-finite weight in the selected snapshots) are excluded
  explicitly and counted in ``Protocol.excluded``; nothing is dropped silently.

Per-layer statistics (Unterthiner et al. 2020): for every tensor of the network, weights, biases *and* the
batch-norm tensors (beta, gamma, moving mean and variance, kept as extra features because they are part of the
reference's flat vector), the mean, std and the quantiles 0, 25, 50, 75 and 100 %. In a zoo of one architecture
the columns are the tensors by name. A zoo mixing architectures (``nws_main``) is aligned by layer *role*
(:func:`layer_slot`): the j-th conv layer of block b, the j-th hidden dense layer, the output layer; the
statistics of a role a network does not have are NaN (histogram gradient boosting treats NaN as its own branch;
the linear model imputes the mean and adds missing-value indicators).

Example:
    >>> from weightzoo.baselines.features import load_samples
    >>> train, test, protocol = load_samples(zoo, "optimizer", snapshots="11..20")  # doctest: +SKIP
    >>> train.stats.shape, protocol.classes  # doctest: +SKIP
    ((240, 126), ['adam', 'rmsprop', 'sgd_momentum'])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from weightzoo.errors import ConfigError, UnknownNameError
from weightzoo.format.layout import NUM_SNAPSHOTS, STATUSES, parse_snapshots
from weightzoo.hparams import CATEGORICAL
from weightzoo.zoo import Zoo

#: Statistics computed per tensor, in feature order.
STATS: tuple[str, ...] = ("mean", "std", "q0", "q25", "q50", "q75", "q100")
#: Regression targets: the learning rate, the test accuracy at each snapshot, the final test accuracy.
REGRESSION_TARGETS: tuple[str, ...] = ("learning_rate", "test_accuracy", "final_test_accuracy")
TARGETS: tuple[str, ...] = (*CATEGORICAL, *REGRESSION_TARGETS)


def task_of(target: str) -> str:
    """``"classification"`` for a categorical hyper-parameter, ``"regression"`` for the learning rate or accuracy."""
    if target in CATEGORICAL:
        return "classification"
    if target in REGRESSION_TARGETS:
        return "regression"
    raise UnknownNameError("target", target, TARGETS)


@dataclass
class Samples:
    """The samples of one split: one row per (network, snapshot).

    ``y`` holds class indices into ``Protocol.classes`` (classification) or float targets (regression);
    ``stats`` the per-tensor statistics [n, tensors x 7] (when requested); ``weights`` the flat reference-order
    vectors [n, num_params] float32 (when requested); ``weightn_conv`` the conv/dense boundary of each sample.
    """

    network_id: np.ndarray
    snapshot: np.ndarray
    y: np.ndarray
    weightn_conv: np.ndarray
    stats: np.ndarray | None = None
    weights: np.ndarray | None = None

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
            weights=None if self.weights is None else self.weights[mask],
        )


@dataclass
class Protocol:
    """What was selected, excluded and balanced, to be copied into the report."""

    target: str
    task: str
    snapshots: tuple[int, ...]
    classes: list[Any] = field(default_factory=list)
    dropped_classes: list[Any] = field(default_factory=list)
    #: network id -> reason, for every network left out (diverged, non-finite weights).
    excluded: dict[int, str] = field(default_factory=dict)
    #: split -> number of networks before balancing / used.
    networks_available: dict[str, int] = field(default_factory=dict)
    networks_used: dict[str, int] = field(default_factory=dict)
    #: split -> class -> networks used.
    class_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    feature_names: list[str] = field(default_factory=list)
    balanced: bool = True
    #: how train and test were formed: the index's ``split`` column, or a stratified re-split by network.
    split: str = "index"


def stats_feature_names(zoo: Zoo, network_id: int) -> list[str]:
    """Feature names ``<tensor>:<stat>`` of the per-tensor statistics, in column order."""
    return _feature_names(p.name for p in zoo.architecture(network_id).params)


def _feature_names(tensors: Any) -> list[str]:
    return [f"{t}:{s}" for t in tensors for s in STATS]


def layer_slot(arch: Any, name: str) -> str:
    """The architecture-independent role of tensor ``name``: ``conv3.weight`` of a depth-5 network (blocks
    [1, 2, 2]) is ``block2.conv0.weight``; ``fc1_bn.gamma`` stays ``fc1_bn.gamma``; ``out.*`` stays.

    Example:
        >>> from weightzoo.architecture import Architecture
        >>> arch = Architecture(filter_size=3, depth_conv=5, depth_fc=2, width_conv=4, width_fc=64)
        >>> layer_slot(arch, "conv3.weight"), layer_slot(arch, "conv1_bn.beta"), layer_slot(arch, "fc1.bias")
        ('block2.conv0.weight', 'block1.conv0_bn.beta', 'fc1.bias')
    """
    layer, _, tensor = name.partition(".")
    base, sep, rest = layer.partition("_")
    if not base.startswith("conv"):
        return name
    i, start = int(base[4:]), 0
    for block, n in enumerate(arch.blocks):
        if i < start + n:
            return f"block{block}.conv{i - start}{sep}{rest}.{tensor}"
        start += n
    raise ConfigError(f"tensor {name!r} is outside the {len(arch.conv_channels)} conv layers of {arch}")


def aligned_slots(archs: list[Any]) -> list[str]:
    """Every layer role (:func:`layer_slot`) of a set of architectures, in reference order (conv blocks, dense
    layers, output; within a layer weight, bias, batch norm), for aligning per-tensor statistics across them."""
    keys: dict[str, tuple[tuple[int, int, int], int]] = {}
    for arch in archs:
        first: dict[str, int] = {}
        for k, p in enumerate(arch.params):
            slot = layer_slot(arch, p.name)
            layer = slot.rsplit(".", 1)[0].split("_")[0]  # block1.conv0 / fc0 / out
            first.setdefault(layer, k)
            keys[slot] = (_layer_key(layer), k - first[layer])
    return sorted(keys, key=lambda s: keys[s])


def _layer_key(layer: str) -> tuple[int, int, int]:
    if layer.startswith("block"):
        block, conv = layer.split(".")
        return (0, int(block[5:]), int(conv[4:]))
    if layer.startswith("fc"):
        return (1, int(layer[2:]), 0)
    return (2, 0, 0)


def _align(block: np.ndarray, arch: Any, slots: list[str]) -> np.ndarray:
    """Scatter one network's per-tensor statistics into the columns of ``slots`` (NaN where it has no tensor)."""
    out = np.full((block.shape[0], len(slots) * len(STATS)), np.nan)
    col = {s: i for i, s in enumerate(slots)}
    for k, p in enumerate(arch.params):
        j = col[layer_slot(arch, p.name)]
        out[:, j * len(STATS) : (j + 1) * len(STATS)] = block[:, k * len(STATS) : (k + 1) * len(STATS)]
    return out


def tensor_stats(arrays: dict[str, np.ndarray], snapshots: tuple[int, ...]) -> np.ndarray:
    """Per-tensor statistics of the selected snapshots of one network: [len(snapshots), tensors x 7] float64.

    Example:
        >>> a = {"w": np.arange(2 * 5, dtype=np.float32).reshape(2, 5)}
        >>> tensor_stats(a, (2,)).round(2).tolist()
        [[7.0, 1.41, 5.0, 6.0, 7.0, 8.0, 9.0]]
    """
    idx = np.asarray(snapshots) - 1
    blocks = []
    for values in arrays.values():
        v = np.asarray(values[idx], dtype=np.float64).reshape(len(idx), -1)
        q = np.quantile(v, [0.0, 0.25, 0.5, 0.75, 1.0], axis=1).T
        blocks.append(np.column_stack([v.mean(axis=1), v.std(axis=1), q]))
    return np.concatenate(blocks, axis=1)


def _label(row: dict[str, Any], target: str, snapshot: int) -> Any:
    if target == "test_accuracy":
        return row["test_accuracy"][snapshot - 1]
    return row[target]


def load_samples(
    zoo: Zoo,
    target: str,
    snapshots: Any = "11..20",
    *,
    features: tuple[str, ...] = ("stats",),
    balance: bool = True,
    random_state: int | None = 0,
    shuffle_labels: bool = False,
    test_fraction: float | None = None,
    progress: Any = None,
) -> tuple[Samples, Samples, Protocol]:
    """Train and test samples of ``zoo`` for ``target`` under the reference protocol (see the module docstring).

    ``features`` picks what to compute: ``"stats"`` (per-tensor statistics) and/or ``"weights"`` (flat vectors).
    ``shuffle_labels=True`` permutes the labels across networks within each split (a control: any model must
    then score near chance). ``progress`` wraps the iteration over networks (e.g. ``tqdm``).
    ``test_fraction`` (for zoos too small for their own split) ignores the index's ``split`` and puts that fraction
    of the usable networks of every class (stratified, seeded, at least one per class) into the test side; the
    split stays by whole networks.

    Example:
        >>> train, test, protocol = load_samples(zoo, "dataset", snapshots=20)  # doctest: +SKIP
        >>> set(train.network_id) & set(test.network_id)  # doctest: +SKIP
        set()
    """
    task = task_of(target)
    snaps = parse_snapshots(snapshots)
    bad = set(features) - {"stats", "weights"}
    if bad:
        raise UnknownNameError("feature kind", sorted(bad)[0], ["stats", "weights"])
    rng = np.random.default_rng(random_state)
    protocol = Protocol(target=target, task=task, snapshots=snaps, balanced=balance and task == "classification")
    rows = {r["network_id"]: r for r in zoo.index.to_pylist()}
    if not rows:
        raise ConfigError(f"{zoo.url}: the zoo holds no networks")
    slots: list[str] | None = None
    if "stats" in features:
        archs = {
            (r["filter_size"], r["depth_conv"], r["depth_fc"], r["width_conv"], r["width_fc"]): n
            for n, r in rows.items()
        }
        if len(archs) > 1:  # mixed architectures: align the statistics by layer role
            slots = aligned_slots([zoo.architecture(n) for n in archs.values()])
    stats: dict[int, np.ndarray] = {}
    ids = list(rows) if progress is None else progress(list(rows))
    for nid in ids:
        row = rows[nid]
        if row["status"] == "diverged":
            protocol.excluded[nid] = "diverged"
            continue
        arrays = zoo.read_arrays(nid)
        idx = np.asarray(snaps) - 1
        if not all(np.isfinite(a[idx]).all() for a in arrays.values()):
            protocol.excluded[nid] = f"non-finite weights (status {row['status']})"
            continue
        if task == "regression" and not all(np.isfinite(float(_label(row, target, s))) for s in snaps):
            protocol.excluded[nid] = f"non-finite {target}"
            continue
        if "stats" in features:
            stats[nid] = tensor_stats(arrays, snaps)
            if slots is not None:
                stats[nid] = _align(stats[nid], zoo.architecture(nid), slots)
    usable = [n for n in rows if n not in protocol.excluded]
    if test_fraction is None:
        by_split = {s: [n for n in usable if rows[n]["split"] == s] for s in ("train", "test")}
    else:
        by_split = _resplit(usable, rows, target if task == "classification" else None, test_fraction, rng)
        protocol.split = f"stratified re-split, test fraction {test_fraction}, random_state {random_state}"
    protocol.networks_available = {s: len(v) for s, v in by_split.items()}
    for s, v in by_split.items():
        if not v:
            reasons = sorted(set(protocol.excluded.values()))
            why = f"{len(protocol.excluded)} excluded: {', '.join(reasons)}" if reasons else "none excluded"
            raise ConfigError(
                f"{zoo.url}: no usable {s} networks for {target!r} ({len(rows)} networks in all, {why}, "
                f"{len(by_split['train'])} train / {len(by_split['test'])} test usable). The index's split puts "
                "every fifth network in test: a zoo needs at least 5 networks, more for a meaningful score; pass "
                "test_fraction (--test-fraction) to re-split, or generate more networks"
            )

    if task == "classification":
        present = {s: {rows[n][target] for n in v} for s, v in by_split.items()}
        vocab = CATEGORICAL[target]
        protocol.classes = [c for c in vocab if c in present["train"] and c in present["test"]]
        protocol.dropped_classes = [c for c in vocab if (c in present["train"]) != (c in present["test"])]
        if len(protocol.classes) < 2:
            raise ConfigError(
                f"{zoo.url}: target {target!r} has {len(protocol.classes)} class(es) present in both splits "
                f"({protocol.classes}); a classifier needs at least 2"
            )
        for s, v in by_split.items():
            groups = {c: sorted(n for n in v if rows[n][target] == c) for c in protocol.classes}
            n_min = min(len(g) for g in groups.values())
            keep = []
            for g in groups.values():
                keep += sorted(rng.choice(g, size=n_min, replace=False).tolist()) if balance else g
            by_split[s] = sorted(keep)
            counts = {str(c): sum(rows[n][target] == c for n in by_split[s]) for c in protocol.classes}
            protocol.class_counts[s] = counts
    protocol.networks_used = {s: len(v) for s, v in by_split.items()}
    if "stats" in features:
        if slots is None:
            protocol.feature_names = stats_feature_names(zoo, usable[0])
        else:  # only the layer roles some training network has: a column with no value teaches nothing
            names = np.asarray(_feature_names(slots))
            seen = np.any([~np.isnan(stats[n][0]) for n in by_split["train"]], axis=0)
            protocol.feature_names = names[seen].tolist()
            stats = {n: v[:, seen] for n, v in stats.items()}

    out = []
    for s in ("train", "test"):
        nets = by_split[s]
        net_col = np.repeat(np.asarray(nets, dtype=np.int64), len(snaps))
        snap_col = np.tile(np.asarray(snaps, dtype=np.int64), len(nets))
        labels = [_label(rows[n], target, k) for n, k in zip(net_col.tolist(), snap_col.tolist(), strict=True)]
        if task == "classification":
            y = np.asarray([protocol.classes.index(v) for v in labels], dtype=np.int64)
        else:
            y = np.asarray(labels, dtype=np.float64)
        if shuffle_labels:  # permute by network, so a network's snapshots keep one (wrong) label
            perm = rng.permutation(len(nets))
            y = y.reshape(len(nets), len(snaps))[perm].reshape(-1)
        sample = Samples(
            network_id=net_col,
            snapshot=snap_col,
            y=y,
            weightn_conv=np.asarray([rows[n]["weightn_conv"] for n in net_col.tolist()], dtype=np.int64),
        )
        if "stats" in features:
            sample.stats = np.concatenate([stats[n] for n in nets]) if nets else np.zeros((0, 0))
        if "weights" in features:
            sample.weights = flat_vectors(zoo, nets, snaps)
        out.append(sample)
    return out[0], out[1], protocol


def _resplit(
    usable: list[int], rows: dict[int, dict[str, Any]], target: str | None, fraction: float, rng: np.random.Generator
) -> dict[str, list[int]]:
    """Train/test by whole networks, ``fraction`` of every class (at least one, if it has two) in test."""
    if not 0 < fraction < 1:
        raise ConfigError(f"test_fraction={fraction!r}; expected a number strictly between 0 and 1")
    groups: dict[Any, list[int]] = {}
    for n in usable:
        groups.setdefault(rows[n][target] if target else None, []).append(n)
    test: list[int] = []
    for members in groups.values():
        k = min(max(1, round(fraction * len(members))), len(members) - 1) if len(members) > 1 else 0
        test += rng.choice(sorted(members), size=k, replace=False).tolist()
    return {"train": sorted(set(usable) - set(test)), "test": sorted(test)}


def flat_vectors(zoo: Zoo, network_ids: list[int], snapshots: tuple[int, ...]) -> np.ndarray:
    """Flat reference-order vectors [networks x snapshots, num_params] float32 (one architecture), or, when the
    networks' lengths differ, a 1-D object array of vectors (the ``dmc`` model accepts both)."""
    idx = np.asarray(snapshots) - 1
    rows: list[np.ndarray] = []
    for nid in network_ids:
        arrays = zoo.read_arrays(nid)
        block = np.concatenate([np.asarray(a[idx]).reshape(len(idx), -1) for a in arrays.values()], axis=1)
        rows.extend(block)
    if len({len(r) for r in rows}) <= 1:
        return np.stack(rows).astype(np.float32, copy=False) if rows else np.zeros((0, 0), np.float32)
    ragged = np.empty(len(rows), dtype=object)
    ragged[:] = rows
    return ragged


class DatasetZoo:
    """A read-only stand-in for :class:`~weightzoo.zoo.Zoo` over a ``datasets.DatasetDict`` loaded with the
    ``weightzoo`` builder (``view="flat"``, either granularity), so :func:`load_samples` runs on it unchanged.

    The splits are the dict's ``train`` and ``test``; ``ClassLabel`` codes are decoded to the vocabularies of
    :mod:`weightzoo.hparams`; snapshots the dataset does not hold read as NaN (select only loaded snapshots).
    Everything is materialised in memory: meant for the small zoos a dataset is handy for.

    Example:
        >>> ds = datasets.load_dataset("weightzoo", data_dir="runs/mnist24", snapshots="11..20")  # doctest: +SKIP
        >>> fit(DatasetZoo(ds), "dataset", "stats")  # doctest: +SKIP
    """

    def __init__(self, dataset_dict: Any, url: str = "datasets.DatasetDict"):
        from weightzoo.architecture import Architecture
        from weightzoo.hparams import ARCHITECTURE_FIELDS

        missing = {"train", "test"} - set(getattr(dataset_dict, "keys", lambda: ())())
        if missing:
            raise ConfigError(f"a weightzoo DatasetDict with 'train' and 'test' splits is needed; missing {missing}")
        self.url = url
        rows: dict[int, dict[str, Any]] = {}
        flat: dict[int, dict[int, np.ndarray]] = {}
        for split in ("train", "test"):
            ds = dataset_dict[split]
            if "weights" not in ds.column_names:
                raise ConfigError("the dataset has no 'weights' column: load it with view='flat'")
            for r in ds.with_format("numpy"):
                nid = int(r["network_id"])
                row = rows.setdefault(
                    nid, {"network_id": nid, "split": split, "test_accuracy": [np.nan] * NUM_SNAPSHOTS}
                )
                for name, vocab in (*CATEGORICAL.items(), ("status", STATUSES)):
                    if name in r:
                        row[name] = vocab[int(r[name])]
                for name in ("learning_rate", "final_test_accuracy", "weightn_conv"):
                    row[name] = r[name].item()
                snaps, weights, accs = (np.atleast_1d(r["snapshot"]), r["weights"], np.atleast_1d(r["test_accuracy"]))
                weights = np.stack(list(weights)) if weights.dtype == object else np.atleast_2d(weights)
                for s, w, a in zip(snaps.tolist(), weights, accs.tolist(), strict=True):
                    flat.setdefault(nid, {})[int(s)] = np.asarray(w, dtype=np.float32)
                    row["test_accuracy"][int(s) - 1] = a
        self._rows, self._flat = rows, flat
        self._arch = {n: Architecture(**{k: r[k] for k in ARCHITECTURE_FIELDS}) for n, r in rows.items()}

    class _Index:
        def __init__(self, rows: list[dict[str, Any]]):
            self._rows = rows

        def to_pylist(self) -> list[dict[str, Any]]:
            return self._rows

    @property
    def index(self) -> _Index:
        return self._Index([self._rows[n] for n in sorted(self._rows)])

    def architecture(self, network_id: int) -> Any:
        return self._arch[network_id]

    def read_arrays(self, network_id: int) -> dict[str, np.ndarray]:
        """name -> [20, *shape] float32 (NaN where the dataset holds no snapshot)."""
        arch, snaps = self._arch[network_id], self._flat[network_id]
        full = np.full((NUM_SNAPSHOTS, arch.num_params), np.nan, dtype=np.float32)
        for s, w in snaps.items():
            full[s - 1] = w
        return {p.name: full[:, p.offset : p.offset + p.size].reshape(NUM_SNAPSHOTS, *p.shape) for p in arch.params}
