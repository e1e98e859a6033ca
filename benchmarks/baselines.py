"""Baselines benchmark: fit time and accuracy of every model on the same zoo in one run, and the DMC's samples/s.

For each model (``chance``, ``linear``, ``stats``, ``dmc``) the same zoo, target, snapshots and split: prints the
time to read the samples and to fit, the test accuracy (or R^2 for a regression target); then the DMC's training
throughput (slices per second, measured over its fit) and inference throughput (slices per second, whole-network
prediction) on the current device (CUDA when present). ``dmc`` is the original's network (L = 5000: 12 conv
layers, dense 1024x4-64 with batch norm and dropout 0.5, raw inputs); ``dmc-compact`` this package's small-zoo
configuration: one conv and one pool per level (8..256), standardised slices with their scale as channels
(``input_norm="slice"``) and a small head (dense 256-64, no dropout). Both run on the same samples, and their
throughput ratio is printed.
``--epochs`` keeps them short.

    python benchmarks/baselines.py --zoo runs/mnist24 --target dataset --test-fraction 0.34 --epochs 5
    python benchmarks/baselines.py --zoo ~/.cache/weightzoo/zoos/nws_fixed --target optimizer --epochs 50
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from weightzoo import open_zoo
from weightzoo.baselines import fit_samples, format_table, load_samples

#: benchmark name -> (baseline model, its parameters besides epochs, slice length and device)
VARIANTS = {
    "chance": ("chance", {}),
    "linear": ("linear", {}),
    "stats": ("stats", {}),
    "dmc": ("dmc", {}),
    # this package's small-zoo configuration: one conv and one pool per level, slice-normalised input, small head
    "dmc-compact": (
        "dmc",
        {"input_norm": "slice", "dense": (256, 64), "dropout": 0.0, "channels": (8, 16, 32, 64, 128, 256)},
    ),
}
MODELS = tuple(VARIANTS)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zoo", required=True, help="zoo folder or URL")
    p.add_argument("--target", default="dataset")
    p.add_argument("--snapshots", default="11..20")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--test-fraction", type=float, default=None, help="re-split (for zoos too small for their own)")
    p.add_argument("--epochs", type=int, default=5, help="DMC epochs (the reference trains 50)")
    p.add_argument("--slice-length", type=int, default=5000)
    p.add_argument("--device", default=None, help="DMC device (default cuda when available)")
    p.add_argument("--random-state", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args()

    zoo = open_zoo(args.zoo)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    device_name = torch.cuda.get_device_name() if device.startswith("cuda") else f"{platform.processor() or 'cpu'}"
    print(f"zoo {zoo.url}: {len(zoo)} networks; target {args.target}, snapshots {args.snapshots}; device {device_name}")
    kinds = [("weights",) if VARIANTS[m][0] == "dmc" else ("stats",) for m in args.models]
    loaded = {}
    for kind in dict.fromkeys(kinds):
        start = time.perf_counter()
        loaded[kind] = load_samples(
            zoo,
            args.target,
            args.snapshots,
            features=kind,
            random_state=args.random_state,
            test_fraction=args.test_fraction,
        )
        loaded[kind] = (*loaded[kind], time.perf_counter() - start)
    reports, rows = [], []
    for variant, kind in zip(args.models, kinds, strict=True):
        train, test, protocol, read_s = loaded[kind]
        model, params = VARIANTS[variant]
        if model == "dmc":
            params = {**params, "epochs": args.epochs, "slice_length": args.slice_length, "device": args.device}
        start = time.perf_counter()
        result = fit_samples(zoo, model, protocol, train, test, random_state=args.random_state, **params)
        total = time.perf_counter() - start
        report = result.report
        report.model = variant  # the table's column: dmc and dmc-compact side by side
        reports.append(report)
        row = {
            "model": variant,
            "read_s": read_s,
            "fit_s": report.fit_seconds,
            "fit_and_eval_s": total,
            "score": report.score,
            "train_samples": len(train),
            "test_samples": len(test),
        }
        if model == "dmc":
            est = result.estimator
            row["dmc_train_slices_per_s"] = est.samples_per_second_
            start = time.perf_counter()
            est.predict(test.weights, weightn_conv=test.weightn_conv)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            row["dmc_predict_slices_per_s"] = len(test) * est.eval_slices / (time.perf_counter() - start)
        rows.append(row)
        print(
            f"{variant:>11}: read {read_s:6.2f} s  fit {report.fit_seconds:7.2f} s  score {report.score:.3f}",
            flush=True,
        )
    print()
    print(format_table(reports))
    dmc_rows = {row["model"]: row for row in rows if "dmc_train_slices_per_s" in row}
    for row in dmc_rows.values():
        print(
            f"\n{row['model']} on {device_name} (L={args.slice_length}): training {row['dmc_train_slices_per_s']:,.0f} "
            f"slices/s, inference {row['dmc_predict_slices_per_s']:,.0f} slices/s"
        )
    if {"dmc", "dmc-compact"} <= dmc_rows.keys():
        ref, compact = dmc_rows["dmc"], dmc_rows["dmc-compact"]
        train_x = compact["dmc_train_slices_per_s"] / ref["dmc_train_slices_per_s"]
        predict_x = compact["dmc_predict_slices_per_s"] / ref["dmc_predict_slices_per_s"]
        print(
            f"dmc-compact / dmc, same run: training {train_x:.2f}x, inference {predict_x:.2f}x, "
            f"score {compact['score']:.3f} vs {ref['score']:.3f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"device": device_name, "rows": rows, "reports": [r.to_dict() for r in reports]},
                f,
                indent=1,
                default=lambda o: o.item() if isinstance(o, np.generic) else str(o),
            )


if __name__ == "__main__":
    main()
