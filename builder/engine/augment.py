"""The augmentation of the original NWS training script, batched, in pure PyTorch.

Read from ``classifier.py`` and the TensorFlow 1 image ops it calls (``../shared/nws-reference.md``, "Exact
training semantics"):

- **Geometry, per image**: translation ``t`` in +-3 px along x and y, rotation ``r`` in +-15 degrees, zoom ``z``
  in 1 +- 0.099 and shears ``hx``, ``hy`` in +-3 degrees, all uniform. The original builds the projective map
  ``tf.contrib.image.transform`` applies (output pixel -> input pixel, in pixel-index coordinates about the
  centre ``c = (W/2, H/2)``): ``in = c + M (out - c + t)`` with
  ``M = z [[cos(hx - r), sin(hx - r)] / cos(hx), [sin(hy + r), cos(hy + r)] / cos(hy)]``, so the zoom acts on the
  inverse map (``z > 1`` shrinks the content). Bilinear, zero fill.
- **Colour, one draw per batch** (TF1's ``random_*`` ops draw a scalar for the whole batch tensor): brightness
  ``+ delta``, ``delta`` in +-0.2; contrast ``(x - mean) * f + mean`` with ``f`` in [0.5, 1.5] and the mean per
  image and channel; hue shifted by ``delta`` in +-0.08 of the circle in the HSV hexcone (keeping each pixel's
  largest and smallest channel, as ``adjust_hue``); saturation scaled by ``f`` in [0.3, 1.5] and clipped to
  [0, 1] in HSV (as ``adjust_saturation``); Gaussian noise whose standard deviation is one draw in [0, 0.03];
  then clipping to [0, 1].

Where the randomness comes from: :func:`augment` draws everything from its ``generator`` argument (the same
state gives bit-identical output on the same device). Training (both trainers, generation version 3) takes the
geometric and colour parameters from uniforms that are a pure function of (the network, its training step),
computed for a whole pack at once (:func:`builder.engine.keyed_random.step_draws`, :func:`params_from_uniform`), and
the per-pixel noise from the network's own generator (:func:`augment_with`).

Example:
    >>> g = torch.Generator().manual_seed(0)
    >>> augment(torch.rand(4, 3, 32, 32), g).shape
    torch.Size([4, 3, 32, 32])
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

__all__ = [
    "AugmentConfig",
    "AugmentParams",
    "apply_params",
    "augment",
    "augment_with",
    "params_at",
    "params_from_uniform",
    "sample_params",
    "uniforms_per_batch",
]

#: The hexcone's channel offsets (R, G, B) of ``f(n) = max - chroma * clamp(min(k, 4 - k), 0, 1)``,
#: ``k = (n + hue) mod 6``: the HSV -> RGB map that TF's ``hsv_to_rgb`` and ``hv_range_to_rgb`` compute.
_CHANNEL_OFFSETS = (5.0, 3.0, 1.0)


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Strengths of the augmentation (the original's ``transf_scaling`` = 3 gives these defaults)."""

    translate_px: float = 3.0  #: +- pixels, independently along x and y, per image
    rotate_deg: float = 15.0  #: +- degrees, per image
    zoom: float = 0.099  #: inverse-map scale in [1 - zoom, 1 + zoom] (the original: 1 +- 0.033 * 3), per image
    shear_deg: float = 3.0  #: +- degrees, x and y shears drawn independently, per image
    brightness: float = 0.2  #: additive offset in [-b, b], per batch
    contrast: tuple[float, float] = (0.5, 1.5)  #: factor around the per-image, per-channel mean, per batch
    hue: float = 0.08  #: hue shift in [-h, h], as a fraction of the hue circle, per batch
    saturation: tuple[float, float] = (0.3, 1.5)  #: HSV saturation factor (result clipped to [0, 1]), per batch
    noise_std_max: float = 0.03  #: Gaussian noise std in [0, noise_std_max], per batch

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
        if self.shear_deg >= 90:
            raise ValueError(f"AugmentConfig.shear_deg must be < 90, got {self.shear_deg}")


