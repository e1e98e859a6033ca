"""Pack trainer against the one-network trainer: the same networks trained both ways in one run.

For an ``nws_fixed`` set (one shape, as dense as that zoo's lanes) and an ``nws_main`` mix of shapes
(``--per-shape`` networks of each architecture and batch size, as dense as the full zoo's: 13,000 networks over
972 shapes), on the embedded digits (every network's data set is set to digits, so nothing is downloaded):
networks/hour, training images/s and peak memory of ``train_network`` one after another, of the same with
``--workers`` processes, and of ``train_pack``; then a projection of the 16,000-network regeneration in
device-hours from the pack's images/s (``--mean-epochs`` epochs of ``--epoch-images`` images per network, plus
evaluation at a third of a training image's cost: both stated assumptions, not measurements).

    python benchmarks/pack_throughput.py --networks 8 --epochs 2            # CPU
    python benchmarks/pack_throughput.py --networks 32 --epochs 1 --workers 1 --threads 1 --per-shape 13 \
        --fixed-per-shape 8                                                  # CPU, every nws_fixed batch size
    python benchmarks/pack_throughput.py --device cuda --networks 256 --epochs 3
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import resource
import time

import numpy as np
import torch

from builder.engine.pack import train_pack
from builder.engine.pack_schedule import form_packs, pack_key
from builder.engine.sources import ImageSet, load_images
from builder.engine.space import get_preset
from builder.engine.train import TrainConfig, train_network

ZOO = 16_000


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _memory(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**20:,.0f} MiB"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:,.0f} MiB rss"


def _networks(preset: str, n: int, per_shape: int | None, seed: int = 0,
              fc_width: int | None = None) -> list[tuple[int, object]]:  # fmt: skip
    """``n`` networks of the preset's first draws, data set set to digits: shapes in the order of their first
    draw, each filled with up to ``per_shape`` of its networks (None: only the first shape, as dense as
    nws_fixed's lanes in the full zoo), ordered as builder.engine.pack_schedule orders a pack."""
    space = get_preset(preset)
    groups: dict[object, list[int]] = {}
    draws = {}
    for i in range(20_000):
        hp = dataclasses.replace(space.sample(seed, i), dataset="digits")
        groups.setdefault(pack_key(hp, fc_width), []).append(i)
        draws[i] = hp
    chosen = []
    for ids in list(groups.values())[: None if per_shape is not None else 1]:
        chosen += ids[: per_shape or n][: n - len(chosen)]
    return [
        (i, draws[i]) for pack in form_packs({i: draws[i] for i in chosen}, size=n, fc_width=fc_width) for i in pack
    ]


def _digits(n_train: int | None) -> ImageSet:
    """The embedded digits, their training images repeated to ``n_train`` (None: as they are): epochs as long as
    the real data sets' (about 45,000 images) for throughput, with nothing to download."""
    img = load_images("digits")
    if n_train is None or n_train <= len(img.train_labels):
        return img
    reps = -(-n_train // len(img.train_labels))
    x, y = np.tile(img.train_images, (reps, 1, 1, 1))[:n_train], np.tile(img.train_labels, reps)[:n_train]
    return dataclasses.replace(img, train_images=x, train_labels=y)


def _single_worker(args: tuple) -> int:
    nid, hp, cfg, threads, n_train = args
    torch.set_num_threads(threads)
    return train_network(hp, _digits(n_train), zoo_seed=0, network_id=nid, config=cfg).images_seen


def measure(name: str, nets: list, cfg: TrainConfig, device: torch.device, workers: int, threads: int,
            n_train: int | None, graphs: bool = False) -> float:  # fmt: skip
    images = _digits(n_train)
    rows = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t, seen = time.perf_counter(), 0
    for nid, hp in nets:
        seen += train_network(hp, images, zoo_seed=0, network_id=nid, config=cfg, device=device).images_seen
    _sync(device)
    rows.append(("one network at a time", time.perf_counter() - t, seen, _memory(device)))
    if workers > 1 and device.type == "cpu":
        t = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            seen = sum(
                pool.map(_single_worker, [(nid, hp, cfg, max(1, threads // workers), n_train) for nid, hp in nets])
            )
        rows.append((f"--workers {workers}", time.perf_counter() - t, seen, "-"))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t = time.perf_counter()
    results = train_pack([hp for _, hp in nets], {"digits": images}, zoo_seed=0,
                         network_ids=[nid for nid, _ in nets], config=cfg, device=device)  # fmt: skip
    _sync(device)
    rows.append((f"pack of {len(nets)}", time.perf_counter() - t, sum(r.images_seen for r in results), _memory(device)))
    if device.type == "cuda" and graphs:
        torch.cuda.reset_peak_memory_stats(device)
        t = time.perf_counter()
        replayed = train_pack([hp for _, hp in nets], {"digits": images}, zoo_seed=0, cuda_graphs=True,
                              network_ids=[nid for nid, _ in nets], config=cfg, device=device)  # fmt: skip
        _sync(device)
        rows.append(
            ("  as CUDA graphs", time.perf_counter() - t, sum(r.images_seen for r in replayed), _memory(device))
        )
        same = all(
            all(np.array_equal(a.weights[k], b.weights[k]) for k in a.weights)
            for a, b in zip(results, replayed, strict=True)
        )
        print(f"CUDA graphs give the eager pack's bytes: {same}")
    base = rows[0][1]
    shapes = len({pack_key(hp, cfg.fc_width) for _, hp in nets})
    sizes = sorted({hp.batch_size for _, hp in nets})
    padded = f", dense layers padded to {cfg.fc_width} (--fc-width)" if cfg.fc_width else ""
    print(f"\n{name}: {len(nets)} networks in {shapes} shapes (batch {sizes}), {cfg.max_epochs} epochs each{padded}")
    print(f"{'trainer':<24} {'seconds':>8} {'networks/hour':>14} {'train img/s':>12} {'vs one':>7} {'memory':>14}")
    for label, seconds, seen, mem in rows:
        print(
            f"{label:<24} {seconds:>8.1f} {len(nets) / seconds * 3600:>14,.0f} {seen / seconds:>12,.0f} "
            f"{base / seconds:>7.2f} {mem:>14}"
        )
    return rows[-1][2] / rows[-1][1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--networks", type=int, default=8)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--workers", type=int, default=4, help="also the one-network trainer in this many processes")
    p.add_argument("--train-images", type=int, help="repeat digits' training images to this many (GPU: 45000)")
    p.add_argument("--per-shape", type=int, default=13, help="nws_main: networks per shape (the full zoo: ~13)")
    p.add_argument("--fixed-per-shape", type=int, help="nws_fixed: networks per batch size (default: one batch size "
                   "only, as dense as the full zoo's lanes)")  # fmt: skip
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--cuda-graphs", action="store_true", help="CUDA: also the pack as replayed CUDA graphs")
    p.add_argument("--fc-width", type=int, help="nws_main trained with dense layers padded to this width (generate "
                   "--fc-width), both ways; shapes then counted as the lanes they share (--per-shape ~40 for the "
                   "full zoo's density)")  # fmt: skip
    p.add_argument("--mean-epochs", type=float, default=110.0, help="projection: mean stop epoch (80-150 typical)")
    p.add_argument("--epoch-images", type=float, default=45_000.0, help="projection: training images per epoch")
    args = p.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    what = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({args.threads} threads)"
    print(f"device: {what}   torch {torch.__version__}")
    cfg = TrainConfig(max_epochs=args.epochs, test_images=500, train_eval_images=500)
    rate = None
    for preset in ("nws_fixed", "nws_main"):
        padded = dataclasses.replace(cfg, fc_width=args.fc_width if preset == "nws_main" else None)
        per_shape = args.per_shape if preset == "nws_main" else args.fixed_per_shape
        nets = _networks(preset, args.networks, per_shape, fc_width=padded.fc_width)
        rate = measure(preset, nets, padded, device, args.workers, args.threads, args.train_images, args.cuda_graphs)
    # Projection from the last (nws_main) pack rate: training images plus evaluation at a third of their cost.
    per_net = args.mean_epochs * args.epoch_images * 1.33
    hours = ZOO * per_net / rate / 3600
    print(
        f"\nprojection: {ZOO:,} networks x {args.mean_epochs:g} epochs x {args.epoch_images:,.0f} images (+1/3 "
        f"evaluation) at {rate:,.0f} img/s = {hours:,.0f} device-hours on this device (digits-sized images, "
        "the pack widths above; wider packs on larger devices)"
    )


if __name__ == "__main__":
    main()
