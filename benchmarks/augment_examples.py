"""Save a grid of augmented examples, to eyeball the augmentation pipeline (builder.engine.augment).

Uses scikit-learn's embedded 8x8 digits (no download), upsampled to 32x32 and tinted so the colour
augmentations are visible. Row i: the original image, then 8 augmentations of it.

Example:
    python -m benchmarks.augment_examples --out augment_examples.png --images 6 --seed 0  # from the repo root
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from builder.engine.augment import AugmentConfig, augment

#: Foreground and background colours per digit, so hue and saturation changes show.
_TINTS = torch.tensor([[1.0, 0.3, 0.2], [0.2, 0.8, 0.3], [0.3, 0.4, 1.0], [1.0, 0.9, 0.2], [0.9, 0.9, 0.9]])


def example_images(n: int) -> torch.Tensor:
    """``n`` digits as float [n, 3, 32, 32] in [0, 1], each a tinted digit on a dark tinted background."""
    digits = load_digits()
    x = torch.tensor(digits.images[:n], dtype=torch.float32).unsqueeze(1) / 16
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False).clamp(0, 1)
    fg = _TINTS[torch.arange(n) % len(_TINTS)].view(n, 3, 1, 1)
    return x * fg + (1 - x) * 0.15 * fg.flip(1)


def main(argv: list[str] | None = None) -> None:
    """Augment a few digits 8 times each and save the grid."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="augment_examples.png", help="PNG path to write")
    parser.add_argument("--images", type=int, default=6, help="number of source images (rows)")
    parser.add_argument("--copies", type=int, default=8, help="augmentations per image")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    originals = example_images(args.images)
    batch = originals.repeat_interleave(args.copies, dim=0)
    augmented = augment(batch, torch.Generator().manual_seed(args.seed), AugmentConfig())
    augmented = augmented.view(args.images, args.copies, 3, 32, 32)

    cols = args.copies + 1
    fig, axes = plt.subplots(args.images, cols, figsize=(cols * 1.1, args.images * 1.1), squeeze=False)
    for i in range(args.images):
        for j in range(cols):
            img = originals[i] if j == 0 else augmented[i, j - 1]
            axes[i, j].imshow(img.permute(1, 2, 0).numpy(), interpolation="nearest", vmin=0, vmax=1)
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
        axes[i, 0].set_ylabel(f"#{i}", rotation=0, labelpad=12)
    axes[0, 0].set_title("original", fontsize=8)
    fig.suptitle("builder.engine.augment: original, then augmentations (default AugmentConfig)", fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
