"""Command line: fit baselines on a zoo, print a results table, write JSON reports and plots.

Example:
    python -m weightzoo.baselines --data-dir runs/mnist24 --target dataset optimizer --model stats linear chance \\
        --snapshots 11..20 --when --out baselines-out/mnist24
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from weightzoo.baselines import MODELS, TARGETS, Report, fit, format_table
from weightzoo.cli import ArgumentParser, add_progress_flags, command, prog, progress_of, run_main
from weightzoo.errors import ConfigError, TooFewClassesError
from weightzoo.options import device_type, option_type
from weightzoo.zoo import open_zoo


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=prog("weightzoo.baselines"),
        description="Predict hyper-parameters (or test accuracy) from weights: fit baselines, print a table, write "
        "reports (JSON) and plots. Protocol: train/test by whole networks (the index's split), classes balanced "
        "per split (chance = 1/C), each selected snapshot a sample, diverged networks excluded and counted.",
    )
    p.add_argument("zoo", nargs="?", help="zoo folder or fsspec URL (default: the demo zoo, as every weightzoo tool)")
    p.add_argument("--data-dir", dest="data_dir", default=None, help=argparse.SUPPRESS)  # the former spelling
    p.add_argument(
        "--target", nargs="+", default=["dataset"], metavar="T", help=f"one or more of: {', '.join(TARGETS)}"
    )
    p.add_argument("--model", nargs="+", default=["stats"], choices=MODELS, metavar="M", help=f"{', '.join(MODELS)}")
    p.add_argument("--snapshots", default="11..20", help="snapshots used as samples, e.g. 11..20, 20, 1,20")
    p.add_argument("--out", default=None, help="output folder (default baselines-out/<zoo name>)")
    p.add_argument(
        "--seed",
        "--random-state",
        dest="random_state",
        type=option_type("random_state"),
        default=0,
        help="random seed (default 0)",
    )
    p.add_argument(
        "--test-fraction",
        type=option_type("test_fraction"),
        default=None,
        help="re-split networks (stratified by class) instead of the zoo's split; for zoos too small for their own",
    )
    p.add_argument(
        "--balance",
        choices=("first", "random", "none"),
        default="first",
        help="class balancing per split: first (default, the original's: the first networks of each class in id "
        "order), random (a seeded choice), none",
    )
    p.add_argument("--shuffle-labels", action="store_true", help="control run: permute labels across networks")
    p.add_argument("--when", action="store_true", help="also fit one model per snapshot 1..20 and plot the curve")
    p.add_argument("--where", action="store_true", help="dmc: accuracy against slice position (100 positions)")
    p.add_argument("--verbose", action="store_true", help="print every report in full")
    add_progress_flags(p)
    dmc = p.add_argument_group("dmc options")
    dmc.add_argument("--epochs", type=option_type("epochs"), default=None, help="training epochs (default 50)")
    dmc.add_argument(
        "--slice-length",
        type=option_type("slice_length"),
        default=None,
        help="L, consecutive weights per slice (default 5000)",
    )
    dmc.add_argument("--region", choices=("all", "conv", "dense"), default=None, help="where slices are drawn")
    dmc.add_argument(
        "--input-norm",
        choices=("none", "slice"),
        default=None,
        help="none: raw values (the reference); slice: standardise each slice and add its scale as channels",
    )
    widths = {
        "channels": "a smaller conv stack, one conv and one pool per listed width (default: the original's network)",
        "dense": "dense widths (default 1024 1024 1024 1024 64)",
    }
    for name, text in widths.items():
        dmc.add_argument(f"--{name}", type=option_type(name), nargs="+", default=None, help=text)
    dmc.add_argument(
        "--dropout", type=option_type("dropout"), default=None, help="dropout after each dense layer (default 0.5)"
    )
    dmc.add_argument(
        "--learning-rate", type=option_type("learning_rate"), default=None, help="Adam learning rate (default 1e-3)"
    )
    dmc.add_argument(
        "--batching",
        choices=("stream", "epoch"),
        default=None,
        help="stream (default, the original's: full batches from a wrap-around stream, 51 checkpoints) or epoch "
        "(every sample once per epoch, validated after each)",
    )
    dmc.add_argument(
        "--bn-at-test",
        choices=("moving", "batch"),
        default=None,
        help="moving: batch norm uses its moving statistics at test time (default); batch: the original's "
        "train-mode batch norm at test time (a prediction depends on its batch)",
    )
    dmc.add_argument(
        "--standardize-target", action="store_true", help="regression: fit the standardised target (not the raw one)"
    )
    dmc.add_argument("--device", type=device_type, default=None, help="torch device (default cuda when available)")
    gbm = p.add_argument_group("stats options")
    gbm.add_argument("--max-iter", type=option_type("max_iter"), default=None, help="boosting iterations (default 100)")
    return p


_parser = build_parser  # the name every tool's parser has (the option-range test walks them all)


@command
def main(argv: list[str] | None = None) -> int:
    return _run(build_parser().parse_args(argv))


def _params(args: argparse.Namespace, model: str) -> dict:
    if model == "dmc":
        names = {
            "epochs": args.epochs,
            "slice_length": args.slice_length,
            "region": args.region,
            "input_norm": args.input_norm,
            "dense": None if args.dense is None else tuple(args.dense),
            "channels": None if args.channels is None else tuple(args.channels),
            "dropout": args.dropout,
            "learning_rate": args.learning_rate,
            "bn_at_test": args.bn_at_test,
            "batching": args.batching,
            "standardize_target": args.standardize_target or None,
            "device": args.device,
        }
    elif model in ("stats", "statnn"):
        names = {"max_iter": args.max_iter}
    else:
        names = {}
    return {k: v for k, v in names.items() if v is not None}


def _run(args: argparse.Namespace) -> int:
    if args.zoo and args.data_dir and args.zoo != args.data_dir:
        raise ConfigError(f"two zoos given: {args.zoo!r} and --data-dir {args.data_dir!r}; give one")
    zoo = open_zoo(args.zoo or args.data_dir)  # none given: the demo zoo, as every tool
    out = Path(args.out or Path("baselines-out") / (zoo.manifest.name or "zoo"))  # created with the first report
    progress = progress_of(args)
    reports: list[Report] = []
    skipped: list[str] = []
    for target in args.target:
        curves = {}
        for model in args.model:
            params = _params(args, model)
            try:
                result = fit(
                    zoo,
                    target,
                    model,
                    args.snapshots,
                    random_state=args.random_state,
                    balance=False if args.balance == "none" else args.balance,
                    shuffle_labels=args.shuffle_labels,
                    test_fraction=args.test_fraction,
                    progress=progress,
                    **params,
                )
            except TooFewClassesError as exc:  # this target only: the others still run
                print(f"skipped target {target}: {exc}", file=sys.stderr, flush=True)
                skipped.append(target)
                break
            report = result.report
            reports.append(report)
            out.mkdir(parents=True, exist_ok=True)
            report.save(out / f"{target}_{model}.json")
            report.plot(out)
            print(report if args.verbose else f"{target} / {model}: done in {report.fit_seconds:.1f} s", flush=True)
            if args.where and model == "dmc" and report.task == "classification":
                from weightzoo.baselines.analysis import accuracy_vs_position, plot_vs_position

                where = accuracy_vs_position(result.estimator, result.test, positions=100, progress=progress)
                (out / f"{target}_dmc_where.json").write_text(json.dumps(where, indent=1) + "\n")
                plot_vs_position(where, out / f"{target}_dmc_where.png", title=f"{target}: where (dmc)")
            if args.when:
                from weightzoo.baselines.analysis import accuracy_vs_snapshot

                curves[model] = accuracy_vs_snapshot(
                    zoo,
                    target,
                    model,
                    "1..20",
                    random_state=args.random_state,
                    test_fraction=args.test_fraction,
                    balance=False if args.balance == "none" else args.balance,
                    progress=progress,
                    **params,
                )
                when = {m: {s: r.score for s, r in c.items()} for m, c in curves.items()}
                (out / f"{target}_when.json").write_text(json.dumps(when, indent=1) + "\n")
        if curves:
            from weightzoo.baselines.analysis import plot_vs_snapshot

            plot_vs_snapshot(curves, out / f"{target}_when.png")
            for model, curve in curves.items():
                first, last = curve[min(curve)], curve[max(curve)]
                print(f"{target} / {model} when: snapshot 1 {first.score:.3f} -> snapshot 20 {last.score:.3f}")
    if not reports:
        raise TooFewClassesError(f"no target could be fitted on {zoo.url}: {', '.join(skipped)} skipped (above)")
    excluded = reports[0].excluded
    table = format_table(reports)
    header = (
        f"zoo {zoo.url} ({len(zoo)} networks, {len(excluded)} excluded: "
        f"{', '.join(f'{k} {v}' for k, v in excluded.items()) or 'none'}), snapshots {args.snapshots}, "
        f"split: {reports[0].split if reports else 'index'}"
    )
    (out / "table.md").write_text(header + "\n\n" + table + "\n")
    print(header)
    print(table)
    print(f"reports and plots in {out}")
    return 0


if __name__ == "__main__":
    run_main(main)