@dataclasses.dataclass(frozen=True)
class AugmentParams:
    """Drawn parameters. Geometric fields are float tensors of shape [B] (``translate_px``: [B, 2]); colour fields
    hold one value per batch, as in the original: 0-d tensors (:func:`sample_params`), or, for several batches at
    once (:func:`params_from_uniform`), each batch's value repeated per image, shaped to broadcast ([B, 1, 1, 1];
    ``hue`` and ``saturation`` [B, 1, 1])."""

    translate_px: torch.Tensor  #: (x, y) in pixels
    rotate_deg: torch.Tensor
    zoom: torch.Tensor  #: scale of the inverse map
    shear_x_deg: torch.Tensor
    shear_y_deg: torch.Tensor
    brightness: torch.Tensor
    contrast: torch.Tensor
    hue: torch.Tensor  #: fraction of the hue circle
    saturation: torch.Tensor
    noise_std: torch.Tensor

    @classmethod
    def identity(cls, batch: int, device: torch.device | str = "cpu") -> AugmentParams:
        """Parameters that leave images unchanged; handy to build explicit ones with ``dataclasses.replace``.

        Example:
            >>> AugmentParams.identity(2).zoom
            tensor([1., 1.])
        """
        zeros, ones = torch.zeros(batch, device=device), torch.ones(batch, device=device)
        zero, one = torch.zeros((), device=device), torch.ones((), device=device)
        return cls(torch.zeros(batch, 2, device=device), zeros, ones, zeros, zeros, zero, one, zero, one, zero)


def sample_params(batch: int, generator: torch.Generator, config: AugmentConfig = AugmentConfig()) -> AugmentParams:
    """Draw the parameters of one batch of ``batch`` images from ``generator`` (on its device, float32).

    The amount of randomness drawn does not depend on ``config``, so changing one strength does not change the
    other parameters drawn from the same generator state.

    Example:
        >>> p = sample_params(1000, torch.Generator().manual_seed(0))
        >>> p.rotate_deg.shape, p.brightness.shape, bool(p.brightness.abs() <= 0.2)
        (torch.Size([1000]), torch.Size([]), True)
    """
    geo = torch.rand(batch, 6, generator=generator, device=generator.device)
    col = torch.rand(5, generator=generator, device=generator.device)

    return _params(geo, col, config, image=(), pixel=())


def uniforms_per_batch(batch: int) -> int:
    """Uniform numbers the parameters of one batch of ``batch`` images take: six geometric ones per image, then the
    batch's five colour ones (:func:`params_from_uniform`).

    Example:
        >>> uniforms_per_batch(32)
        197
    """
    return 6 * batch + 5


def params_from_uniform(u: torch.Tensor, batch: int, config: AugmentConfig = AugmentConfig()) -> AugmentParams:
    """The parameters of ``P`` batches of ``batch`` images from uniform numbers ``u`` [P, 6 * batch + 5] (one
    batch's per row: :func:`builder.engine.keyed_random.step_draws`), what one network draws at one training step.
    The result covers ``P * batch`` images (member-major): geometric fields [N] (``translate_px`` [N, 2]); colour
    fields one value per batch, repeated per image and shaped to broadcast over it ([N, 1, 1, 1]; ``hue`` and
    ``saturation`` [N, 1, 1]).

    Example:
        >>> p = params_from_uniform(torch.full((2, 6 * 4 + 5), 0.5), 4)
        >>> p.rotate_deg.shape, p.brightness.shape, float(p.zoom[0])
        (torch.Size([8]), torch.Size([8, 1, 1, 1]), 1.0)
    """
    if u.ndim != 2 or u.shape[1] != uniforms_per_batch(batch):
        raise ValueError(f"expected uniforms [P, {uniforms_per_batch(batch)}] for batches of {batch}, got "
                         f"{tuple(u.shape)}")  # fmt: skip
    n = len(u) * batch
    geo = u[:, : 6 * batch].reshape(n, 6)
    col = u[:, 6 * batch :].repeat_interleave(batch, dim=0)  # [N, 5]: each batch's draw, per image
    return _params(geo, col, config, image=(-1, 1, 1, 1), pixel=(-1, 1, 1))


