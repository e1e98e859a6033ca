"""Device operations per training step: the pack trainer against one network at a time, counted, not timed.

On a GPU these tiny networks are launch-bound: a step's time is about its number of kernel launches. This counts
the ATen operations that do work (views and other metadata-only operations left out) in one training step, on
CPU, so it runs anywhere and is not noisy: for a per-network loop (the reader's model and the optimizer classes,
as ``tests/reference_trainer.py`` trains: augmentation, keyed dropout masks, forward, backward, TF1 optimizer) and
for one step of a pack lane of P networks, each of
which trains one step. A lane's count should stay nearly flat in P (only the per-network augmentation noise
draw grows with it), so the operations per network-step fall as 1/P.

    python benchmarks/pack_launches.py --widths 1 8 64 --batch 32
"""

from __future__ import annotations

import argparse
import dataclasses
from collections import Counter

import torch
import torch.nn.functional as F

from builder.engine.augment import augment_with
from builder.engine.keyed_random import step_draws
from builder.engine.member import Member
from builder.engine.op_count import OpCounter
from builder.engine.pack_lane import Lane
from builder.engine.sources import load_images
from builder.engine.space import get_preset, torch_seed
from builder.engine.train import DeviceImages, TrainConfig
from weightzoo.model import NWSNet, initialize_
from weightzoo.optim import make_optimizer


def single_step_ops(hp, images: DeviceImages, cfg: TrainConfig) -> Counter[str]:
    """The operations of one step of a per-network loop (``tests/reference_trainer.py``, generation version 4's
    single trainer: the same calls, in the same order)."""
    net = initialize_(NWSNet(hp.architecture, hp.activation), hp.initialization, torch.Generator().manual_seed(0))
    opt = make_optimizer(hp.optimizer, net.parameters(), hp.learning_rate)
    gen = torch.Generator().manual_seed(1)
    idx = torch.arange(hp.batch_size)
    net.train()
    with OpCounter() as count:
        x = images.train_x[idx].to(torch.float32).div_(255)
        draws = step_draws([torch_seed(0, 0, "step")], [0], len(idx), hp.architecture.fc_units,
                           augmentation=hp.augmentation)  # fmt: skip
        if hp.augmentation:
            x = augment_with(x, draws.augment, gen)
        loss = F.cross_entropy(net(x, [m[0] for m in draws.masks]), images.train_y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return count.ops


def lane_step_ops(hps: list, images: DeviceImages, cfg: TrainConfig) -> Counter[str]:
    """The operations of one step of a lane of these networks (one architecture and batch size)."""
    members = [Member(hp, images, 0, i, cfg, torch.float32) for i, hp in enumerate(hps)]
    lane = Lane(cfg, torch.device("cpu"), torch.float32)
    lane.restack([], members)
    with OpCounter() as count:
        lane.step()
    return count.ops


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--widths", type=int, nargs="+", default=[1, 8, 64])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--top", type=int, default=6, help="also list the most frequent operations of the widest lane")
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg = TrainConfig(train_eval_images=100, test_images=100)
    images = DeviceImages(load_images("digits"), "cpu")
    space = get_preset("nws_fixed")
    # nws_fixed draws: mixed optimizers, activations and augmentation, at one batch size (one lane)
    hps = [
        dataclasses.replace(space.sample(0, i), dataset="digits", batch_size=args.batch)
        for i in range(max(args.widths))
    ]
    single = [sum(single_step_ops(hp, images, cfg).values()) for hp in hps[: min(8, len(hps))]]
    per_net = sum(single) / len(single)
    print(f"nws_fixed architecture, batch {args.batch}: operations (kernels on a GPU) per training step")
    print(f"{'trainer':<28} {'ops per step':>13} {'ops per network-step':>21} {'vs one at a time':>17}")
    print(f"{'one network at a time':<28} {per_net:>13,.0f} {per_net:>21,.0f} {1:>17.2f}")
    widest: Counter[str] = Counter()
    for width in args.widths:
        ops = lane_step_ops(hps[:width], images, cfg)
        total = sum(ops.values())
        print(f"{f'pack lane of {width}':<28} {total:>13,} {total / width:>21,.1f} {per_net * width / total:>17.1f}")
        widest = ops
    print(f"most frequent in the widest lane: {', '.join(f'{k} {v}' for k, v in widest.most_common(args.top))}")


if __name__ == "__main__":
    main()
