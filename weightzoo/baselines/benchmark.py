"""The accuracy-prediction benchmark of the weight-space literature, on any zoo.

The protocol the literature uses on the Small CNN Zoo (Unterthiner et al. 2020) since NFN (Zhou et al. 2023),
applied to any weightzoo zoo:

- one sample per network: its final snapshot (snapshot 20 of an NWS zoo, the last checkpoint of a converted one),
  target its test accuracy there;
  networks that diverged or hold non-finite weights are left out and counted (as in every ``fit``);
- a fixed permutation of the networks (seeded by ``split_seed``): the second half is the test set; the first half,
  shuffled again with the same seed, is split 80/20 into train and validation. One sample per network, so the
  split is by network: no network (and no checkpoint of one) is on two sides;
- each model is fitted on train with ``seeds`` random states (the split stays fixed) and scored on validation and
  test by Kendall's tau and R^2, reported as mean ± standard deviation over the seeds.

A Small CNN Zoo converted with NFN's split file (``weightzoo convert --format smallcnnzoo --split-file ...``) is
split as NFN splits it (:func:`nfn_split`): its final checkpoints in the file's order (the index's
``nfn_position``), the second half test, the first half shuffled by Python's ``random.Random(0)`` and split 80/20
into train and validation; ``split_seed`` does not apply there.

Leakage traps of the public splits this protocol avoids (docs/baselines.md): splitting the Small CNN Zoo by *row*
puts checkpoints of one run on both sides (every run has 9 rows), and the NFN split files carry one extra leading
index (a ``0`` line) read as an index, so one network can appear twice. Splits here are made by network id.

Example (a zoo of 10 networks or more; ``python -m weightzoo.baselines.benchmark`` is the command)::

    result = run_benchmark("runs/mnist120", ["stats", "statnn", "probe", "chance"], seeds=3)
    print(result.markdown())
    result.save("runs/mnist120-benchmark")  # benchmark.md, benchmark.json, benchmark.png
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from weightzoo.baselines.estimators import MODELS, input_of
from weightzoo.baselines.fitting import as_zoo, fit_samples
from weightzoo.baselines.report import _figure_class, regression_metrics
from weightzoo.baselines.samples import Samples, load_samples
from weightzoo.cli import ArgumentParser, add_progress_flags, command, prog, progress_of, run_main
from weightzoo.errors import ConfigError, UnknownNameError
from weightzoo.format.layout import NUM_SNAPSHOTS
from weightzoo.options import check_params, device_type, option_type
from weightzoo.paths import default_zoo_dir

__all__ = ["BenchmarkResult", "benchmark_split", "nfn_split", "run_benchmark"]

#: The target of the benchmark: the test accuracy at the final snapshot.
TARGET = "test_accuracy"


@dataclass
class BenchmarkResult:
    """The benchmark's table: per model, Kendall's tau and R^2 on validation and test (mean and std over
    ``seeds``), with the split's sizes and what was left out."""

    zoo: str
    seeds: list[int]
    split_seed: int
    sizes: dict[str, int]
    excluded: dict[int, str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    #: How the networks were split: ``permutation (seed k)``, or ``nfn`` (a Small CNN Zoo's NFN split file).
    split: str = "permutation"

    def markdown(self) -> str:
        """The table as markdown (mean ± std over the seeds)."""
        lines = [
            f"Accuracy prediction on {self.zoo}: final snapshot, test accuracy; networks train {self.sizes['train']}"
            f" / validation {self.sizes['val']} / test {self.sizes['test']} (split: {self.split}; "
            f"{len(self.excluded)} left out); mean ± std over seeds {self.seeds}.",
            "",
            "| model | test Kendall τ | test R² | val Kendall τ | val R² | fit seconds |",
            "|---|---|---|---|---|---|",
        ]
        for row in self.rows:
            cells = [_pm(row, f"{side}_{m}") for side in ("test", "val") for m in ("kendall_tau", "r2")]
            lines.append(f"| {row['model']} | {' | '.join(cells)} | {row['seconds']:.1f} |")
        return "\n".join(lines) + "\n"

    def save(self, out: str | os.PathLike) -> list[Path]:
        """Write ``benchmark.md``, ``benchmark.json`` and ``benchmark.png`` (Kendall's tau per model, with the
        seeds' spread) into the folder ``out``; return their paths."""
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        md, js, png = folder / "benchmark.md", folder / "benchmark.json", folder / "benchmark.png"
        md.write_text(self.markdown())
        js.write_text(json.dumps(asdict(self), indent=1, default=str) + "\n")
        fig = _figure_class()(figsize=(max(4.0, 1.2 * len(self.rows) + 1.5), 3.6))
        ax = fig.add_subplot(1, 1, 1)
        x = np.arange(len(self.rows))
        for k, side in enumerate(("val", "test")):
            means = [r[f"{side}_kendall_tau"]["mean"] for r in self.rows]
            stds = [r[f"{side}_kendall_tau"]["std"] for r in self.rows]
            ax.bar(x + (k - 0.5) * 0.38, means, 0.38, yerr=stds, capsize=3, label=side)
        ax.set_xticks(x, [r["model"] for r in self.rows])
        ax.set_ylabel("Kendall τ (final test accuracy)")
        ax.set_title(f"accuracy prediction, {Path(self.zoo).name or self.zoo}")
        ax.axhline(0, color="grey", lw=0.5)
        ax.legend()
        fig.tight_layout()
        fig.savefig(png, dpi=120)
        return [md, js, png]


def _pm(row: dict[str, Any], key: str) -> str:
    cell = row[key]
    return f"{cell['mean']:.3f} ± {cell['std']:.3f}"


def benchmark_split(network_ids: Sequence[int], split_seed: int = 0) -> dict[str, list[int]]:
    """The benchmark's split of ``network_ids``: a seeded permutation, its second half test, its first half
    shuffled again and split 80/20 into train and validation (each list sorted).

    Example:
        >>> split = benchmark_split(range(20))
        >>> [len(split[s]) for s in ("train", "val", "test")], set(split["test"]) & set(split["train"])
        ([8, 2, 10], set())
    """
    ids = np.asarray(sorted(network_ids))
    rng = np.random.default_rng(split_seed)
    order = ids[rng.permutation(len(ids))]
    half = len(order) // 2
    first, test = order[:half], order[half:]
    first = first[rng.permutation(len(first))]
    n_train = round(0.8 * len(first))
    return {"train": sorted(first[:n_train].tolist()), "val": sorted(first[n_train:].tolist()),
            "test": sorted(test.tolist())}  # fmt: skip


def nfn_split(positions: dict[int, int]) -> dict[str, list[int]]:
    """NFN's split (``experiments/data_utils.py``, ``_split_indices_iid``) of the networks at ``positions`` (their
    final checkpoint's position among the final checkpoints in the split file's order; negative: not there): the
    second half of that order test, the first half's positions shuffled by ``random.Random(0)``, the first 80 %
    train, the rest validation.

    Example:
        >>> split = nfn_split({n: n for n in range(10)})
        >>> split["test"], len(split["train"]), len(split["val"])
        ([5, 6, 7, 8, 9], 4, 1)
    """
    import random

    order = [n for n, p in sorted(positions.items(), key=lambda kv: kv[1]) if p >= 0]
    half = int(0.5 * len(order))
    trainval = list(range(half))
    val_point = int(0.8 * len(trainval))
    random.Random(0).shuffle(trainval)
    return {"train": sorted(order[i] for i in trainval[:val_point]),
            "val": sorted(order[i] for i in trainval[val_point:]), "test": sorted(order[half:])}  # fmt: skip


def run_benchmark(
    data: Any,
    models: Sequence[str] = ("stats", "statnn", "linear", "chance"),
    *,
    seeds: int = 3,
    split_seed: int = 0,
    params: dict[str, dict[str, Any]] | None = None,
    progress: bool = False,
) -> BenchmarkResult:
    """Run the accuracy-prediction benchmark (see the module docstring) on a zoo for ``models``.

    ``params``: per model, keyword arguments for its estimator (``{"probe": {"epochs": 100}}``). ``seeds``: how
    many random states (0, 1, ...) each model is fitted with.
    """
    check_params({"seeds": seeds, "random_state": split_seed})
    for model in models:
        if model not in MODELS:
            raise UnknownNameError("model", model, MODELS)
    zoo = as_zoo(data)
    kinds = tuple(dict.fromkeys(input_of(m) for m in models))
    # every usable network's final snapshot; the index's own split is ignored (re-split below)
    last = getattr(zoo, "last_snapshot", NUM_SNAPSHOTS)  # a datasets source: an NWS zoo
    train, test, protocol = load_samples(zoo, TARGET, last, features=kinds, balance=False)
    pool = _concat(train, test)
    if "nfn_position" in zoo.index.column_names:  # NFN's own split, over every final checkpoint it lists
        positions = dict(zip(zoo.index.column("network_id").to_pylist(), zoo.index.column("nfn_position").to_pylist(),
                             strict=True))  # fmt: skip
        usable = set(pool.network_id.tolist())
        split = {s: [n for n in ids if n in usable] for s, ids in nfn_split(positions).items()}
        how = "nfn"
    else:
        split = benchmark_split(pool.network_id.tolist(), split_seed)
        how = f"permutation (seed {split_seed})"
    if min(len(v) for v in split.values()) < 2:
        raise ConfigError(
            f"{zoo.url}: {len(pool)} usable networks give a split of {[len(v) for v in split.values()]} "
            "(train/val/test); the benchmark needs at least 2 in each (10 networks or more)"
        )
    parts = {s: pool.subset(np.isin(pool.network_id, ids)) for s, ids in split.items()}
    result = BenchmarkResult(str(zoo.url), list(range(seeds)), split_seed, {s: len(v) for s, v in split.items()},
                             dict(protocol.excluded), split=how)  # fmt: skip
    for model in models:
        scores: dict[str, list[float]] = {}
        chosen: list[str | None] = []
        seconds = 0.0
        for seed in range(seeds):
            fitted = fit_samples(zoo, model, protocol, parts["train"], parts["test"], random_state=seed,
                                 progress=progress, **(params or {}).get(model, {}))  # fmt: skip
            seconds += fitted.report.fit_seconds
            y_mean = float(parts["train"].y.mean())
            found = {
                side: regression_metrics(parts[side].y, fitted.estimator.predict(fitted.inputs(parts[side])), y_mean)
                for side in ("test", "val")
            }
            for side, metrics in found.items():
                for name in ("kendall_tau", "r2"):
                    scores.setdefault(f"{side}_{name}", []).append(metrics[name])
            chosen.append(getattr(fitted.estimator, "features_", None))
        row: dict[str, Any] = {"model": model, "seconds": seconds / seeds}
        if any(chosen):  # the probing model: the features each seed's cross-validation chose
            row["features"] = chosen
        for key, values in scores.items():
            row[key] = {"mean": float(np.mean(values)), "std": float(np.std(values)), "values": values}
        result.rows.append(row)
    return result


def _concat(a: Samples, b: Samples) -> Samples:
    """Two sample sets as one (in network order)."""
    fields = ("network_id", "snapshot", "y", "weightn_conv", "stats", "statnn", "weights", "networks")
    values = {}
    for name in fields:
        x, y = getattr(a, name), getattr(b, name)
        values[name] = None if x is None else np.concatenate([x, y])
    merged = Samples(**values)
    return merged.subset(np.argsort(merged.network_id, kind="stable"))


#: What ``--help`` says the command does.
DESCRIPTION = (
    "The accuracy-prediction benchmark (final snapshot, permutation split 40/10/50, Kendall tau and R^2 over seeds) "
    "on a zoo, for a list of models; prints the table and writes it as markdown, JSON and a plot."
)


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=prog("weightzoo.baselines.benchmark"), description=DESCRIPTION)
    p.add_argument("zoo", nargs="?", help=f"zoo folder or URL (default: {default_zoo_dir()})")
    defaults = ["stats", "statnn", "linear", "chance"]
    p.add_argument("--model", nargs="+", default=defaults, choices=MODELS, metavar="M",
                   help=f"models to compare ({', '.join(MODELS)}; default: {' '.join(defaults)})")  # fmt: skip
    p.add_argument("--seeds", type=option_type("seeds"), default=3, help="random states per model (default 3)")
    p.add_argument("--split-seed", type=option_type("random_state"), default=0, help="the permutation's seed")
    p.add_argument("--out", help="folder for benchmark.md, .json and .png (default: benchmark-out/<zoo name>)")
    p.add_argument("--epochs", type=option_type("epochs"), help="training epochs of probe and dmc")
    p.add_argument("--n-probes", type=option_type("n_probes"), help="probe: probe images (default 16)")
    p.add_argument("--device", type=device_type, help="probe and dmc: torch device (default: cuda when present)")
    add_progress_flags(p)
    return p


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    zoo = as_zoo(args.zoo or default_zoo_dir())
    shared = {"epochs": args.epochs, "device": args.device}
    params = {
        "probe": {**shared, "n_probes": args.n_probes},
        "dmc": shared,
    }
    params = {m: {k: v for k, v in p.items() if v is not None} for m, p in params.items()}
    result = run_benchmark(zoo, args.model, seeds=args.seeds, split_seed=args.split_seed, params=params,
                           progress=bool(progress_of(args)))  # fmt: skip
    print(result.markdown())
    out = Path(args.out or Path("benchmark-out") / (zoo.manifest.name if hasattr(zoo, "manifest") else "zoo"))
    for path in result.save(out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    run_main(main)
