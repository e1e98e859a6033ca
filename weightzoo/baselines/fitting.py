"""Fit one baseline on the train networks of a zoo, evaluate it on the test networks, and assemble the report.

:func:`fit` loads the samples (:func:`~weightzoo.baselines.samples.load_samples`) and calls :func:`fit_samples`,
which builds the estimator (:mod:`weightzoo.baselines.estimators`, :mod:`weightzoo.baselines.dmc`), fits it,
predicts the test samples and fills a :class:`~weightzoo.baselines.report.Report`.

Example (``zoo_path``: a small zoo written by the test fixtures):
    >>> est, report = fit(zoo_path, target="learning_rate", model="linear", snapshots=20, test_fraction=0.5)
    >>> report.task, report.samples["train"] + report.samples["test"], type(est[-1]).__name__
    ('regression', 6, 'Ridge')
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from weightzoo.baselines.dataset_zoo import DatasetZoo
from weightzoo.baselines.estimators import (
    FEATURE_MODELS,
    MODELS,
    input_of,
    make_estimator,
    require_sklearn,
    small_zoo_leaf,
)
from weightzoo.baselines.protocol import Protocol, task_of
from weightzoo.baselines.report import Report, classification_metrics, regression_metrics
from weightzoo.baselines.samples import Samples, load_samples
from weightzoo.errors import ConfigError, UnknownNameError
from weightzoo.options import check_params
from weightzoo.zoo import Zoo, open_zoo


@dataclass
class FitResult:
    """What :func:`fit` returns; unpacks as ``estimator, report``. ``train``/``test`` are the samples used."""

    estimator: Any
    report: Report
    train: Samples
    test: Samples
    protocol: Protocol

    def __iter__(self):
        return iter((self.estimator, self.report))

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> Any:
        """``result[0]`` is the estimator, ``result[1]`` the report, as with ``est, report = fit(...)``."""
        return (self.estimator, self.report)[i]

    def inputs(self, samples: Samples) -> Any:
        """The estimator's input for some samples: the statistics, the flat vectors (``dmc``) or the networks
        (``probe``)."""
        return getattr(samples, input_of(self.report.model))


def as_zoo(data: Any) -> Zoo | DatasetZoo:
    """What :func:`fit` reads: a :class:`~weightzoo.zoo.Zoo` or :class:`DatasetZoo` as is, a path or URL opened
    with :func:`~weightzoo.zoo.open_zoo`, a ``datasets.DatasetDict`` wrapped in a :class:`DatasetZoo`."""
    if isinstance(data, (Zoo, DatasetZoo)):
        return data
    if isinstance(data, (str, os.PathLike)):
        return open_zoo(data)
    datasets = sys.modules.get("datasets")  # a DatasetDict exists only once datasets is imported: never import it
    if datasets is not None and isinstance(data, datasets.DatasetDict):
        return DatasetZoo(data)
    raise ConfigError(
        f"fit() takes a Zoo, a zoo path/URL or a DatasetDict (train and test) loaded with the weightzoo builder "
        f"(view='flat'), got {type(data).__name__}"
    )


def fit(
    data: Any,
    target: str = "dataset",
    model: str = "stats",
    snapshots: Any = "11..20",
    *,
    random_state: int | None = 0,
    balance: bool | str = True,
    shuffle_labels: bool = False,
    test_fraction: float | None = None,
    progress: bool = False,
    **params: Any,
) -> FitResult:
    """Fit one baseline on the train networks of a zoo and evaluate it on the test networks.

    Args:
        data: a :class:`~weightzoo.zoo.Zoo` (possibly filtered), a path/URL opened with ``open_zoo``, or a
            ``datasets.DatasetDict`` (``train``/``test``) loaded with the weightzoo builder, ``view="flat"``.
        target: a categorical hyper-parameter (``dataset``, ``optimizer``, ...) or ``learning_rate`` /
            ``test_accuracy`` / ``final_test_accuracy``.
        model: ``stats``, ``linear``, ``chance``, ``dmc`` or ``probe`` (:mod:`weightzoo.baselines.probe`).
        snapshots: the snapshots used, each a sample (``"11..20"``, ``20``, ``[1, 20]``).
        random_state: seeds the class balancing, the label shuffle and the estimator.
        balance: cut every class to the smallest per split (chance = 1/C); classification only. True or
            ``"first"``: the first networks of each class in id order (the original's); ``"random"``: a seeded
            random choice; False: no balancing.
        shuffle_labels: permute labels across networks (a control: the score must drop to chance).
        test_fraction: ignore the index's split and re-split the networks, stratified by class (for zoos too
            small for their own split); still by whole networks.
        progress: show tqdm progress bars while reading networks (and training ``dmc``).
        **params: passed to the estimator (e.g. ``max_iter=100`` for ``stats``, ``epochs=5`` for ``dmc``).

    Returns:
        a :class:`FitResult` that unpacks as ``(estimator, report)``.

    Example:
        >>> result = fit(zoo_path, target="test_accuracy", model="chance", snapshots="19..20", test_fraction=0.5)
        >>> est, report = result
        >>> report.metrics["mae"] == report.metrics["chance_mae"], len(result.train) == report.samples["train"]
        (True, True)
    """
    if model not in MODELS:
        raise UnknownNameError("model", model, MODELS)
    check_params({"random_state": random_state, "test_fraction": test_fraction, **params})
    task_of(target)  # an unknown target fails before any reading
    require_sklearn(f"the {model!r} baseline")
    zoo = as_zoo(data)
    wrap = None
    if progress:
        from tqdm.auto import tqdm

        def wrap(items):
            return tqdm(items, total=len(zoo.index), desc="reading networks", unit="net")

    train, test, protocol = load_samples(
        zoo,
        target,
        snapshots,
        features=(input_of(model),),
        balance=balance,
        random_state=random_state,
        shuffle_labels=shuffle_labels,
        test_fraction=test_fraction,
        progress=wrap,
    )
    return fit_samples(zoo, model, protocol, train, test, random_state=random_state, progress=progress, **params)


def fit_samples(
    zoo: Zoo | DatasetZoo,
    model: str,
    protocol: Protocol,
    train: Samples,
    test: Samples,
    *,
    random_state: int | None = 0,
    progress: bool = False,
    **params: Any,
) -> FitResult:
    """Fit and evaluate a model on samples already loaded with :func:`load_samples` (the core of :func:`fit`).

    Example (one model per snapshot on the same networks, as :mod:`weightzoo.baselines.analysis` does):
        >>> from weightzoo import open_zoo
        >>> zoo = open_zoo(zoo_path)
        >>> train, test, protocol = load_samples(zoo, "learning_rate", "19..20", test_fraction=0.5)
        >>> result = fit_samples(zoo, "linear", protocol, train.subset(train.snapshot == 20),
        ...                      test.subset(test.snapshot == 20))
        >>> result.report.snapshots, list(result.report.per_snapshot)
        ([20], ['20'])
    """
    task = protocol.task
    if model in ("stats", "statnn") and "min_samples_leaf" not in params:
        params = {**params, "min_samples_leaf": small_zoo_leaf(len(train))}
    if model in FEATURE_MODELS:
        estimator = make_estimator(model, task, random_state=random_state, **params)
        fit_kw, pred_kw = {}, {}
    elif model == "dmc":
        from weightzoo.baselines.dmc import DMCClassifier, DMCRegressor

        cls = DMCClassifier if task == "classification" else DMCRegressor
        estimator = cls(random_state=random_state, progress=progress, **params)
        fit_kw = {"weightn_conv": train.weightn_conv}
        pred_kw = {"weightn_conv": test.weightn_conv}
    elif model == "probe":
        from weightzoo.baselines.probe import ProbeClassifier, ProbeRegressor

        cls = ProbeClassifier if task == "classification" else ProbeRegressor
        estimator = cls(random_state=random_state, **params)
        fit_kw, pred_kw = {}, {}
    else:
        raise UnknownNameError("model", model, MODELS)
    kind = input_of(model)
    x_train, x_test = getattr(train, kind), getattr(test, kind)
    if x_train is None or x_test is None:
        raise ConfigError(f"model {model!r} needs samples loaded with features=({kind!r},)")
    start = time.perf_counter()
    estimator.fit(x_train, train.y, **fit_kw)
    seconds = time.perf_counter() - start
    if model == "dmc" and task == "classification":
        # One pass over 64 evenly spaced slices per test sample gives both per-network figures. accuracy: the
        # argmax of their averaged probabilities (this package's); mean_slice_accuracy: the original's, the
        # accuracy of those slices averaged per network.
        probs = estimator.slice_probabilities(x_test, **pred_kw)
        pred = estimator.classes_[probs.mean(axis=1).argmax(axis=1)]
        report = build_report(zoo, model, protocol, train, test, pred, seconds, params)
        hits = estimator.classes_[probs.argmax(axis=2)] == np.asarray(test.y)[:, None]
        report.metrics["mean_slice_accuracy"] = float(hits.mean(axis=1).mean())
        report.metrics["single_slice_accuracy"] = estimator.score_slices(x_test, test.y, **pred_kw)
    else:
        pred = estimator.predict(x_test, **pred_kw)
        report = build_report(zoo, model, protocol, train, test, pred, seconds, params)
    return FitResult(estimator, report, train, test, protocol)


def build_report(
    zoo: Zoo | DatasetZoo,
    model: str,
    protocol: Protocol,
    train: Samples,
    test: Samples,
    pred: np.ndarray,
    seconds: float,
    params: dict[str, Any],
) -> Report:
    """The :class:`Report` of predictions ``pred`` on ``test``: metrics, per-snapshot scores and the protocol's
    counts (``seconds``: the fit time; ``params``: the estimator's, non-scalars as their ``repr``)."""
    classify = protocol.task == "classification"
    per_snapshot = {}
    for s in sorted(set(test.snapshot.tolist())):
        m = test.snapshot == s
        if classify:
            per_snapshot[str(s)] = float(np.mean(pred[m] == test.y[m]))
        else:
            per_snapshot[str(s)] = float(np.mean(np.abs(pred[m] - test.y[m])))
    confusion: list[list[int]] = []
    if classify:
        metrics = classification_metrics(test.y, pred, len(protocol.classes))
        confusion = metrics.pop("confusion")
    else:
        metrics = regression_metrics(test.y, pred, float(np.mean(train.y)))
    return Report(
        target=protocol.target,
        model=model,
        task=protocol.task,
        snapshots=sorted(set(train.snapshot.tolist()) | set(test.snapshot.tolist())),
        metrics=metrics,
        per_snapshot=per_snapshot,
        classes=[str(c) for c in protocol.classes],
        confusion=confusion,
        dropped_classes=[str(c) for c in protocol.dropped_classes],
        excluded={str(k): v for k, v in protocol.excluded.items()},
        networks=dict(protocol.networks_used),
        samples={"train": len(train), "test": len(test)},  # networks: those of the protocol (all snapshots)
        class_counts=protocol.class_counts,
        fit_seconds=seconds,
        params={k: v if isinstance(v, (int, float, str, bool, type(None))) else repr(v) for k, v in params.items()},
        source=zoo.url,
        split=protocol.split,
    )
