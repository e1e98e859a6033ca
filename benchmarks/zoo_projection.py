"""The full zoo on one GPU, projected from counted work: the real 16,000-network schedule (3,000 ``nws_fixed`` and
13,000 ``nws_main`` networks, the zoo's own draws, the generator's packs, refills and exports), every lane step
and export counted by the engine itself (:mod:`builder.engine.projection`), turned into hours under stated device
assumptions. Runs anywhere (CPU); deterministic.

    python benchmarks/zoo_projection.py                 # the full zoo, width 256, stop epochs uniform 80..150
    python benchmarks/zoo_projection.py --main 1300 --fixed 300   # a tenth, quicker
    python benchmarks/zoo_projection.py --fc-width 192           # nws_main generated with --fc-width 192
    python benchmarks/zoo_projection.py --fc-width 192 --filter-size 7  # and with generate --filter-size 7
    python benchmarks/zoo_projection.py --fc-width 192 --eval-batch-size 10000  # generate's GPU evaluation batch
    python benchmarks/zoo_projection.py --fc-width 192 --filter-size 7 --merge conv_width  # conv widths (modelled)
    python benchmarks/zoo_projection.py --fc-width 192 --filter-size 7 --eval-batch-size 10000 --compile  # generate
        --compile: batch norm, activations and optimizer updates compiled, their work counted by Inductor
"""

from __future__ import annotations

import argparse

import torch
from tqdm import tqdm

from builder.engine.pack_schedule import MAX_WIDTH, MEMORY_SHARE, QUEUE_DEPTH
from builder.engine.projection import Device, WorkCounter
from builder.engine.replay import MERGE_KERNELS, MERGES, Projection, project, stop_epochs
from builder.engine.space import get_preset
from builder.engine.train_config import TrainConfig


