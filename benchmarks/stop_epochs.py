"""How long the networks of one or more zoos trained: stop epochs (median, quartiles, share at the epoch cap) and
status counts, side by side, with a histogram.

Made to compare early-stopping rules on the same networks: generate two zoos with the same seed and options, one
per weightzoo release (or generation version), then

    python benchmarks/stop_epochs.py runs/es-before runs/es-after --labels "version 1" "version 2" \
        --plot docs/figures/stop_epochs.png
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from weightzoo import open_zoo


def summarise(path: str) -> dict[str, object]:
    """Stop-epoch statistics of one zoo (every network, whatever its status)."""
    zoo = open_zoo(path)
    df = zoo.networks
    epochs = df["n_epochs"].to_numpy()
    cap = zoo.manifest.record.train.max_epochs
    q1, median, q3 = np.percentile(epochs, [25, 50, 75])
    return {
        "zoo": path,
        "version": zoo.manifest.generation_version,
        "networks": len(df),
        "median": float(median),
        "q1": float(q1),
        "q3": float(q3),
        "min": int(epochs.min()),
        "max": int(epochs.max()),
        "cap": cap,
        "at_cap": float(np.mean(epochs >= cap)),
        "status": df["status"].value_counts().to_dict(),
        "epochs": epochs,
        "images_seen": int(df["images_seen"].sum()),
        "seconds": _train_seconds(zoo),
    }


def _train_seconds(zoo) -> float:
    """Wall-clock training seconds of the zoo's networks: provenance.json, or the index column of older zoos."""
    if "train_seconds" in zoo.provenance:
        return float(sum(zoo.provenance["train_seconds"].values()))
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(pa.BufferReader(zoo.fs.cat_file(f"{zoo.root}/index.parquet")))
    return float(sum(table.column("train_seconds").to_pylist())) if "train_seconds" in table.column_names else 0.0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("zoos", nargs="+", help="zoo folders or URLs")
    p.add_argument("--labels", nargs="+", help="a label per zoo (default: the paths)")
    p.add_argument("--plot", help="save a histogram of the stop epochs here (PNG)")
    args = p.parse_args(argv)
    labels = args.labels or args.zoos
    if len(labels) != len(args.zoos):
        p.error(f"{len(args.zoos)} zoos but {len(labels)} labels")
    rows = [summarise(z) for z in args.zoos]
    print(f"{'zoo':<24} {'gen':>3} {'nets':>5} {'median':>7} {'q1':>6} {'q3':>6} {'range':>10} {'at cap':>7}  status")
    for label, r in zip(labels, rows, strict=True):
        print(
            f"{label:<24} {r['version']:>3} {r['networks']:>5} {r['median']:>7.0f} {r['q1']:>6.0f} {r['q3']:>6.0f} "
            f"{r['min']:>4}-{r['max']:<5} {r['at_cap']:>7.0%}  {r['status']}"
        )
    if len(rows) > 1:
        base = rows[0]
        for label, r in zip(labels[1:], rows[1:], strict=True):
            print(
                f"{label} / {labels[0]}: median epochs x{r['median'] / base['median']:.2f}, training images "
                f"x{r['images_seen'] / max(base['images_seen'], 1):.2f}, training seconds "
                f"x{r['seconds'] / max(base['seconds'], 1e-9):.2f}"
            )
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 3.5))
        cap = max(r["cap"] for r in rows)
        bins = np.linspace(0, cap, 41)
        for label, r in zip(labels, rows, strict=True):
            ax.hist(r["epochs"], bins=bins, alpha=0.6, label=f"{label} (median {r['median']:.0f})")
        ax.set_xlabel("trained epochs at stop")
        ax.set_ylabel("networks")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"saved {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
