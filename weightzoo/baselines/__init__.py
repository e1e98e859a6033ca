"""Meta-classifier baselines: predict a network's hyper-parameters (or its test accuracy) from its weights.

``fit(zoo, target=..., model=..., snapshots=...)`` follows the protocol of the reference (Eilertsen et al. 2020;
see :mod:`weightzoo.baselines.features`) and returns a fitted scikit-learn-style estimator and a :class:`Report`.

Models: ``dmc`` (the paper's 1D CNN on slices of the flat weight vector, :mod:`weightzoo.baselines.dmc`),
``stats`` (gradient boosting on per-tensor statistics), ``linear`` (a linear model on the same statistics) and
``chance`` (majority class / training mean). Targets: any categorical hyper-parameter of the index
(classification), ``learning_rate``, ``test_accuracy`` (at each snapshot) and ``final_test_accuracy`` (regression).

Needs the ``baselines`` extra (scikit-learn, matplotlib): ``pip install 'weightzoo[baselines]'``.

Example:
    >>> from weightzoo.baselines import fit
    >>> est, report = fit("runs/mnist24", target="dataset", model="stats", snapshots="11..20")  # doctest: +SKIP
    >>> print(report)  # doctest: +SKIP
    >>> report.save("out/dataset_stats.json"); report.plot("out")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from weightzoo.baselines.features import (
    REGRESSION_TARGETS,
    STATS,
    TARGETS,
    DatasetZoo,
    Protocol,
    Samples,
    load_samples,
    parse_snapshots,
    task_of,
)
from weightzoo.baselines.models import FEATURE_MODELS, MODELS, make_estimator, require_sklearn
from weightzoo.baselines.report import Report, classification_metrics, format_table, regression_metrics
from weightzoo.errors import ConfigError, UnknownNameError
from weightzoo.zoo import Zoo, open_zoo

__all__ = [
    "MODELS",
    "REGRESSION_TARGETS",
    "STATS",
    "TARGETS",
    "DatasetZoo",
    "FitResult",
    "Protocol",
    "Report",
    "Samples",
    "fit",
    "fit_samples",
    "format_table",
    "load_samples",
    "parse_snapshots",
]


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
        """The estimator's input for some samples: the statistics, or the flat vectors for ``dmc``."""
        return samples.weights if self.report.model == "dmc" else samples.stats


def _as_zoo(data: Any) -> Zoo:
    if isinstance(data, Zoo):
        return data
    if isinstance(data, (str, os.PathLike)):
        return open_zoo(data)
    if isinstance(data, DatasetZoo):
        return data
    if type(data).__name__ == "DatasetDict":
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
    balance: bool = True,
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
        model: ``stats``, ``linear``, ``chance`` or ``dmc``.
        snapshots: the snapshots used, each a sample (``"11..20"``, ``20``, ``[1, 20]``).
        random_state: seeds the class balancing, the label shuffle and the estimator.
        balance: subsample every class to the smallest per split (chance = 1/C); classification only.
        shuffle_labels: permute labels across networks (a control: the score must drop to chance).
        test_fraction: ignore the index's split and re-split the networks, stratified by class (for zoos too
            small for their own split); still by whole networks.
        progress: show tqdm progress bars while reading networks (and training ``dmc``).
        **params: passed to the estimator (e.g. ``max_iter=100`` for ``stats``, ``epochs=5`` for ``dmc``).

    Returns:
        a :class:`FitResult` that unpacks as ``(estimator, report)``.

    Example:
        >>> est, report = fit(zoo, target="optimizer", model="linear", snapshots=20)  # doctest: +SKIP
        >>> report.metrics["accuracy"] > report.metrics["chance"]  # doctest: +SKIP
        True
    """
    if model not in MODELS:
        raise UnknownNameError("model", model, MODELS)
    task_of(target)  # an unknown target fails before any reading
    require_sklearn(f"the {model!r} baseline")
    zoo = _as_zoo(data)
    wrap = None
    if progress:
        from tqdm.auto import tqdm

        def wrap(items):
            return tqdm(items, desc="reading networks", unit="net")

    features = ("weights",) if model == "dmc" else ("stats",)
    train, test, protocol = load_samples(
        zoo,
        target,
        snapshots,
        features=features,
        balance=balance,
        random_state=random_state,
        shuffle_labels=shuffle_labels,
        test_fraction=test_fraction,
        progress=wrap,
    )
    return fit_samples(zoo, model, protocol, train, test, random_state=random_state, progress=progress, **params)


def fit_samples(
    zoo: Zoo,
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

    Example:
        >>> train, test, protocol = load_samples(zoo, "dataset", "1..20")  # doctest: +SKIP
        >>> fit_samples(zoo, "stats", protocol, train.subset(train.snapshot == 20),
        ...             test.subset(test.snapshot == 20)).report  # doctest: +SKIP
    """
    task = protocol.task
    if model == "stats" and "min_samples_leaf" not in params:
        # scikit-learn's default (20) forbids any split below 40 samples: on small zoos (one snapshot of a few
        # dozen networks) the booster would only ever predict the prior; scale it down there, keep 20 otherwise
        params = {**params, "min_samples_leaf": int(np.clip(len(train) // 10, 1, 20))}
    if model in FEATURE_MODELS:
        estimator = make_estimator(model, task, random_state=random_state, **params)
        x_train, x_test, fit_kw, pred_kw = train.stats, test.stats, {}, {}
    elif model == "dmc":
        from weightzoo.baselines.dmc import DMCClassifier, DMCRegressor

        cls = DMCClassifier if task == "classification" else DMCRegressor
        estimator = cls(random_state=random_state, progress=progress, **params)
        x_train, x_test = train.weights, test.weights
        fit_kw = {"weightn_conv": train.weightn_conv}
        pred_kw = {"weightn_conv": test.weightn_conv}
    else:
        raise UnknownNameError("model", model, MODELS)
    if x_train is None or x_test is None:
        kind = "weights" if model == "dmc" else "stats"
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
        report = _report(zoo, model, protocol, train, test, pred, seconds, params)
        hits = estimator.classes_[probs.argmax(axis=2)] == np.asarray(test.y)[:, None]
        report.metrics["mean_slice_accuracy"] = float(hits.mean(axis=1).mean())
        report.metrics["single_slice_accuracy"] = estimator.score_slices(x_test, test.y, **pred_kw)
    else:
        pred = estimator.predict(x_test, **pred_kw)
        report = _report(zoo, model, protocol, train, test, pred, seconds, params)
    return FitResult(estimator, report, train, test, protocol)


def _report(
    zoo: Zoo,
    model: str,
    protocol: Protocol,
    train: Samples,
    test: Samples,
    pred: np.ndarray,
    seconds: float,
    params: dict[str, Any],
) -> Report:
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
