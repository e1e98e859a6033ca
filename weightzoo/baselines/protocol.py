"""The protocol of the reference (Eilertsen et al. 2020): targets, the train/test split, classes and balancing.

- train and test are the index's ``split`` column, by whole networks: no network is ever on both sides
  (:func:`split_networks`; ``test_fraction`` re-splits, stratified, still by whole networks);
- every selected snapshot of a network is one sample (``snapshots="11..20"`` gives 10 samples per network);
- classification targets are class-balanced per split by keeping, of every class, as many *networks* as the
  smallest class of that split has: the first ones in id order, as the original took the first runs of each
  class in its CSV order (``balance="random"``: a seeded random choice), so every class has the same number of
  samples and chance is ``1/C`` (:func:`balance_classes`);
- classes are the values present in the zoo: a value with no usable network in one of the splits is not a class
  (it is reported in ``Protocol.dropped_classes``);
- networks that diverged (status ``diverged``, or any non-finite weight in the selected snapshots) are excluded
  explicitly and counted in ``Protocol.excluded``; nothing is dropped silently.

Example:
    >>> task_of("optimizer"), task_of("learning_rate")
    ('classification', 'regression')
    >>> split = lambda n: "test" if n % 5 == 4 else "train"  # the index's: every fifth network in test
    >>> rows = {n: {"split": split(n), "optimizer": ("adam", "rmsprop")[n % 2]} for n in range(20)}
    >>> split = split_networks(list(rows), rows, "optimizer")
    >>> balanced = balance_classes(split.networks, rows, "optimizer", np.random.default_rng(0))
    >>> balanced.classes, balanced.class_counts["test"]
    (['adam', 'rmsprop'], {'adam': 2, 'rmsprop': 2})
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from weightzoo.errors import ConfigError, TooFewClassesError, UnknownNameError
from weightzoo.format.layout import SPLITS  # the index's splits, in the order samples are built
from weightzoo.hparams import CATEGORICAL

#: Regression targets: the learning rate, the test accuracy at each snapshot, the final test accuracy.
REGRESSION_TARGETS: tuple[str, ...] = ("learning_rate", "test_accuracy", "final_test_accuracy")
#: Every target: the categorical hyper-parameters (classification), then the regression targets.
TARGETS: tuple[str, ...] = (*CATEGORICAL, *REGRESSION_TARGETS)
#: Which networks class balancing keeps: the first of each class in id order (the original's) or a random choice.
BALANCE_ORDERS: tuple[str, ...] = ("first", "random")


def task_of(target: str) -> str:
    """``"classification"`` for a categorical hyper-parameter, ``"regression"`` for the learning rate or accuracy."""
    if target in CATEGORICAL:
        return "classification"
    if target in REGRESSION_TARGETS:
        return "regression"
    raise UnknownNameError("target", target, TARGETS)


@dataclass(frozen=True)
class Protocol:
    """What was selected, excluded and balanced, to be copied into the report: made once, by
    :func:`~weightzoo.baselines.samples.load_samples`, from what each step returned."""

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
    #: which networks balancing kept: the first of each class in id order (the original's) or a random choice.
    balance_order: str = "first"
    #: how train and test were formed: the index's ``split`` column, or a stratified re-split by network.
    split: str = "index"


def label_of(row: dict[str, Any], target: str, snapshot: int) -> Any:
    """The target of one sample: an index column, or for ``test_accuracy`` its value at ``snapshot`` (1..20).

    Example:
        >>> label_of({"optimizer": "adam", "test_accuracy": [0.1, 0.9]}, "test_accuracy", 2)
        0.9
    """
    if target == "test_accuracy":
        return row["test_accuracy"][snapshot - 1]
    return row[target]


@dataclass(frozen=True)
class Split:
    """Train and test network ids (``networks``), and how they were formed (``how``: the index's ``split`` column,
    or a stratified re-split)."""

    networks: dict[str, list[int]]
    how: str = "index"


def split_networks(
    usable: list[int],
    rows: dict[int, dict[str, Any]],
    target: str,
    test_fraction: float | None = None,
    rng: np.random.Generator | None = None,
    *,
    random_state: int | None = 0,
    excluded: dict[int, str] | None = None,
    source: str = "",
) -> Split:
    """Train and test network ids: the index's ``split`` column, or with ``test_fraction`` a stratified re-split
    (:func:`resplit`, by the classes of a classification ``target``). Raises a
    :class:`~weightzoo.errors.ConfigError` saying why when a side is empty (naming the ``excluded`` networks'
    reasons)."""
    how = "index"
    if test_fraction is None:
        by_split = {s: [n for n in usable if rows[n]["split"] == s] for s in SPLITS}
    else:
        classes = target if task_of(target) == "classification" else None
        by_split = resplit(usable, rows, classes, test_fraction, rng if rng is not None else np.random.default_rng())
        how = f"stratified re-split, test fraction {test_fraction}, random_state {random_state}"
    excluded = excluded or {}
    for s, v in by_split.items():
        if not v:
            reasons = sorted(set(excluded.values()))
            why = f"{len(excluded)} excluded: {', '.join(reasons)}" if reasons else "none excluded"
            raise ConfigError(
                f"{source}: no usable {s} networks for {target!r} ({len(rows)} networks in all, {why}, "
                f"{len(by_split['train'])} train / {len(by_split['test'])} test usable). The index's split puts "
                "every fifth network in test: a zoo needs at least 5 networks, more for a meaningful score; pass "
                "test_fraction (--test-fraction) to re-split, or generate more networks"
            )
    return Split(by_split, how)


def resplit(
    usable: list[int], rows: dict[int, dict[str, Any]], target: str | None, fraction: float, rng: np.random.Generator
) -> dict[str, list[int]]:
    """Train/test by whole networks, ``fraction`` of every class (at least one, if it has two) in test.

    Example:
        >>> rows = {n: {"optimizer": "adam" if n < 4 else "sgd"} for n in range(8)}
        >>> split = resplit(list(rows), rows, "optimizer", 0.25, np.random.default_rng(0))
        >>> len(split["test"]), sorted(rows[n]["optimizer"] for n in split["test"])
        (2, ['adam', 'sgd'])
    """
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


@dataclass(frozen=True)
class Balanced:
    """The networks kept per split (``networks``), the classes (values present in both splits, in vocabulary
    order), the values present in one split only (``dropped_classes``), the networks per class and split, and
    which networks balancing kept (``order``: first, random or none)."""

    networks: dict[str, list[int]]
    classes: list[Any]
    dropped_classes: list[Any]
    class_counts: dict[str, dict[str, int]]
    order: str


def balance_classes(
    by_split: dict[str, list[int]],
    rows: dict[int, dict[str, Any]],
    target: str,
    rng: np.random.Generator,
    *,
    balance: bool | str = True,
    source: str = "",
) -> Balanced:
    """The classes of ``target`` and, with ``balance``, every class cut to the smallest per split (by network):
    ``True`` or ``"first"`` keeps the first networks of each class in id order (the original's), ``"random"`` a
    seeded random choice, ``False`` all."""
    order = "first" if balance is True else balance
    if order not in (False, *BALANCE_ORDERS):
        raise UnknownNameError("balance", balance, (True, False, *BALANCE_ORDERS))
    present = {s: {rows[n][target] for n in v} for s, v in by_split.items()}
    vocab = CATEGORICAL[target]
    classes = [c for c in vocab if c in present["train"] and c in present["test"]]
    dropped = [c for c in vocab if (c in present["train"]) != (c in present["test"])]
    if len(classes) < 2:
        raise TooFewClassesError(
            f"{source}: target {target!r} has {len(classes)} class(es) present in both splits ({classes}); a "
            "classifier needs at least 2"
        )
    kept, counts = {}, {}
    for s, v in by_split.items():
        groups = {c: sorted(n for n in v if rows[n][target] == c) for c in classes}
        n_min = min(len(g) for g in groups.values())
        keep = []
        for g in groups.values():
            if order == "random":
                keep += sorted(rng.choice(g, size=n_min, replace=False).tolist())
            else:
                keep += g[:n_min] if order else g
        kept[s] = sorted(keep)
        counts[s] = {str(c): sum(rows[n][target] == c for n in kept[s]) for c in classes}
    return Balanced(kept, classes, dropped, counts, order if order else "none")
