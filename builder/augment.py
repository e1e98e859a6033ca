"""Batched, device-agnostic image augmentation of the reference NWS zoo, in pure PyTorch.

Per image: a random affine warp (translation, rotation, zoom, shear; bilinear, zero fill), then brightness,
contrast, saturation and hue, then Gaussian noise, then clipping to [0, 1]. Every random number comes from the
``generator`` argument, so the same generator state gives bit-identical output on the same device.

Conventions (image coordinates: x to the right, y down, as displayed with row 0 at the top):

- a positive ``translate_px`` along x moves content right, along y moves content down;
- a positive rotation turns content counter-clockwise as displayed, about the image centre;
- a zoom ``> 1`` makes content larger; a positive shear maps ``x -> x + tan(shear) * y`` (forward transform);
- pixels mapped from outside the image are zero (``padding_mode="zeros"``): a black fill, which is the background
  of the digit data sets and what the reference is believed to have done. (Keras' ``ImageDataGenerator`` default
  would have been nearest-pixel fill, i.e. ``"border"``; the reference text does not say.)
- hue is rotated in YIQ space (a linear 3x3 map per image, well defined for out-of-range values and fused with
  saturation), not through HSV; a positive shift turns red towards green like an HSV hue increase, and a
  shift of 1.0 is a full turn. Grey (I = Q = 0) stays grey.

Example:
    >>> g = torch.Generator().manual_seed(0)
    >>> augment(torch.rand(4, 3, 32, 32), g).shape
    torch.Size([4, 3, 32, 32])
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

__all__ = ["AugmentConfig", "AugmentParams", "apply_params", "augment", "sample_params"]

#: RGB -> YIQ (NTSC); its first row is the 0.299/0.587/0.114 luminance used for grey.
_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]], dtype=torch.float64
)
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)
_LUMA = _RGB_TO_YIQ[0]


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Strengths of the augmentation; every parameter is drawn uniformly and independently per image."""

    translate_px: float = 3.0  #: +- pixels, independently along x and y
    rotate_deg: float = 15.0  #: +- degrees
    zoom: float = 0.1  #: isotropic scale in [1 - zoom, 1 + zoom]
    shear_deg: float = 3.0  #: +- degrees
    brightness: float = 0.2  #: additive offset in [-b, b]
    contrast: tuple[float, float] = (0.5, 1.5)  #: factor around the per-image mean grey level
    hue: float = 0.08  #: hue shift in [-h, h], as a fraction of the hue circle
    saturation: tuple[float, float] = (0.3, 1.5)  #: blend factor with the grey image (0: grey, 1: unchanged)
    noise_std_max: float = 0.03  #: Gaussian noise std per image in [0, noise_std_max]

    def __post_init__(self) -> None:
        for name in ("translate_px", "rotate_deg", "zoom", "shear_deg", "brightness", "hue", "noise_std_max"):
            if getattr(self, name) < 0:
                raise ValueError(f"AugmentConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("contrast", "saturation"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"AugmentConfig.{name} must be (lo, hi) with 0 <= lo <= hi, got {(lo, hi)}")
        if self.zoom >= 1:
            raise ValueError(f"AugmentConfig.zoom must be < 1, got {self.zoom}")


@dataclasses.dataclass(frozen=True)
class AugmentParams:
    """The drawn per-image parameters: every field is a float tensor of shape [B] (``translate_px``: [B, 2])."""

    translate_px: torch.Tensor  #: (x, y) shift in pixels
    rotate_deg: torch.Tensor
    scale: torch.Tensor
    shear_deg: torch.Tensor
    brightness: torch.Tensor
    contrast: torch.Tensor
    saturation: torch.Tensor
    hue: torch.Tensor  #: fraction of the hue circle
    noise_std: torch.Tensor

    @classmethod
    def identity(cls, batch: int, device: torch.device | str = "cpu") -> AugmentParams:
        """Parameters that leave images unchanged; handy to build explicit ones with ``dataclasses.replace``.

        Example:
            >>> AugmentParams.identity(2).scale
            tensor([1., 1.])
        """
        zeros, ones = torch.zeros(batch, device=device), torch.ones(batch, device=device)
        return cls(torch.zeros(batch, 2, device=device), zeros, ones, zeros, zeros, ones, ones, zeros, zeros)


def sample_params(batch: int, generator: torch.Generator, config: AugmentConfig = AugmentConfig()) -> AugmentParams:
    """Draw the parameters of ``batch`` images from ``generator`` (on its device, float32).

    The amount of randomness drawn does not depend on ``config``, so changing one strength does not change the
    other parameters drawn from the same generator state.

    Example:
        >>> p = sample_params(1000, torch.Generator().manual_seed(0))
        >>> bool(p.brightness.abs().max() <= 0.2)
        True
    """
    u = torch.rand(batch, 10, generator=generator, device=generator.device)

    def sym(col: int, half: float) -> torch.Tensor:
        return (2 * u[:, col] - 1) * half

    def span(col: int, lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * u[:, col]

    c = config
    return AugmentParams(
        translate_px=torch.stack([sym(0, c.translate_px), sym(1, c.translate_px)], dim=1),
        rotate_deg=sym(2, c.rotate_deg),
        scale=1 + sym(3, c.zoom),
        shear_deg=sym(4, c.shear_deg),
        brightness=sym(5, c.brightness),
        contrast=span(6, *c.contrast),
        saturation=span(7, *c.saturation),
        hue=sym(8, c.hue),
        noise_std=span(9, 0.0, c.noise_std_max),
    )


def _affine_theta(p: AugmentParams, height: int, width: int) -> torch.Tensor:
    """``affine_grid`` matrices [B, 2, 3] mapping output to input normalised coordinates (align_corners=False).

    The forward map, in pixel units about the image centre, is ``out = R(angle) Shear(k) s in + t``; the grid needs
    its inverse ``in = A^-1 (out - t)``, rescaled by ``S = diag(W/2, H/2)`` since a normalised unit is W/2 (H/2)
    pixels: ``theta = [S^-1 A^-1 S | -S^-1 A^-1 t]``.
    """
    a = torch.deg2rad(p.rotate_deg)
    k = torch.tan(torch.deg2rad(p.shear_deg))
    cos, sin, inv_s = torch.cos(a), torch.sin(a), 1 / p.scale
    # R = [[cos, sin], [-sin, cos]] turns content counter-clockwise on screen (y down); Shear = [[1, k], [0, 1]].
    # A^-1 = Shear^-1 R^-1 / s = [[1, -k], [0, 1]] [[cos, -sin], [sin, cos]] / s.
    m00, m01 = (cos - k * sin) * inv_s, (-sin - k * cos) * inv_s
    m10, m11 = sin * inv_s, cos * inv_s
    sx, sy = width / 2, height / 2
    tx, ty = p.translate_px[:, 0], p.translate_px[:, 1]
    row0 = torch.stack([m00, m01 * sy / sx, -(m00 * tx + m01 * ty) / sx], dim=1)
    row1 = torch.stack([m10 * sx / sy, m11, -(m10 * tx + m11 * ty) / sy], dim=1)
    return torch.stack([row0, row1], dim=1)


def _colour_matrix(p: AugmentParams) -> torch.Tensor:
    """Per-image [B, 3, 3] RGB map of saturation and hue: in YIQ, keep Y and scale-and-rotate (I, Q).

    Saturation (blend with the luminance grey) scales (I, Q); hue rotates them, clockwise so that a positive shift
    turns red towards green as an HSV hue increase does. The two commute, so their order does not matter.
    """
    dt = torch.promote_types(p.hue.dtype, torch.float32)  # float64 only where the images are (not on e.g. MPS)
    a = -2 * math.pi * p.hue.to(dt)
    s = p.saturation.to(dt)
    cos, sin = torch.cos(a) * s, torch.sin(a) * s
    mid = torch.zeros(len(a), 3, 3, dtype=dt, device=a.device)
    mid[:, 0, 0] = 1
    mid[:, 1, 1], mid[:, 1, 2], mid[:, 2, 1], mid[:, 2, 2] = cos, -sin, sin, cos
    return _YIQ_TO_RGB.to(a.device, dt) @ mid @ _RGB_TO_YIQ.to(a.device, dt)


def apply_params(images: torch.Tensor, params: AugmentParams, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Augment ``images`` (float [B, 3, H, W] in [0, 1]) with explicit parameters; ``noise`` is unit Gaussian
    [B, 3, H, W] scaled per image by ``params.noise_std`` (None: no noise). Returns a new tensor in [0, 1].

    Example:
        >>> x = torch.zeros(1, 3, 8, 8); x[0, :, 2, 2] = 1
        >>> p = dataclasses.replace(AugmentParams.identity(1), translate_px=torch.tensor([[3.0, 0.0]]))
        >>> round(apply_params(x, p)[0, 0, 2, 5].item(), 4)  # the bright pixel moved 3 px to the right
        1.0
    """
    _check(images)
    b, _, h, w = images.shape
    dev, dt = images.device, images.dtype
    p = AugmentParams(**{k: v.to(dev, dt) for k, v in vars(params).items()})
    grid = F.affine_grid(_affine_theta(p, h, w), [b, 3, h, w], align_corners=False)
    x = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # Brightness then contrast: lerp(mean grey, x + bright, c) = c x + off, with off = bright + (1 - c) mean grey of
    # x (the luminance weights sum to 1). The colour matrix M maps grey to itself (M 1 = 1), so
    # M (c x + off) = (c M) x + off: the whole colour part is one batched matrix product.
    mean_grey = x.mean(dim=(2, 3)) @ _LUMA.to(dev, dt)
    offset = p.brightness + (1 - p.contrast) * mean_grey
    matrix = _colour_matrix(p).to(dt) * p.contrast.view(b, 1, 1)
    x = torch.bmm(matrix, x.view(b, 3, h * w)).view(b, 3, h, w).add_(offset.view(b, 1, 1, 1))
    if noise is not None:
        x.addcmul_(noise.to(dev, dt), p.noise_std.view(b, 1, 1, 1))
    return x.clamp_(0, 1)


def augment(images: torch.Tensor, generator: torch.Generator, config: AugmentConfig = AugmentConfig()) -> torch.Tensor:
    """Randomly augment a batch, float [B, 3, H, W] in [0, 1] -> same shape and dtype, clipped to [0, 1].

    All randomness comes from ``generator`` (normally on the device of ``images``; numbers drawn on another device
    are moved): the same generator state gives bit-identical output on the same device.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> y = augment(torch.rand(256, 3, 32, 32), g)
        >>> bool(y.min() >= 0) and bool(y.max() <= 1)
        True
    """
    _check(images)
    params = sample_params(images.shape[0], generator, config)
    noise = torch.randn(images.shape, generator=generator, device=generator.device, dtype=images.dtype)
    return apply_params(images, params, noise)


def _check(images: torch.Tensor) -> None:
    if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
        raise ValueError(f"expected a float tensor [B, 3, H, W], got {images.dtype} {tuple(images.shape)}")
