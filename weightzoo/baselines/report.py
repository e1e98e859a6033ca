"""The result of a baseline fit: metrics, protocol counts, and ways to print, save (JSON) and plot it.

Classification: accuracy, balanced accuracy, chance level (``1/C`` on balanced data), confusion matrix (rows true,
columns predicted), accuracy per snapshot. Regression: MAE, R^2, Kendall tau, the MAE of predicting the training
mean, and MAE per snapshot.

Example:
    >>> est, report = weightzoo.baselines.fit(zoo, target="dataset", model="stats")  # doctest: +SKIP
    >>> print(report); report.save("out/report.json"); report.plot("out")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from weightzoo.errors import MissingExtraError

#: What the DMC's per-network figures are, printed beside them.
_METRIC_NOTES = {
    "accuracy": "   (argmax of the class probabilities averaged over 64 evenly spaced slices)",
    "mean_slice_accuracy": "   (the original's: accuracy of 64 evenly spaced slices, averaged per network)",
    "single_slice_accuracy": "   (one random slice per sample)",
}


@dataclass
class Report:
    """Metrics and protocol of one fitted baseline (all fields JSON-serialisable)."""

    target: str
    model: str
    task: str
    snapshots: list[int]
    metrics: dict[str, float]
    #: snapshot (as a string, for JSON) -> accuracy (classification) or MAE (regression) on the test samples.
    per_snapshot: dict[str, float] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)
    dropped_classes: list[str] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)
    networks: dict[str, int] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)
    class_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    fit_seconds: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    #: how train and test were formed (``index``: the zoo's own split column).
    split: str = "index"

    @property
    def score(self) -> float:
        """The headline number: accuracy (classification) or R^2 (regression)."""
        return self.metrics["accuracy"] if self.task == "classification" else self.metrics["r2"]

    def summary_row(self) -> dict[str, Any]:
        """One row of a results table."""
        m = self.metrics
        if self.task == "classification":
            extra = ""
            if "mean_slice_accuracy" in m:  # the DMC: the original's per-network figure, and one random slice
                extra = f"mean of 64 slices {m['mean_slice_accuracy']:.3f} (original's); "
            if "single_slice_accuracy" in m:
                extra += f"single-slice {m['single_slice_accuracy']:.3f}"
            return {
                "target": self.target,
                "model": self.model,
                "score": f"acc {m['accuracy']:.3f} (bal {m['balanced_accuracy']:.3f})",
                "chance": f"{m['chance']:.3f}",
                "test nets": self.networks.get("test", 0),
                "notes": extra,
            }
        return {
            "target": self.target,
            "model": self.model,
            "score": f"R2 {m['r2']:.3f} MAE {m['mae']:.4g} tau {m['kendall_tau']:.3f}",
            "chance": f"MAE {m['chance_mae']:.4g}",
            "test nets": self.networks.get("test", 0),
            "notes": "",
        }

    def __str__(self) -> str:
        lines = [
            f"{self.model} -> {self.target} ({self.task}), snapshots {_ranges(self.snapshots)}, "
            f"networks train {self.networks.get('train', 0)} / test {self.networks.get('test', 0)}, "
            f"samples train {self.samples.get('train', 0)} / test {self.samples.get('test', 0)}, "
            f"excluded {len(self.excluded)}, fit {self.fit_seconds:.1f} s, split: {self.split}",
        ]
        notes = _METRIC_NOTES if "mean_slice_accuracy" in self.metrics else {}
        lines += [f"  {k:<22} {v:.4f}{notes.get(k, '')}" for k, v in self.metrics.items()]
        if self.dropped_classes:
            lines.append(f"  classes not in both splits (not classes): {self.dropped_classes}")
        if self.confusion:
            width = max(len(c) for c in self.classes) + 1
            lines.append("  confusion (rows true, columns predicted):")
            lines.append("  " + " " * width + " ".join(f"{c[:8]:>8}" for c in self.classes))
            for c, row in zip(self.classes, self.confusion, strict=True):
                lines.append(f"  {c:<{width}}" + " ".join(f"{v:>8d}" for v in row))
        if self.per_snapshot:
            name = "accuracy" if self.task == "classification" else "MAE"
            lines.append(f"  {name} per snapshot: " + ", ".join(f"{k}: {v:.3f}" for k, v in self.per_snapshot.items()))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the report as JSON; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Report:
        return cls(**json.loads(Path(path).read_text()))

    def plot(self, out_dir: str | os.PathLike, prefix: str | None = None) -> list[Path]:
        """Write the confusion matrix (classification) and the per-snapshot curve as PNGs; returns the paths."""
        figure = _figure_class()
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        prefix = prefix or f"{self.target}_{self.model}"
        paths = []
        if self.confusion:
            cm = np.asarray(self.confusion, dtype=float)
            fig = figure(figsize=(1.8 + 0.7 * len(self.classes), 1.2 + 0.6 * len(self.classes)))
            ax = fig.subplots()
            norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
            im = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
            ax.set_xticks(range(len(self.classes)), self.classes, rotation=45, ha="right")
            ax.set_yticks(range(len(self.classes)), self.classes)
            for (i, j), v in np.ndenumerate(cm):
                ax.text(j, i, int(v), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
            ax.set_xlabel("predicted")
            ax.set_ylabel("true")
            ax.set_title(f"{self.model}: {self.target} (acc {self.metrics['accuracy']:.2f})")
            fig.colorbar(im, ax=ax)
            fig.tight_layout()
            paths.append(out / f"{prefix}_confusion.png")
            fig.savefig(paths[-1], dpi=100)
        if self.per_snapshot:
            paths.append(
                plot_curve(
                    {self.model: self.per_snapshot},
                    out / f"{prefix}_per_snapshot.png",
                    xlabel="snapshot (1 = initialisation)",
                    ylabel="accuracy" if self.task == "classification" else "MAE",
                    title=f"{self.target}: test samples by snapshot",
                    chance=self.metrics.get("chance"),
                )
            )
        return paths


def plot_curve(
    curves: dict[str, dict[Any, float]],
    path: str | os.PathLike,
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    chance: float | None = None,
    vline: float | None = None,
) -> Path:
    """Plot named curves ``{label: {x: y}}`` (optional chance line, optional vertical marker) to a PNG."""
    fig = _figure_class()(figsize=(6, 3.5))
    ax = fig.subplots()
    for label, curve in curves.items():
        xs = [float(x) for x in curve]
        ax.plot(xs, list(curve.values()), marker="o", ms=3, label=label)
    if chance is not None:
        ax.axhline(chance, color="grey", ls="--", label="chance level")
    if vline is not None:
        ax.axvline(vline, color="black", ls=":", lw=1)
    xs_all = sorted({float(x) for curve in curves.values() for x in curve})
    if xs_all and len(xs_all) <= 25 and all(x.is_integer() for x in xs_all):
        ax.set_xticks(xs_all)  # snapshots: whole numbers
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def format_table(reports: list[Report]) -> str:
    """A Markdown table, one row per report."""
    rows = [r.summary_row() for r in reports]
    if not rows:
        return ""
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    lines = ["| " + " | ".join(f"{c:<{widths[c]}}" for c in cols) + " |"]
    lines.append("|" + "|".join("-" * (widths[c] + 2) for c in cols) + "|")
    lines += ["| " + " | ".join(f"{r[c]!s:<{widths[c]}}" for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, Any]:
    """Accuracy, balanced accuracy, chance (``1/C``) and the confusion matrix."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    recall = np.diag(cm) / np.maximum(cm.sum(axis=1), 1)
    present = cm.sum(axis=1) > 0
    return {
        "accuracy": float(np.mean(np.asarray(y_true) == np.asarray(y_pred))) if len(y_true) else float("nan"),
        "balanced_accuracy": float(recall[present].mean()) if present.any() else float("nan"),
        "chance": 1.0 / n_classes,
        "confusion": cm.tolist(),
    }


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray, y_train_mean: float) -> dict[str, float]:
    """MAE, R^2, Kendall tau, and the MAE of predicting the training mean."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    ss_tot = float(((y_true - y_true.mean()) ** 2).sum())
    r2 = 1.0 - float(((y_true - y_pred) ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")
    return {
        "mae": float(np.abs(y_true - y_pred).mean()),
        "r2": r2,
        "kendall_tau": kendall_tau(y_true, y_pred),
        "chance_mae": float(np.abs(y_true - y_train_mean).mean()),
    }


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-b (``nan`` when either side is constant)."""
    try:
        from scipy.stats import kendalltau
    except ImportError:
        raise MissingExtraError("scipy", "baselines", "Kendall tau") from None
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(kendalltau(a, b).statistic)


def _ranges(snaps: list[int]) -> str:
    if snaps and list(snaps) == list(range(snaps[0], snaps[-1] + 1)) and len(snaps) > 2:
        return f"{snaps[0]}..{snaps[-1]}"
    return ",".join(map(str, snaps))


def _figure_class() -> Any:
    """matplotlib's ``Figure`` (object-oriented API with the Agg canvas: no pyplot, no global backend change)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingExtraError("matplotlib", "baselines", "plotting a report") from None
    return Figure
