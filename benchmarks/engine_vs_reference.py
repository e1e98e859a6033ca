"""How close the training engine is to the per-network reference loop it replaced, and that the single and pack
trainers are one: the same networks trained both ways, compared after a few steps (an epoch of 100 images), one
epoch (600 images) and N epochs, in float32 and float64.

    python benchmarks/engine_vs_reference.py [--networks 4] [--epochs 20] [--threads 1]
    python benchmarks/engine_vs_reference.py --timing 8    # seconds: engine alone / reference loop, nws_main shapes

Prints, per precision and point, the largest difference over the networks' last snapshots, relative to the
flat vector's largest magnitude (``max |a - b| / max |b|``), for a pack against each network trained alone
(``train_network``: a pack of one; expected 0 everywhere) and for the engine against ``tests/reference_trainer.py``
(the reader's model and optimizer classes, one network and one tensor at a time: generation version 4's single
trainer). Both draw the same numbers (initialisation, data order, dropout masks, augmentation) and compute the
same functions; they differ in the order of float sums (grouped convolutions and batched matmuls against one
network's kernels), so float64 stays at rounding size where float32 differences grow with training. Early
stopping is off here (``min_epochs`` at the cap), so both run the same number of epochs.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

from builder.engine.pack import train_pack
from builder.engine.sources import load_images
from builder.engine.space import get_preset
from builder.engine.train import TrainConfig, train_network

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the repository's tests/ too
from tests.reference_trainer import reference_train


def _relative(a: dict[str, np.ndarray], b: dict[str, np.ndarray], skip: tuple[str, ...] = ()) -> float:
    """max |a - b| over the last snapshot's flat vector (less the tensors ``skip``), relative to its largest
    magnitude."""
    keys = [k for k in b if not k.endswith(skip)]
    diff = max(float(np.abs(a[k][-1] - b[k][-1]).max()) for k in keys)
    return diff / max(float(np.abs(b[k][-1]).max()) for k in keys)


#: A conv layer's bias comes right before batch norm, which removes it: its gradient is pure rounding noise, which
#: Adam turns into full-size steps, so it (and the moving mean that absorbs it) differs by its own size between any
#: two summation orders, in any precision, without changing what the network computes.
_NO_EFFECT = tuple(f"conv{i}{t}" for i in range(8) for t in (".bias", "_bn.running_mean"))


def timing(n: int, epochs: int) -> None:
    """Time one network alone through the engine (a lane of one, computed as two) against the reference loop, on
    ``n`` nws_main shapes (digits, early stopping off), alternating, twice each; print the ratio of the sums."""
    images = load_images("digits")
    space = get_preset("nws_main")
    cfg = TrainConfig(max_epochs=epochs, min_epochs=epochs, test_images=300, train_eval_images=300)
    total = {"engine": 0.0, "reference": 0.0}
    for nid in range(n):
        hp = dataclasses.replace(space.sample(0, nid), dataset="digits")
        for _ in range(2):
            for name, fn in (("engine", train_network), ("reference", reference_train)):
                start = time.perf_counter()
                fn(hp, images, zoo_seed=0, network_id=nid, config=cfg)
                total[name] += time.perf_counter() - start
    print(f"{n} nws_main shapes on digits, {epochs} epoch(s), twice each, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s): engine {total['engine']:.1f} s, reference loop "
          f"{total['reference']:.1f} s, ratio {total['engine'] / total['reference']:.2f}")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--networks", type=int, default=4)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--timing", type=int, metavar="N", help="time N networks alone instead (engine / reference)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.timing:
        return timing(args.timing, min(args.epochs, 2))
    images = {"digits": load_images("digits")}
    space = get_preset("demo")
    hps = [h for h in (space.sample(0, i) for i in range(200)) if h.batch_size == 32][: args.networks]
    ids = list(range(len(hps)))
    points = {
        "a few steps": TrainConfig(max_epochs=1, min_epochs=1, train_images=100),  # an epoch of 2-3 batches of 32
        "1 epoch": TrainConfig(max_epochs=1, min_epochs=1, train_images=600),
        f"{args.epochs} epochs": TrainConfig(max_epochs=args.epochs, min_epochs=args.epochs, train_images=600),
    }
    print(f"{len(hps)} demo networks (batch 32; {', '.join(sorted({h.optimizer for h in hps}))}); torch "
          f"{torch.__version__}, {args.threads} thread(s)")  # fmt: skip
    print("each cell: all weights / without conv biases and their moving means / test accuracy (points)")
    for label, other in (
        ("pack vs alone (train_network)", train_network),
        ("engine vs reference loop", reference_train),
    ):
        print(f"\n{label}\n| precision | {' | '.join(points)} |\n|---|{'---|' * len(points)}")
        for dtype in (torch.float32, torch.float64):
            row = []
            for config in points.values():
                config = dataclasses.replace(config, test_images=200, train_eval_images=200)
                packed = train_pack(hps, images, zoo_seed=0, network_ids=ids, config=config, dtype=dtype)
                worst = [0.0, 0.0, 0.0]
                for hp, nid, r in zip(hps, ids, packed, strict=True):
                    alone = other(hp, images["digits"], zoo_seed=0, network_id=nid, config=config, dtype=dtype)
                    acc = abs(r.history["test_accuracy"][-1] - alone.history["test_accuracy"][-1]) * 100
                    found = (_relative(r.weights, alone.weights), _relative(r.weights, alone.weights, _NO_EFFECT), acc)
                    worst = [max(w, f) for w, f in zip(worst, found, strict=True)]
                row.append(f"{worst[0]:.1e} / {worst[1]:.1e} / {worst[2]:.1f}")
            print(f"| {str(dtype).removeprefix('torch.')} | {' | '.join(row)} |", flush=True)


if __name__ == "__main__":
    main()
