"""Re-train networks of a zoo from its manifest and compare them, byte for byte, with what the zoo stores.

This checks two promises at once: that a network is defined by (zoo seed, network id) and that its weights
round-trip exactly through the writer and the reader. Bit-identity needs the same device type and, on CPU, the
same thread count (both recorded in the manifest).

    python -m builder.reproduce ~/.cache/weightzoo/zoos/demo --networks 0 3
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from builder.executors import Task, train_task
from builder.space import SearchSpace
from builder.train import TrainConfig
from weightzoo.errors import WeightZooError
from weightzoo.zoo import Zoo, open_zoo


@dataclass(frozen=True)
class Comparison:
    """How one re-trained network compares with the stored one."""

    network_id: int
    identical: bool
    max_abs_diff: float
    stored_test_accuracy: float
    retrained_test_accuracy: float


def reproduce(
    zoo: Zoo,
    network_ids: Sequence[int],
    *,
    image_root: str | None = None,
    device: str | None = None,
    threads: int | None = None,
) -> list[Comparison]:
    """Re-train ``network_ids`` with the zoo's recorded configuration and compare.

    Example:
        >>> reproduce(open_zoo("zoo/demo"), [0])[0].identical  # doctest: +SKIP
        True
    """
    gen = zoo.manifest.generation
    space = SearchSpace.from_dict(gen["search_space"])
    config = TrainConfig(**gen["train"])
    out = []
    for nid in network_ids:
        row = zoo.row(nid)
        task = Task(
            space,
            zoo.manifest.zoo_seed,
            nid,
            config,
            device or gen.get("device", "cpu"),
            image_root or gen.get("image_root"),
            gen.get("cache_dir"),
            gen.get("allow_download", True),
            threads or gen.get("threads"),
        )
        record, weights = train_task(task)
        stored = zoo.read_arrays(nid, check=True)
        diff = max(float(np.nanmax(np.abs(weights[k] - stored[k]))) if weights[k].size else 0.0 for k in stored)
        same = list(weights) == list(stored) and all(weights[k].tobytes() == stored[k].tobytes() for k in stored)
        out.append(Comparison(nid, same, diff, row["final_test_accuracy"], record.snapshots["test_accuracy"][-1]))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m builder.reproduce", description=__doc__.split("\n\n")[0])
    p.add_argument("zoo", help="zoo folder or fsspec URL")
    p.add_argument("--networks", type=int, nargs="+", help="network ids (default: the first two)")
    p.add_argument("--image-root", help="image folder, if not where the zoo was generated from")
    p.add_argument("--device", help="device (default: the one recorded)")
    p.add_argument("--threads", type=int, help="CPU threads (default: the count recorded)")
    args = p.parse_args(argv)
    try:
        zoo = open_zoo(args.zoo)
        ids = args.networks or zoo.ids[:2]
        results = reproduce(zoo, ids, image_root=args.image_root, device=args.device, threads=args.threads)
    except WeightZooError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{'network':>7} {'identical':>9} {'max |diff|':>11} {'stored acc':>10} {'retrained acc':>13}")
    for r in results:
        print(
            f"{r.network_id:>7} {r.identical!s:>9} {r.max_abs_diff:>11.3g} {r.stored_test_accuracy:>10.4f} "
            f"{r.retrained_test_accuracy:>13.4f}"
        )
    return 0 if all(r.identical for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
