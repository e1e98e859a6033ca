"""Where and when: accuracy against the position of the slice in the flat vector, and against the snapshot.

- :func:`accuracy_vs_snapshot` ("when"): one model per snapshot, trained and tested on that snapshot only (the
  same networks for every snapshot), so snapshot 1, the initialisation, shows what the weights carry before any
  data was seen (for ``dataset``: nothing, chance).
- :func:`accuracy_vs_position` ("where"): a fitted ``dmc`` evaluated on slices at evenly spaced positions of the
  flat vector (the reference uses 100), giving per position the accuracy and the mean probability of the true class.

Example:
    >>> curve = accuracy_vs_snapshot(zoo, "dataset", "stats", snapshots=[1, 5, 10, 20])  # doctest: +SKIP
    >>> {s: r.metrics["accuracy"] for s, r in curve.items()}  # doctest: +SKIP
    >>> result = fit(zoo, "dataset", "dmc")  # doctest: +SKIP
    >>> where = accuracy_vs_position(result.estimator, result.test, positions=100)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from weightzoo.baselines.estimators import input_of
from weightzoo.baselines.fitting import fit_samples
from weightzoo.baselines.report import Report, plot_curve
from weightzoo.baselines.samples import Samples, load_samples
from weightzoo.errors import ConfigError
from weightzoo.format.layout import parse_snapshots
from weightzoo.zoo import Zoo, open_zoo


def accuracy_vs_snapshot(
    data: Zoo | str | os.PathLike,
    target: str,
    model: str = "stats",
    snapshots: Any = None,
    *,
    random_state: int | None = 0,
    test_fraction: float | None = None,
    balance: bool | str = True,
    progress: bool = False,
    **params: Any,
) -> dict[int, Report]:
    """One fit per snapshot (train and test on that snapshot alone); returns ``{snapshot: report}``.

    The networks are chosen once for all snapshots (exclusions and class balancing over the whole selection);
    ``test_fraction`` re-splits them as in :func:`~weightzoo.baselines.fit`.

    Example:
        >>> reports = accuracy_vs_snapshot(zoo, "dataset", "linear", snapshots="1..20")  # doctest: +SKIP
        >>> reports[1].metrics["accuracy"], reports[20].metrics["accuracy"]  # doctest: +SKIP
    """
    zoo = data if isinstance(data, Zoo) else open_zoo(data)
    snaps = parse_snapshots(snapshots)
    train, test, protocol = load_samples(
        zoo, target, snaps, features=(input_of(model),), random_state=random_state, test_fraction=test_fraction,
        balance=balance,
    )  # fmt: skip
    out = {}
    steps = snaps
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(snaps, desc=f"when: {target} / {model}", unit="snapshot")
    for s in steps:
        result = fit_samples(
            zoo,
            model,
            protocol,
            train.subset(train.snapshot == s),
            test.subset(test.snapshot == s),
            random_state=random_state,
            **params,
        )
        out[s] = result.report
    return out


def plot_vs_snapshot(curves: dict[str, dict[int, Report]], path: str | os.PathLike) -> Path:
    """Plot ``{model: accuracy_vs_snapshot(...)}`` (accuracy, or R^2 for regression) to a PNG."""
    if not curves:
        raise ConfigError("plot_vs_snapshot() needs at least one curve")
    first = next(iter(next(iter(curves.values())).values()))
    classify = first.task == "classification"
    return plot_curve(
        {m: {s: r.score for s, r in c.items()} for m, c in curves.items()},
        path,
        xlabel="snapshot (1 = initialisation, 20 = last epoch)",
        ylabel="accuracy" if classify else "R^2",
        title=f"{first.target}: one model per snapshot",
        chance=first.metrics.get("chance") if classify else None,
    )


def accuracy_vs_position(estimator: Any, samples: Samples, positions: Any = 100, checkpoint: bool = True,
                         progress: bool = False) -> dict[str, Any]:  # fmt: skip
    """Accuracy and mean probability of the true class of a fitted ``DMCClassifier`` at evenly spaced slice
    positions (an int, or fractions in [0, 1] of the slice region); ``checkpoint``: with the model kept before the
    end of training, as the original (its checkpoint 50 of 51), or (False) the final one.

    Returns ``{"position": fractions, "offset": mean slice start in values, "accuracy": [...],
    "true_class_probability": [...], "conv_boundary": mean weightn_conv}`` (lists, JSON-ready).

    Example:
        >>> where = accuracy_vs_position(result.estimator, result.test, positions=20)  # doctest: +SKIP
        >>> int(np.argmax(where["accuracy"]))  # doctest: +SKIP
    """
    if not hasattr(estimator, "predict_slices") or not hasattr(estimator, "classes_"):
        raise ConfigError("accuracy_vs_position() needs a fitted DMCClassifier (model 'dmc', a classification target)")
    if samples.weights is None:
        raise ConfigError("accuracy_vs_position() needs samples with flat weights (features=('weights',))")
    fractions = np.linspace(0, 1, positions) if np.isscalar(positions) else np.asarray(positions, dtype=float)
    chunks = np.array_split(fractions, min(len(fractions), 10))  # positions in tenths: a bar that moves
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc="where: slice positions", unit="tenth")
    probs = np.concatenate([
        estimator.predict_slices(samples.weights, chunk, weightn_conv=samples.weightn_conv, checkpoint=checkpoint)
        for chunk in chunks
    ], axis=1)  # fmt: skip
    truth = np.searchsorted(estimator.classes_, samples.y)
    correct = estimator.classes_[probs.argmax(axis=2)] == samples.y[:, None]
    true_prob = np.take_along_axis(probs, truth[:, None, None], axis=2)[..., 0]
    lo, end = estimator._bounds(samples.weights, samples.weightn_conv)
    starts = estimator._even_starts(lo, end, fractions)
    return {
        "position": fractions.tolist(),
        "offset": starts.mean(axis=0).tolist(),
        "accuracy": correct.mean(axis=0).tolist(),
        "true_class_probability": true_prob.mean(axis=0).tolist(),
        "conv_boundary": float(np.mean(samples.weightn_conv)),
        "chance": 1.0 / len(estimator.classes_),
    }


def plot_vs_position(where: dict[str, Any], path: str | os.PathLike, title: str = "") -> Path:
    """Plot the output of :func:`accuracy_vs_position` (x: slice start in the flat vector) to a PNG."""
    path = plot_curve(
        {
            "accuracy": dict(zip(where["offset"], where["accuracy"], strict=True)),
            "p(true class)": dict(zip(where["offset"], where["true_class_probability"], strict=True)),
        },
        path,
        xlabel=f"slice start in the flat vector (conv/dense boundary at {where['conv_boundary']:.0f})",
        ylabel="test accuracy",
        title=title or "where: accuracy by slice position",
        chance=where["chance"],
        vline=where["conv_boundary"],
    )
    return path
