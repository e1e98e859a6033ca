"""One lane step on a GPU, swept: pack width x {eager, CUDA graph} x {fp32, TF32} x cudnn.benchmark, for an
``nws_fixed`` lane (one shape) and a realistic ``nws_main`` lane (one architecture and batch size, optimizers,
activations and augmentation mixed). Per setting: milliseconds per lane step, network-steps per second, the
speed-up over one network at a time (a lane of one, in the same setting) and the effective microseconds per
counted kernel (step time over :class:`builder.engine.op_count.OpCounter`'s count), which is what
``benchmarks/zoo_projection.py --launch-us`` takes to recompute the full-zoo projection from measurements.

Then a realistic ``nws_main`` pack (``--pack`` networks: the first pack the generator forms from the zoo's 13,000
draws, about 19 lanes, with their shared front, :mod:`builder.engine.pack_front`), with its own shapes, with
``--fc-width 192`` (dense widths sharing lanes) and with ``--fc-width 192 --filter-size 7`` (filter sizes too), per
{eager, CUDA graph} x {fp32, TF32}: milliseconds per pack step, network-steps per second and microseconds per
counted kernel.

    python benchmarks/gpu_sweep.py --device cuda --widths 1 16 64 256 --pack 256
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import time
from collections.abc import Callable

import torch

from builder.engine.member import DeviceImages, Member
from builder.engine.op_count import OpCounter
from builder.engine.pack_front import GRAPH_WARMUP, Front
from builder.engine.pack_lane import Lane
from builder.engine.pack_schedule import QUEUE_DEPTH, form_packs
from builder.engine.sources import load_images
from builder.engine.space import get_preset
from builder.engine.train_config import TrainConfig


def lane_of(preset: str, width: int, images: DeviceImages, cfg: TrainConfig, graphs: bool) -> Lane:
    """A lane of ``width`` networks of the preset's first architecture and batch size drawn (digits data)."""
    space = get_preset(preset)
    first = space.sample(0, 0)
    hps = [
        dataclasses.replace(space.sample(0, i), dataset="digits", **{
            f: getattr(first, f) for f in ("filter_size", "depth_conv", "depth_fc", "width_conv", "width_fc",
                                           "batch_size")})
        for i in range(width)
    ]  # fmt: skip
    lane = Lane(cfg, images.device, torch.float32, cuda_graphs=graphs)
    lane.restack([], [Member(hp, images, 0, i, cfg, torch.float32) for i, hp in enumerate(hps)])
    return lane


def time_steps(stepped: Lane | Front, steps: int) -> float:
    """Seconds per step of a lane or a pack (its front) after warming up (and capturing, with graphs); members cycle
    through their epoch."""

    def step() -> None:
        stepped.step()
        for m in stepped.members:
            m.batch = (m.batch + 1) % m.n_batches

    for _ in range(GRAPH_WARMUP + 2):
        step()
    torch.cuda.synchronize(stepped.device)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize(stepped.device)
    return (time.perf_counter() - t) / steps


def measure(make: Callable[[], Lane | Front], steps: int) -> tuple[float, int] | None:
    """(seconds per step, kernels per step) of the lane or pack ``make`` builds; None when it does not fit."""
    try:
        stepped = make()
        with OpCounter() as count:
            stepped.step()
        return time_steps(stepped, steps), count.kernels
    except torch.cuda.OutOfMemoryError:
        return None
    finally:
        stepped = None
        torch.cuda.empty_cache()


