"""Training throughput of the nws_fixed architecture on the current device.

Prints, measured side by side in one run: training images/s per network for each batch size, with and without
augmentation (and their ratio), evaluation images/s, and the networks/hour they imply for a given epoch budget
on an MNIST-sized dataset; then one real end-to-end network (``train_network`` on the embedded digits) so the
estimate can be checked against the trainer itself.

    python benchmarks/train_throughput.py                 # CPU here, or
    python benchmarks/train_throughput.py --device cuda   # the GPU benchmark
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from builder.engine.augment import augment
from builder.engine.sources import load_images
from builder.engine.space import get_preset
from builder.engine.train import TrainConfig, train_network
from weightzoo.hparams import HyperParameters
from weightzoo.model import NWSNet, initialize_
from weightzoo.optim import make_optimizer

#: Balanced training images per epoch for MNIST (smallest class 5,421 x 0.9 x 10 classes).
MNIST_EPOCH = 48_780
MNIST_EVAL = 10_000 + 6_000 + 10_000  # test + validation + train subset, measured every epoch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_rate(
    device: torch.device, batch: int, aug: bool, steps: int, data: torch.Tensor, labels: torch.Tensor
) -> float:
    hp = HyperParameters("mnist", 1e-3, batch, aug, "adam", "relu", "glorot_uniform")
    net = initialize_(NWSNet(hp.architecture, "relu"), "glorot_uniform", torch.Generator().manual_seed(0)).to(device)
    opt = make_optimizer(hp.optimizer, net.parameters(), hp.learning_rate)
    gen = torch.Generator(device=device).manual_seed(0)
    net.train()

    def step(i: int) -> None:
        idx = torch.randint(0, len(labels), (batch,), device=device, generator=gen)
        x = data[idx].float().div_(255)
        if aug:
            x = augment(x, gen)
        loss = F.cross_entropy(net(x), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for i in range(3):  # warm-up
        step(i)
    _sync(device)
    t = time.perf_counter()
    for i in range(steps):
        step(i)
    _sync(device)
    return steps * batch / (time.perf_counter() - t)


@torch.inference_mode()
def eval_rate(device: torch.device, data: torch.Tensor, batch: int = 1000, repeats: int = 3) -> float:
    net = NWSNet(HyperParameters("mnist", 1e-3, 64, False, "adam", "relu", "glorot_uniform").architecture).to(device)
    net.eval()
    net(data[:batch].float().div_(255))
    _sync(device)
    t = time.perf_counter()
    for _ in range(repeats):
        for i in range(0, len(data), batch):
            net(data[i : i + batch].float().div_(255))
    _sync(device)
    return repeats * len(data) / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64, 128, 256])
    p.add_argument("--steps", type=int, default=30, help="timed training steps per configuration")
    p.add_argument("--epochs", type=int, default=50, help="epochs per network for the networks/hour estimate")
    args = p.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {name}   torch {torch.__version__}   architecture: nws_fixed (92,868 values)")
    gen = torch.Generator().manual_seed(0)
    data = torch.randint(0, 256, (4096, 3, 32, 32), dtype=torch.uint8, generator=gen).to(device)
    labels = torch.randint(0, 10, (4096,), generator=gen).to(device)
    ev = eval_rate(device, data)
    print(f"evaluation: {ev:,.0f} images/s\n")
    print(
        f"{'batch':>5} {'train img/s':>12} {'+aug img/s':>11} {'aug/plain':>10} {'s/epoch':>8} "
        f"{'nets/hour':>10} {'+aug nets/h':>11}   (MNIST-sized epochs, {args.epochs} epochs/network)"
    )
    for batch in args.batch_sizes:
        plain = train_rate(device, batch, False, args.steps, data, labels)
        auged = train_rate(device, batch, True, args.steps, data, labels)
        epoch_s = MNIST_EPOCH / plain + MNIST_EVAL / ev
        epoch_aug_s = MNIST_EPOCH / auged + MNIST_EVAL / ev
        print(
            f"{batch:>5} {plain:>12,.0f} {auged:>11,.0f} {auged / plain:>10.2f} {epoch_s:>8.2f} "
            f"{3600 / (epoch_s * args.epochs):>10,.1f} {3600 / (epoch_aug_s * args.epochs):>11,.1f}"
        )
    # The real trainer, end to end, on the embedded digits: 3 epochs of one demo network.
    images = load_images("digits")
    hp = get_preset("demo").sample(0, 0)
    t = time.perf_counter()
    result = train_network(hp, images, zoo_seed=0, network_id=0, config=TrainConfig(max_epochs=3), device=device)
    seconds = time.perf_counter() - t
    print(
        f"\nend to end: train_network, digits, batch {hp.batch_size}, augmentation {hp.augmentation}, 3 epochs: "
        f"{seconds:.2f} s, {result.images_seen / seconds:,.0f} training images/s including evaluation and "
        f"snapshots (test accuracy {result.snapshot_metrics['test_accuracy'][-1]:.3f})"
    )


if __name__ == "__main__":
    main()
