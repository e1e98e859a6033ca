"""Probing against weight statistics on one zoo, side by side in one run: every categorical target and the final
test accuracy, each model fitted with the same seeds on the same networks.

- categorical targets: ``weightzoo.baselines.fit`` on the final snapshot (one sample per network), the index's
  split, classes balanced per split; accuracy on the test networks, mean ± std over ``--seeds`` random states;
- ``test_accuracy``: the accuracy-prediction benchmark (``weightzoo.baselines.benchmark``: permutation split
  40/10/50, Kendall tau and R^2 on the test networks).

Prints a markdown table (best mean of each row in bold) and the fit seconds of each model, and writes the table,
its JSON and a plot into ``--out``.

    python benchmarks/probe_vs_stats.py runs/mnist120 --out benchmarks/results/probe_vs_stats
"""

from __future__ import annotations

import argparse
import ast
import json
import platform
from pathlib import Path

import numpy as np
import torch

import weightzoo
from weightzoo.baselines import fit_samples, load_samples
from weightzoo.baselines.benchmark import run_benchmark
from weightzoo.baselines.estimators import input_of
from weightzoo.baselines.report import _figure_class

TARGETS = ("dataset", "optimizer", "activation", "initialization", "batch_size", "augmentation")


def _variant(spec: str) -> tuple[str, str, dict[str, object]]:
    """``probe:features=probes,head=mlp`` -> (label, model, params); values parsed as Python literals or kept."""
    model, _, rest = spec.partition(":")
    params: dict[str, object] = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        try:
            params[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[key] = value
    return spec, model, params


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("zoo", help="zoo folder or URL")
    p.add_argument("--models", nargs="+",
                   default=["stats", "statnn", "probe", "probe:features=probes", "probe:readout=outputs"],
                   help="models, a variant as model:key=value,... (probe:head=mlp)")  # fmt: skip
    p.add_argument("--targets", nargs="+", default=list(TARGETS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--probe-epochs", type=int, help="stage 1's epochs (default: the model's, 10)")
    p.add_argument("--n-probes", type=int, help="probe images (default: the model's, 16)")
    p.add_argument("--out", default="benchmarks/results/probe_vs_stats")
    args = p.parse_args()
    torch.set_num_threads(1)
    zoo = weightzoo.open_zoo(args.zoo)
    variants = [_variant(m) for m in args.models]
    probe = {"device": "cpu", "epochs": args.probe_epochs, "n_probes": args.n_probes}
    probe = {k: v for k, v in probe.items() if v is not None}
    params = {label: {**(probe if model == "probe" else {}), **extra} for label, model, extra in variants}
    labels = [label for label, _, _ in variants]
    kinds = tuple(dict.fromkeys(input_of(model) for _, model, _ in variants))
    table: dict[str, dict[str, list[float]]] = {}
    chosen: dict[str, dict[str, list[str]]] = {}
    seconds: dict[str, float] = dict.fromkeys(labels, 0.0)
    sizes = {}
    for target in args.targets:
        train, test, protocol = load_samples(zoo, target, 20, features=kinds)
        sizes[target] = (len(train), len(test), len(protocol.classes))
        for label, model, _ in variants:
            for seed in range(args.seeds):
                result = fit_samples(zoo, model, protocol, train, test, random_state=seed, **params[label])
                table.setdefault(target, {}).setdefault(label, []).append(result.report.metrics["accuracy"])
                seconds[label] += result.report.fit_seconds
                if hasattr(result.estimator, "features_"):
                    chosen.setdefault(target, {}).setdefault(label, []).append(result.estimator.features_)
        print(target, {m: f"{np.mean(v):.3f}" for m, v in table[target].items()}, chosen.get(target, ""), flush=True)
    for label, model, _ in variants:
        bench = run_benchmark(zoo, [model], seeds=args.seeds, params={model: params[label]})
        (row,) = bench.rows
        table.setdefault("test_accuracy (Kendall τ)", {})[label] = row["test_kendall_tau"]["values"]
        table.setdefault("test_accuracy (R²)", {})[label] = row["test_r2"]["values"]
        for name in ("test_accuracy (Kendall τ)", "test_accuracy (R²)"):
            if "features" in row:
                chosen.setdefault(name, {})[label] = row["features"]
        seconds[label] += row["seconds"] * args.seeds
    args.models = labels
    lines = [f"| target | {' | '.join(args.models)} | networks train / test (classes) |",
             "|---|" + "---|" * (len(args.models) + 1)]  # fmt: skip
    for target, by_model in table.items():
        best = max(np.mean(v) for v in by_model.values())
        cells = [
            (
                f"**{np.mean(by_model[m]):.3f}**"
                if np.isclose(np.mean(by_model[m]), best)
                else f"{np.mean(by_model[m]):.3f}"
            )
            + f" ± {np.std(by_model[m]):.3f}"
            + _choice(chosen.get(target, {}).get(m))
            for m in args.models
        ]
        size = sizes.get(target)
        where = f"{size[0]} / {size[1]} ({size[2]})" if size else f"{bench.sizes['train']} / {bench.sizes['test']}"
        lines.append(f"| {target} | {' | '.join(cells)} | {where} |")
    lines.append(f"| fit seconds, all targets and seeds | {' | '.join(f'{seconds[m]:.0f}' for m in args.models)} | |")
    text = "\n".join(lines) + "\n"
    print(f"\nzoo {zoo.url}: {len(zoo)} networks; seeds {args.seeds}; {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}, 1 thread\n")  # fmt: skip
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(text)
    (out / "table.json").write_text(json.dumps({"zoo": str(zoo.url), "seeds": args.seeds, "table": table,
                                                "features_chosen": chosen, "fit_seconds": seconds},
                                               indent=1) + "\n")  # fmt: skip
    fig = _figure_class()(figsize=(1.6 * len(table) + 2, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(table))
    width = 0.8 / len(args.models)
    for k, model in enumerate(args.models):
        means = [np.mean(table[t][model]) for t in table]
        stds = [np.std(table[t][model]) for t in table]
        ax.bar(x + (k - (len(args.models) - 1) / 2) * width, means, width, yerr=stds, capsize=2, label=model)
    ax.set_xticks(x, [t.replace(" (", "\n(") for t in table], fontsize=7)
    ax.set_ylabel("accuracy / Kendall τ / R²")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "probe_vs_stats.png", dpi=120)
    print(f"wrote {out}/table.md, table.json, probe_vs_stats.png")


def _choice(features: list[str] | None) -> str:
    """The feature sets the probing model's cross-validation chose over the seeds, as ``(stats ×2, probes)``."""
    if not features or all(f == "probes" for f in features):
        return ""
    counts = {f: features.count(f) for f in dict.fromkeys(features)}
    return " (" + ", ".join(f + (f" ×{c}" if c > 1 else "") for f, c in counts.items()) + ")"


if __name__ == "__main__":
    main()
