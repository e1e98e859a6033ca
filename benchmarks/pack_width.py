"""Which kernels round differently with the pack's width: the measurement behind pack independence.

A pack trains P networks of one shape in one set of kernels (``builder.engine.pack_lane``). A network's bytes must not
depend on P (``builder.reproduce`` retrains it as a pack of one). This sweeps every layer shape of the search
space (conv: input/output channels, filter size, image side, batch size; dense: units; batch norm) and, for
member 0 of a lane, compares the forward result and the gradients at widths 2..16 with width 2, and width 1
with width 2, bit for bit, for the raw kernels and for the lane's own (:func:`builder.engine.pack_lane._grouped_conv`,
which pads the RGB input to 4 channels).

    python benchmarks/pack_width.py            # CPU, one thread; --device cuda on a GPU

Read it as: ``raw`` rows that differ are what the lane works around; ``lane`` rows must all say ``same``. On the
x86-64 CPU this was written on (torch 2.13, oneDNN, AVX-512): the raw first convolution at 3 input and 8 output
channels differs from 3 groups on; column sums over ``[B, n]`` (the dense batch norm's backward) differ between
one member and two when ``n`` is not a multiple of 32; nothing else differs.
"""

from __future__ import annotations

import argparse
import itertools

import torch
import torch.nn.functional as F

from builder.engine.pack_lane import _grouped_conv
from weightzoo.architecture import LAYERS_PER_BLOCK

WIDTHS = (2, 3, 4, 5, 8, 16)
BATCHES = (32, 64, 128, 256)


def _conv_shapes() -> list[tuple[int, int, int, int]]:
    """(c_in, c_out, k, side) of every conv layer of the search space."""
    shapes = set()
    for wc, k, depth in itertools.product((4, 8, 12), (3, 5, 7), LAYERS_PER_BLOCK):
        c_in, side = 3, 32
        for block, n in enumerate(LAYERS_PER_BLOCK[depth]):
            for _ in range(n):
                shapes.add((c_in, wc * 2**block, k, side))
                c_in = wc * 2**block
            side //= 2
    return sorted(shapes)


def _conv_member0(conv, B: int, shape: tuple[int, int, int, int], P: int, gen: torch.Generator, device: str):
    c_in, c_out, k, side = shape
    torch.manual_seed(0)
    members = [
        (
            torch.rand(B, c_in, side, side, generator=gen),
            torch.randn(c_out, c_in, k, k, generator=gen),
            torch.randn(c_out, generator=gen),
            torch.randn(B, c_out, side, side, generator=gen),
        )
        for _ in range(P)
    ]
    x = torch.cat([m[0] for m in members], 1).to(device)
    w = torch.stack([m[1] for m in members]).to(device).requires_grad_()
    b = torch.stack([m[2] for m in members]).to(device).requires_grad_()
    out = conv(x, w, b, k // 2)
    out.backward(torch.cat([m[3] for m in members], 1).to(device))
    return out[:, :c_out].detach(), w.grad[0], b.grad[0]


def _raw_conv(x, w, b, padding):
    return F.conv2d(x, w.flatten(0, 1), b.flatten(), padding=padding, groups=w.shape[0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batches", type=int, nargs="+", default=[32, 256])
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    differ = {"raw conv": [], "lane conv": [], "raw column sum": [], "twin column sum": []}
    for B, shape in itertools.product(args.batches, _conv_shapes()):
        for name, conv in (("raw conv", _raw_conv), ("lane conv", _grouped_conv)):
            ref = _conv_member0(conv, B, shape, 2, torch.Generator().manual_seed(1), args.device)
            for P in WIDTHS[1:]:
                got = _conv_member0(conv, B, shape, P, torch.Generator().manual_seed(1), args.device)
                same = [torch.equal(a, r) for a, r in zip(got, ref, strict=True)]
                if not all(same):
                    differ[name].append(f"B={B} c_in={shape[0]} c_out={shape[1]} k={shape[2]} side={shape[3]} P={P}")
                    break
    for B, n in itertools.product(BATCHES, sorted({16, 20, 24, 32, 48, 64, 96, 128, 192, 256, 384})):
        gen = torch.Generator().manual_seed(2)
        members = [torch.randn(B, n, generator=gen) for _ in range(16)]
        two = torch.cat(members[:2], 1).to(args.device).sum(0)[:n]
        one = members[0].to(args.device).sum(0)
        twin = torch.cat([members[0], members[0]], 1).to(args.device).sum(0)[:n]
        if not torch.equal(one, two):
            differ["raw column sum"].append(f"B={B} n={n} P=1")
        if not torch.equal(twin, two):
            differ["twin column sum"].append(f"B={B} n={n} P=1 as a twin")
        for P in WIDTHS[1:]:
            if not torch.equal(torch.cat(members[:P], 1).to(args.device).sum(0)[:n], two):
                differ["raw column sum"].append(f"B={B} n={n} P={P}")
    print(f"device {args.device}, torch {torch.__version__}, {args.threads} thread(s); member 0 against width 2")
    for name, rows in differ.items():
        print(f"{name:>16}: {'same at every width' if not rows else f'{len(rows)} shapes differ'}")
        for row in rows[:8]:
            print(f"{'':>18}{row}")


if __name__ == "__main__":
    main()