def pack_of(n: int, images: DeviceImages, cfg: TrainConfig, graphs: bool) -> Front:
    """The first ``n`` networks of the first pack the generator forms from the zoo's 13,000 nws_main draws (digits
    data), as lanes with their shared front (padded as ``cfg.fc_width`` and ``cfg.filter_size`` say)."""
    space = get_preset("nws_main")
    hps = {i: dataclasses.replace(space.sample(0, i), dataset="digits") for i in range(13_000)}
    ids = form_packs(hps, n * QUEUE_DEPTH, cfg.fc_width, cfg.filter_size)[0][:n]
    groups: dict[tuple, list[Member]] = {}
    for i in ids:
        m = Member(hps[i], images, 0, i, cfg, torch.float32)
        groups.setdefault(m.lane_key, []).append(m)
    lanes = []
    for members in groups.values():
        lanes.append(Lane(cfg, images.device, torch.float32))
        lanes[-1].restack([], members)
    return Front(lanes, cfg, images.device, torch.float32, cuda_graphs=graphs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--widths", type=int, nargs="+", default=[1, 16, 64, 256])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--presets", nargs="+", default=["nws_fixed", "nws_main"])
    p.add_argument("--pack", type=int, default=256, help="networks of the realistic nws_main pack (0: skip it)")
    p.add_argument("--compile", action="store_true", help="only the padded nws_main pack (--fc-width 192 "
                   "--filter-size 7), eager and compiled regions (TrainConfig.compile), each with and without CUDA "
                   "graphs, fp32 and TF32")  # fmt: skip
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this sweep times GPU steps (the projection runs anywhere)")
    dev = torch.device(args.device)
    images = DeviceImages(load_images("digits"), dev)
    cfg = TrainConfig(train_eval_images=100, test_images=100)
    print(f"{torch.cuda.get_device_name(dev)}; torch {torch.__version__}; CUDA {torch.version.cuda}")
    print(f"{'preset':<10} {'width':>5} {'mode':<6} {'prec':<5} {'cudnn.bm':<8} {'ms/step':>8} {'net-steps/s':>12} "
          f"{'vs one':>7} {'kernels':>8} {'µs/kernel':>9}")  # fmt: skip
    for preset in [] if args.compile else args.presets:
        one: dict[tuple, float] = {}
        for width, graphs, tf32, bench in itertools.product(args.widths, (False, True), (False, True), (False, True)):
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
            torch.backends.cudnn.benchmark = bench
            measured = measure(lambda: lane_of(preset, width, images, cfg, graphs), args.steps)  # noqa: B023
            if measured is None:
                print(f"{preset:<10} {width:>5} out of memory")
                continue
            seconds, kernels = measured
            key = (graphs, tf32, bench)
            if width == 1:
                one[key] = seconds
            ratio = one[key] * width / seconds if key in one else float("nan")
            mode, prec = ("graph" if graphs else "eager"), ("tf32" if tf32 else "fp32")
            print(f"{preset:<10} {width:>5} {mode:<6} {prec:<5} {bench!s:<8} {seconds * 1e3:>8.2f} "
                  f"{width / seconds:>12,.0f} {ratio:>7.1f} {kernels:>8} {seconds / kernels * 1e6:>9.2f}")  # fmt: skip
    if args.pack:
        torch.backends.cudnn.benchmark = True
        paddings = ((192, 7, False), (192, 7, True)) if args.compile else ((None, None, False), (192, None, False),
                                                                            (192, 7, False))  # fmt: skip
        for (fc_width, filter_size, compiled), graphs, tf32 in itertools.product(paddings, (False, True),
                                                                                (False, True)):  # fmt: skip
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
            padded = dataclasses.replace(cfg, fc_width=fc_width, filter_size=filter_size, compile=compiled)
            measured = measure(lambda: pack_of(args.pack, images, padded, graphs), args.steps)  # noqa: B023
            if measured is None:
                print(f"nws_main pack of {args.pack}: out of memory")
                break
            seconds, kernels = measured
            mode, prec = ("graph" if graphs else "eager"), ("tf32" if tf32 else "fp32")
            print(f"{'pack':<10} {args.pack:>5} {mode:<6} {prec:<5} {'True':<8} {seconds * 1e3:>8.2f} "
                  f"{args.pack / seconds:>12,.0f} {'-':>7} {kernels:>8} {seconds / kernels * 1e6:>9.2f}"
                  f"   (fc_width {fc_width}, filter_size {filter_size}{', compiled' if compiled else ''})")  # fmt: skip


if __name__ == "__main__":
    main()
