"""The feature-based baselines: scikit-learn estimators on per-tensor statistics, and the chance reference.

- ``stats``: histogram gradient boosting (``HistGradientBoostingClassifier`` / ``...Regressor``) on the per-tensor
  statistics of :mod:`weightzoo.baselines.features`, the strong baseline of Unterthiner et al. 2020;
- ``statnn``: the same booster on the StatNN features as the weight-space literature computes them (mean,
  variance and five quantiles of each layer's weights and biases; Unterthiner et al. fit LightGBM on them, NFN an
  MLP: gradient boosting here, scikit-learn's);
- ``linear``: mean-imputed (with missing-value indicators) and standardised features, then logistic regression
  (classification, C = 1) or ridge regression
  (regression, alpha = 1; not chosen by leave-one-out, which the near-identical snapshots of one network would
  leak). Linear models extrapolate: on tiny zoos a test network outside the training range can be far off;
- ``chance``: the majority class (on class-balanced data its accuracy is ``1/C``) or the training mean.

These are plain scikit-learn estimators (``fit``/``predict``/``predict_proba``/``score``, ``random_state``, learned
attributes ending in ``_``); extra keyword arguments go to the underlying estimator.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.standard_normal((40, 7)), np.arange(40) % 2
    >>> X[:, 0] += 10 * y  # one feature carries the class
    >>> est = make_estimator("stats", "classification", random_state=0, max_iter=20, min_samples_leaf=2)
    >>> est.fit(X[:30], y[:30]).score(X[30:], y[30:])
    1.0
"""

from __future__ import annotations

from typing import Any

import numpy as np

from weightzoo.errors import MissingExtraError, UnknownNameError

#: Models that take per-tensor statistics as input (``statnn``: gradient boosting on the StatNN features).
FEATURE_MODELS: tuple[str, ...] = ("stats", "statnn", "linear", "chance")
#: Every model name ``weightzoo.baselines.fit`` accepts.
MODELS: tuple[str, ...] = (*FEATURE_MODELS, "dmc", "probe")
#: Model -> the kind of input it takes: ``"stats"`` (per-tensor statistics), ``"weights"`` (flat vectors) or
#: ``"networks"`` (runnable networks, :class:`~weightzoo.baselines.probe.NetworkSample`).
INPUT_OF: dict[str, str] = {
    **dict.fromkeys(FEATURE_MODELS, "stats"), "statnn": "statnn", "dmc": "weights", "probe": "networks",
}  # fmt: skip


def input_of(model: str) -> str:
    """The kind of input ``model`` takes (:data:`INPUT_OF`): ``"stats"`` or ``"weights"``.

    Example:
        >>> input_of("linear"), input_of("dmc")
        ('stats', 'weights')
    """
    if model not in INPUT_OF:
        raise UnknownNameError("model", model, MODELS)
    return INPUT_OF[model]


def small_zoo_leaf(n_train: int) -> int:
    """The boosters' ``min_samples_leaf`` for ``n_train`` training samples: scikit-learn's default (20) forbids
    any split below 40 samples, so on small zoos (one snapshot of a few dozen networks) the booster would only
    ever predict the prior; a tenth of the samples there, 20 from 200 on.

    Example:
        >>> small_zoo_leaf(8), small_zoo_leaf(80), small_zoo_leaf(5000)
        (1, 8, 20)
    """
    return int(np.clip(n_train // 10, 1, 20))


def require_sklearn(purpose: str) -> None:
    """Raise :class:`MissingExtraError` naming the ``baselines`` extra when scikit-learn is missing."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise MissingExtraError("scikit-learn", "baselines", purpose) from None


def make_estimator(model: str, task: str, *, random_state: int | None = 0, **params: Any) -> Any:
    """An unfitted scikit-learn estimator for a feature model (``stats``, ``linear``, ``chance``) and a task.

    Example:
        >>> make_estimator("chance", "classification")
        DummyClassifier(strategy='most_frequent')
        >>> make_estimator("linear", "regression")[-1]
        Ridge()
    """
    if model not in FEATURE_MODELS:
        raise UnknownNameError("feature model", model, FEATURE_MODELS)
    if task not in ("classification", "regression"):
        raise UnknownNameError("task", task, ("classification", "regression"))
    require_sklearn(f"the {model!r} baseline")
    classify = task == "classification"
    if model in ("stats", "statnn"):
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        cls = HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor
        return cls(random_state=random_state, **params)
    if model == "linear":
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression, Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if classify:
            est = LogisticRegression(**{"max_iter": 2000, "C": 1.0, "random_state": random_state, **params})
        else:
            est = Ridge(**{"alpha": 1.0, **params})
        # NaN marks a layer role a network lacks (mixed architectures): mean-impute it and add an indicator.
        return make_pipeline(SimpleImputer(add_indicator=True, keep_empty_features=True), StandardScaler(), est)
    from sklearn.dummy import DummyClassifier, DummyRegressor

    if classify:
        return DummyClassifier(strategy="most_frequent", **params)
    return DummyRegressor(strategy="mean", **params)
