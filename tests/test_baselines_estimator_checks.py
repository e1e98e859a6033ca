"""scikit-learn's estimator checks on the DMC estimators, where they apply (a tiny, fast configuration).

The DMC's ``X`` are flat weight vectors of *any* length (networks of different architectures, even ragged
object arrays): it reads slices of ``slice_length`` consecutive values, not a fixed set of features. The checks
built on a fixed feature count, or on error messages that name features, do not apply; each is listed with why.
"""

from __future__ import annotations

import pytest

pytest.importorskip("sklearn")

from sklearn.utils.estimator_checks import parametrize_with_checks

from tests.test_baselines import _one_thread  # noqa: F401  (one thread: tiny networks)
from weightzoo.baselines.dmc import DMCClassifier, DMCRegressor

#: A slice of 2 values fits the checks' smallest inputs (a few features); no conv layer, one small dense layer.
TINY = {
    "slice_length": 2,
    "channels": (),
    "dense": (4,),
    "epochs": 1,
    "eval_slices": 2,
    "validation_fraction": 0.0,
    "device": "cpu",
    "random_state": 0,
}

#: Checks built on a fixed number of features: a DMC accepts vectors of any length at least ``slice_length``.
VARIABLE_LENGTH = {
    "check_n_features_in": "no n_features_in_: any vector length is valid input",
    "check_n_features_in_after_fitting": "no n_features_in_: predicting a network of another size is legitimate",
    "check_fit2d_1feature": "one value is shorter than the slice; the error says so, not 'n_features = 1'",
    "check_estimators_empty_data_messages": "zero values: the error names the slice length, not '0 feature(s)'",
    "check_dtype_object": "an object array is the ragged-vector input (networks of different sizes), not an error",
    "check_fit2d_predict1d": "a 1-D X is refused as not [n_samples, n_values]; the message does not say 'Reshape'",
}
#: One epoch on two-value slices learns little: the score thresholds of the training checks do not apply, and their
#: part on a different feature count is :data:`VARIABLE_LENGTH`'s.
POOR_SCORE = {
    "check_classifiers_train": "different feature count in predict is valid input; 1 epoch scores poorly",
    "check_regressors_train": "different feature count in predict is valid input; 1 epoch scores poorly",
    "check_supervised_y_2d": "a single-output model: a column y is not raveled with a warning",
}


def _expected_failed(estimator):
    failed = {**VARIABLE_LENGTH, **POOR_SCORE}
    if isinstance(estimator, DMCRegressor):  # the classifier's label check names complex data first
        failed["check_complex_data"] = "refused, but by the slice-length check before any 'complex' message"
    return failed


@parametrize_with_checks([DMCClassifier(**TINY), DMCRegressor(**TINY)], expected_failed_checks=_expected_failed)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)