def table(name: str, p: Projection, device: Device, traffic: str = "unfused") -> None:
    print(
        f"\n{name}: {p.networks:,} networks, {p.network_steps:,} network-steps, {p.lane_steps:,} lane steps "
        f"in {p.pack_steps:,} pack steps"
    )
    print(f"  training: {p.train.kernels:,.0f} kernels ({p.ops_per_network_step:.1f} per network-step), "
          f"{p.train.flops:.3g} FLOP, {p.train.bytes:.3g} bytes ({traffic})")  # fmt: skip
    print(f"  exports (weights copy and clean evaluation, every epoch): {p.exports.kernels:,.0f} kernels, "
          f"{p.exports.flops:.3g} FLOP, {p.exports.bytes:.3g} bytes")  # fmt: skip
    print(f"  hours on one {device.name} (per step the longest of launches, memory traffic and compute):")
    precisions = list(device.peak_flops)
    print(f"    {'launches':<14}" + "".join(f"{p_:>16}" for p_ in precisions))
    for mode, _, _ in device.modes():
        cells = [f"{p.hours(mode, pr):8.1f} {p.dominant(mode, pr):>7}" for pr in precisions]
        print(f"    {mode:<14}" + "".join(f"{c:>16}" for c in cells))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0, help="zoo seed (the hyper-parameter draws)")
    ap.add_argument("--fixed", type=int, default=3000, help="nws_fixed networks")
    ap.add_argument("--main", type=int, default=13000, help="nws_main networks")
    ap.add_argument("--width", type=int, default=MAX_WIDTH, help="networks training at once per pack")
    ap.add_argument("--stop", type=int, nargs=2, default=[80, 150], metavar=("LOW", "HIGH"),
                    help="stop epochs drawn uniformly from LOW..HIGH")  # fmt: skip
    ap.add_argument("--memory-gb", type=float, default=80.0, help="device memory (the pack plans for "
                    f"{MEMORY_SHARE:.0%} of it)")  # fmt: skip
    ap.add_argument("--eager-us", type=float, help="measured µs per eager kernel (benchmarks/gpu_sweep.py)")
    ap.add_argument("--graph-us", type=float, help="measured µs per kernel inside a CUDA graph")
    ap.add_argument("--fc-width", type=int, help="nws_main trained with generate --fc-width (dense layers padded "
                    "to this width, so dense widths share lanes; built: counted from the engine)")  # fmt: skip
    ap.add_argument("--filter-size", type=int, help="nws_main trained with generate --filter-size (kernels padded "
                    "to this size, so filter sizes share lanes; built: counted from the engine)")  # fmt: skip
    ap.add_argument("--eval-batch-size", type=int, help="images per evaluation batch of the exports (generate's "
                    f"--eval-batch-size; default {TrainConfig.eval_batch_size}, 10000 on a GPU)")  # fmt: skip
    ap.add_argument("--merge", nargs="*", default=[], choices=sorted(MERGES), help="assume nws_main networks that "
                    "differ only in these fields share lanes, padded to the largest value (modelled)")  # fmt: skip
    ap.add_argument("--compile", action="store_true", help="the zoo trained with generate --compile: each layer's "
                    "batch norm and activation, and each optimizer update, a region compiled by Inductor, its "
                    "kernels and bytes Inductor's (compiles each variant at small shapes: a few minutes)")  # fmt: skip
    args = ap.parse_args()
    if args.width < 1 or args.fixed < 0 or args.main < 0 or args.memory_gb <= 0:
        ap.error("--width must be at least 1, --fixed and --main at least 0, --memory-gb above 0")
    if args.fc_width is not None and args.fc_width < 192:
        ap.error(f"--fc-width {args.fc_width}: expected at least 192, nws_main's widest dense width")
    if args.filter_size is not None and (args.filter_size < 7 or args.filter_size % 2 == 0):
        ap.error(f"--filter-size {args.filter_size}: expected an odd size of at least 7, nws_main's largest")
    if args.eval_batch_size is not None and args.eval_batch_size < 1:
        ap.error(f"--eval-batch-size {args.eval_batch_size}: expected at least 1")
    if not 1 <= args.stop[0] <= args.stop[1]:
        ap.error(f"--stop LOW HIGH: expected 1 <= LOW <= HIGH, got {args.stop[0]} {args.stop[1]}")
    torch.set_num_threads(1)
    device, counter = Device(), WorkCounter(eval_batch_size=args.eval_batch_size, compile=args.compile)
    if args.eager_us or args.graph_us:
        eager = (args.eager_us or device.launch_s["eager"] * 1e6) * 1e-6
        graph = (args.graph_us or device.graph_s * 1e6) * 1e-6
        device = Device(name=f"{device.name} (measured launches)", launch_s={"eager": eager}, graph_s=graph)
    budget = args.memory_gb * 2**30 * MEMORY_SHARE
    print(f"{device.name}: launches {', '.join(f'{k} {v * 1e6:.1f} µs' for k, v in device.launch_s.items())}, "
          f"in a CUDA graph {device.graph_s * 1e6:.1f} µs; "
          f"memory {device.bandwidth / 1e12:.2f} TB/s; "
          f"{', '.join(f'{k} {v / 1e12:.0f} TFLOPS' for k, v in device.peak_flops.items())}")  # fmt: skip
    print(f"schedule: packs of width {args.width} queuing {QUEUE_DEPTH}x that, {budget / 2**30:.0f} GiB planned; "
          f"stop epochs uniform {args.stop[0]}..{args.stop[1]} (seed {args.seed})")  # fmt: skip
    padded = counter
    if args.fc_width or args.filter_size:
        padded = WorkCounter(args.fc_width, args.eval_batch_size, args.filter_size, args.compile)
        padded.regions = counter.regions  # one set of Inductor fits
    if args.fc_width:
        print(f"nws_main with --fc-width {args.fc_width}: dense layers padded, dense widths sharing lanes")
    if args.filter_size:
        print(f"nws_main with --filter-size {args.filter_size}: kernels padded, filter sizes sharing lanes")
    if args.compile:
        print(
            "--compile: each layer's batch norm and activation one compiled region (training, forward and "
            "backward, and evaluation), each optimizer run's update another; their kernels and bytes Inductor's "
            "(its scheduler's fused nodes, the buffers they read and write)"
        )
    print(f"exports evaluated in batches of {counter.config.eval_batch_size:,} images")
    if args.merge:
        fields = ", ".join(f"{MERGES[m][0]} padded to {MERGES[m][1]}" for m in args.merge)
        print(
            f"assumed (not built): nws_main lanes merged by {fields}; {MERGE_KERNELS} kernels per lane step and "
            "the gradient mask's traffic added"
        )
    total = Projection()
    for k, (preset, n) in enumerate((("nws_fixed", args.fixed), ("nws_main", args.main))):
        if n == 0:
            continue
        space = get_preset(preset)
        hps = {i: space.sample(args.seed, i) for i in range(n)}
        stops = dict(enumerate(stop_epochs(n, seed=args.seed * 2 + k, low=args.stop[0], high=args.stop[1])))
        with tqdm(total=n, desc=preset, unit="net", leave=False, disable=None) as bar:
            merges, used = (args.merge, padded) if preset == "nws_main" else ((), counter)
            p = project(hps, stops, used, device, width=args.width, budget_bytes=budget, progress=bar,
                        merges=merges)  # fmt: skip
        traffic = "compiled regions fused" if args.compile else "unfused"
        table(preset, p, device, traffic)
        total.merge(p)
    table("full zoo", total, device, traffic)


if __name__ == "__main__":
    main()
