"""Is a network the same in any pack on this device? The checks of ``tests/test_pack.py``, for a device the
tests cannot reach (CUDA): a mixed set of networks trained in one pack, in packs of other compositions and
alone; float32 byte identity across packs, and float64 closeness to the per-network reference loop
(``tests/reference_trainer.py``: the reader's model and optimizer classes, one tensor at a time).

Reading the float64 column: the engine and the reference do the same arithmetic up to rounding, and some networks
amplify rounding into visible differences within an epoch (Adam at high learning rates on deep architectures,
constant initialisation). On CPU, ``--networks 4 --epochs 1`` gave 1e-8 and 3e-9 for networks 0 and 1, and 4.5e-2
and 2e-2 for networks 2 (Adam, lr 4.3e-3, 5 conv and 4 dense layers) and 3 (Adam, constant initialisation). For
network 2, two threads against one move the reference's own float64 weights by up to 6e-5 in that epoch; after 12
steps the pack is as close to it as the thread count is (7.5e-9 against 3.7e-9).

    python benchmarks/pack_equivalence.py --device cuda
    python benchmarks/pack_equivalence.py --device cuda --compile   # generate --compile: the compiled regions
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

from builder.engine.pack import train_pack
from builder.engine.sources import load_images
from builder.engine.space import get_preset
from builder.engine.train import TrainConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the repository's tests/ too
from tests.reference_trainer import reference_train


def _max_diff(a, b) -> float:
    return max(float(np.nanmax(np.abs(a.weights[k].astype(np.float64) - b.weights[k]))) for k in a.weights)


def _same_bytes(a, b) -> bool:
    return all(a.weights[k].tobytes() == b.weights[k].tobytes() for k in a.weights) and a.history == b.history


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--networks", type=int, default=6)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--compile", action="store_true", help="the pack with TrainConfig.compile (builder.engine.fused)")
    args = p.parse_args()
    dev = torch.device(args.device)
    images = {"digits": load_images("digits")}
    space = get_preset("nws_main")
    ids = list(range(args.networks))
    hps = [dataclasses.replace(space.sample(0, i), dataset="digits", batch_size=32) for i in ids]
    cfg = TrainConfig(max_epochs=args.epochs, test_images=300, train_eval_images=300, compile=args.compile)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(
        f"device: {name}   torch {torch.__version__}   {len(ids)} nws_main networks (batch 32), {args.epochs} epochs"
        f"{', compiled regions' if args.compile else ''}"
    )
    full = train_pack(hps, images, zoo_seed=0, network_ids=ids, config=cfg, device=dev)
    half = train_pack(hps[::2], images, zoo_seed=0, network_ids=ids[::2], config=cfg, device=dev)
    narrow = train_pack(hps, images, zoo_seed=0, network_ids=ids, config=cfg, device=dev, width=2)
    alone = [
        train_pack([hp], images, zoo_seed=0, network_ids=[i], config=cfg, device=dev)[0]
        for i, hp in zip(ids, hps, strict=True)
    ]
    same = [_same_bytes(full[i], alone[i]) and _same_bytes(full[i], narrow[i]) for i in ids]
    same += [_same_bytes(full[i], r) for i, r in zip(ids[::2], half, strict=True)]
    print(f"float32, the same bytes in every pack (alone, half the pack, 2 at a time): {sum(same)} of {len(same)}")
    if not all(same):
        worst = max(_max_diff(full[i], alone[i]) for i in ids)
        print(f"  largest difference between a network in the pack and alone: {worst:.2e}")
    f64 = train_pack(hps, images, zoo_seed=0, network_ids=ids, config=cfg, device=dev, dtype=torch.float64)
    diffs = []
    for i, hp in zip(ids, hps, strict=True):
        plain = dataclasses.replace(cfg, compile=False)  # the reference loop is eager
        single = reference_train(hp, images["digits"], zoo_seed=0, network_id=i, config=plain, device=dev,
                                 dtype=torch.float64)  # fmt: skip
        diffs.append((_max_diff(f64[i], single), f64[i].status == single.status, f64[i].n_epochs == single.n_epochs))
    print("float64 pack against the reference loop alone, per network: max |difference| of the weights, same "
          "status and epochs")  # fmt: skip
    for i, (d, st, ep) in zip(ids, diffs, strict=True):
        print(f"  network {i}: {d:.1e}  status {'same' if st else 'DIFFERENT'}  epochs {'same' if ep else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
