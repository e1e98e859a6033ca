"""Meta-classifier baselines: predict a network's hyper-parameters (or its test accuracy) from its weights.

``fit(zoo, target=..., model=..., snapshots=...)`` follows the protocol of the reference (Eilertsen et al. 2020;
see :mod:`weightzoo.baselines.protocol`) and returns a fitted scikit-learn-style estimator and a :class:`Report`.

Models: ``dmc`` (the paper's 1D CNN on slices of the flat weight vector, :mod:`weightzoo.baselines.dmc`),
``stats`` (gradient boosting on per-tensor statistics), ``linear`` (a linear model on the same statistics) and
``chance`` (majority class / training mean). Targets: any categorical hyper-parameter of the index
(classification), ``learning_rate``, ``test_accuracy`` (at each snapshot) and ``final_test_accuracy`` (regression).

Modules, one concept each: :mod:`~weightzoo.baselines.fitting` (``fit``, ``fit_samples``, the report's assembly),
:mod:`~weightzoo.baselines.protocol` (targets, split, classes and balancing), :mod:`~weightzoo.baselines.samples`
(``load_samples``), :mod:`~weightzoo.baselines.features` (per-tensor statistics, layer alignment),
:mod:`~weightzoo.baselines.estimators` (the scikit-learn models), :mod:`~weightzoo.baselines.dmc` and
:mod:`~weightzoo.baselines.dmc_network` (the deep meta-classifier), :mod:`~weightzoo.baselines.report`,
:mod:`~weightzoo.baselines.analysis` (when and where curves), :mod:`~weightzoo.baselines.dataset_zoo` (a
``datasets.DatasetDict`` as a zoo).

Needs the ``baselines`` extra (scikit-learn, matplotlib): ``pip install 'weightzoo[baselines]'``.

Example (``zoo_path``: a small zoo written by the test fixtures; ``runs/mnist24`` in the README):
    >>> from weightzoo.baselines import fit
    >>> est, report = fit(zoo_path, target="learning_rate", model="stats", snapshots="11..20", test_fraction=0.5)
    >>> print(report)  # doctest: +ELLIPSIS
    stats -> learning_rate (regression), snapshots 11..20, networks train 3 / test 3, samples train 30 / test 30, ...
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as out:
    ...     [p.name for p in (report.save(f"{out}/learning_rate_stats.json"), *report.plot(out))]
    ['learning_rate_stats.json', 'learning_rate_stats_per_snapshot.png']
"""

from __future__ import annotations

from weightzoo.baselines.dataset_zoo import DatasetZoo
from weightzoo.baselines.estimators import FEATURE_MODELS, MODELS, make_estimator, require_sklearn
from weightzoo.baselines.features import STATS
from weightzoo.baselines.fitting import FitResult, fit, fit_samples
from weightzoo.baselines.protocol import REGRESSION_TARGETS, TARGETS, Protocol, task_of
from weightzoo.baselines.report import Report, classification_metrics, format_table, regression_metrics
from weightzoo.baselines.samples import Samples, load_samples
from weightzoo.format.layout import parse_snapshots

__all__ = [
    "FEATURE_MODELS",
    "MODELS",
    "REGRESSION_TARGETS",
    "STATS",
    "TARGETS",
    "DatasetZoo",
    "FitResult",
    "Protocol",
    "Report",
    "Samples",
    "classification_metrics",
    "fit",
    "fit_samples",
    "format_table",
    "load_samples",
    "make_estimator",
    "parse_snapshots",
    "regression_metrics",
    "require_sklearn",
    "task_of",
]