def params_at(u: torch.Tensor, geo: torch.Tensor, col: torch.Tensor, config: AugmentConfig = AugmentConfig()
              ) -> AugmentParams:  # fmt: skip
    """:func:`params_from_uniform` for batches of different sizes at once: ``u`` holds their uniforms in any layout
    (1-D), ``geo`` [N, 6] the positions of each image's six geometric ones and ``col`` [N, 5] those of its batch's
    five colour ones; the same parameters as :func:`params_from_uniform` gives each batch.

    Example:
        >>> u = torch.rand(2, 6 * 3 + 5)
        >>> geo = torch.arange(18).view(3, 6).repeat(2, 1) + torch.tensor([0, 23]).repeat_interleave(3)[:, None]
        >>> col = (torch.arange(18, 23) + torch.tensor([[0], [23]])).repeat_interleave(3, dim=0)
        >>> torch.equal(params_at(u.flatten(), geo, col).hue, params_from_uniform(u, 3).hue)
        True
    """
    return _params(u[geo], u[col], config, image=(-1, 1, 1, 1), pixel=(-1, 1, 1))


def augment_with(images: torch.Tensor, u: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Augment one training batch as the trainers do: parameters from the step's uniforms ``u`` [1, 6B + 5]
    (:func:`params_from_uniform`), the Gaussian noise from ``generator`` (float [B, 3, H, W] in [0, 1] -> same).

    Example:
        >>> u = torch.rand(1, 6 * 8 + 5, generator=torch.Generator().manual_seed(1))
        >>> y = augment_with(torch.rand(8, 3, 32, 32), u, torch.Generator().manual_seed(0))
        >>> y.shape, bool(y.min() >= 0)
        (torch.Size([8, 3, 32, 32]), True)
    """
    _check(images)
    params = params_from_uniform(u, images.shape[0])
    noise = torch.randn(images.shape, generator=generator, device=generator.device, dtype=images.dtype)
    return apply_params(images, params, noise)


def _params(geo: torch.Tensor, col: torch.Tensor, c: AugmentConfig, image: tuple, pixel: tuple) -> AugmentParams:
    """Parameters from uniforms: ``geo`` [N, 6] per image, ``col`` [..., 5] per batch, colour fields shaped
    ``image`` (``pixel`` for hue and saturation, which act on [N, H, W])."""
    return AugmentParams(
        translate_px=_sym(geo[:, 0:2], c.translate_px),
        rotate_deg=_sym(geo[:, 2], c.rotate_deg),
        zoom=1 + _sym(geo[:, 3], c.zoom),
        shear_x_deg=_sym(geo[:, 4], c.shear_deg),
        shear_y_deg=_sym(geo[:, 5], c.shear_deg),
        brightness=_sym(col[..., 0], c.brightness).reshape(image),
        contrast=_span(col[..., 1], *c.contrast).reshape(image),
        hue=_sym(col[..., 2], c.hue).reshape(pixel),
        saturation=_span(col[..., 3], *c.saturation).reshape(pixel),
        noise_std=_span(col[..., 4], 0.0, c.noise_std_max).reshape(image),
    )


def _sym(u: torch.Tensor, half: float) -> torch.Tensor:
    return (2 * u - 1) * half


def _span(u: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * u


def _affine_theta(p: AugmentParams, height: int, width: int) -> torch.Tensor:
    """``affine_grid`` matrices [B, 2, 3] (``align_corners=True``) of the original's output -> input map.

    In pixel indices (x: column, y: row), ``in = c + M (out - c + t)``, i.e. ``in = M out + m`` with
    ``m = c + M (t - c)``. With ``align_corners=True`` a normalised coordinate ``n`` is the pixel index
    ``(n + 1) (W - 1) / 2``; substituting gives ``theta``.
    """
    r, hx, hy = (torch.deg2rad(v) for v in (p.rotate_deg, p.shear_x_deg, p.shear_y_deg))
    z = p.zoom
    a, c = hx - r, hy + r
    m00, m01 = z * torch.cos(a) / torch.cos(hx), z * torch.sin(a) / torch.cos(hx)
    m10, m11 = z * torch.sin(c) / torch.cos(hy), z * torch.cos(c) / torch.cos(hy)
    cx, cy = width / 2, height / 2  # the original's centre: sx / 2 in pixel indices
    tx, ty = p.translate_px[:, 0], p.translate_px[:, 1]
    off_x = cx + m00 * (tx - cx) + m01 * (ty - cy)
    off_y = cy + m10 * (tx - cx) + m11 * (ty - cy)
    hw, hh = (width - 1) / 2, (height - 1) / 2
    row0 = torch.stack([m00, m01 * hh / hw, (m00 * hw + m01 * hh + off_x) / hw - 1], dim=1)
    row1 = torch.stack([m10 * hw / hh, m11, (m10 * hw + m11 * hh + off_y) / hh - 1], dim=1)
    return torch.stack([row0, row1], dim=1)


def _adjust_hue_saturation(x: torch.Tensor, hue: torch.Tensor, saturation: torch.Tensor) -> torch.Tensor:
    """TF1 ``adjust_hue`` then ``adjust_saturation``, fused, on float [B, 3, H, W].

    ``adjust_hue`` rotates the hexcone hue by ``hue`` turns, keeping each pixel's largest and smallest channel;
    ``adjust_saturation`` then takes the HSV saturation ``(max - min) / max`` (0 where ``max <= 0``), scales it
    by ``saturation``, clips it to [0, 1] and keeps hue and value. The hue rotation leaves max and min alone, so
    both steps need the hue and the extremes computed once.
    """
    r, g, b = x.unbind(1)
    vmax, vmin = x.amax(1), x.amin(1)
    chroma = vmax - vmin
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    h = torch.where(vmax == r, (g - b) / safe, torch.where(vmax == g, (b - r) / safe + 2, (r - g) / safe + 4))
    h = torch.remainder(torch.where(chroma > 0, h, torch.zeros_like(h)) + 6 * hue, 6)
    positive = vmax > 0
    s = torch.where(positive, chroma / torch.where(positive, vmax, torch.ones_like(vmax)), torch.zeros_like(vmax))
    chroma = vmax * (s * saturation).clamp_(0, 1)
    channels = []
    for n in _CHANNEL_OFFSETS:
        k = torch.remainder(h + n, 6)
        channels.append(vmax - chroma * torch.minimum(k, 4 - k).clamp_(0, 1))
    return torch.stack(channels, dim=1)


def apply_params(images: torch.Tensor, params: AugmentParams, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Augment ``images`` (float [B, 3, H, W] in [0, 1]) with explicit parameters; ``noise`` is unit Gaussian
    [B, 3, H, W] scaled by ``params.noise_std`` (None: no noise). Returns a new tensor in [0, 1].

    Example:
        >>> x = torch.zeros(1, 3, 8, 8); x[0, :, 2, 5] = 1
        >>> p = dataclasses.replace(AugmentParams.identity(1), translate_px=torch.tensor([[3.0, 0.0]]))
        >>> round(apply_params(x, p)[0, 0, 2, 2].item(), 4)  # out(x) = in(x + 3): content moved 3 px left
        1.0
    """
    _check(images)
    b, _, h, w = images.shape
    dev, dt = images.device, images.dtype
    p = AugmentParams(**{k: v.to(dev, dt) for k, v in vars(params).items()})
    grid = F.affine_grid(_affine_theta(p, h, w), [b, 3, h, w], align_corners=True)
    x = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    x = x + p.brightness
    mean = x.mean(dim=(2, 3), keepdim=True)
    x = (x - mean) * p.contrast + mean
    x = _adjust_hue_saturation(x, p.hue, p.saturation)
    if noise is not None:
        x = x + noise.to(dev, dt) * p.noise_std
    return x.clamp_(0, 1)


def augment(images: torch.Tensor, generator: torch.Generator, config: AugmentConfig = AugmentConfig()) -> torch.Tensor:
    """Randomly augment one batch, float [B, 3, H, W] in [0, 1] -> same shape and dtype, clipped to [0, 1].

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
