"""Tests of the batched augmentation (builder.engine.augment) against transcriptions of the original's transform matrix,
TensorFlow's projective sampler and HSV colour ops (colorsys), CPU only."""

from __future__ import annotations

import colorsys
import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.engine.augment import (
    AugmentConfig,
    AugmentParams,
    apply_params,
    augment,
    augment_with,
    params_from_uniform,
    sample_params,
)

ZERO = AugmentConfig(
    translate_px=0,
    rotate_deg=0,
    zoom=0,
    shear_deg=0,
    brightness=0,
    contrast=(1, 1),
    hue=0,
    saturation=(1, 1),
    noise_std_max=0,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(batch: int = 8, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, h, w, generator=_gen(seed))


def _params(batch: int = 1, **fields: list | float) -> AugmentParams:
    """Identity parameters with some fields set to explicit values."""
    base = AugmentParams.identity(batch)
    return dataclasses.replace(base, **{k: torch.tensor(v, dtype=torch.float32) for k, v in fields.items()})


def _dot(h: int, w: int, row: int, col: int) -> torch.Tensor:
    x = torch.zeros(1, 3, h, w)
    x[0, :, row, col] = 1
    return x


def test_shape_dtype_range() -> None:
    x = _images()
    y = augment(x, _gen(1))
    assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
    assert y.min() >= 0 and y.max() <= 1
    assert not torch.equal(x, y)
    y64 = augment(x.double(), _gen(1))
    assert y64.dtype == torch.float64


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        augment(torch.rand(2, 1, 8, 8), _gen(0))
    with pytest.raises(ValueError):
        augment(torch.randint(0, 255, (2, 3, 8, 8), dtype=torch.uint8), _gen(0))
    with pytest.raises(ValueError):
        AugmentConfig(contrast=(1.5, 0.5))
    with pytest.raises(ValueError):
        AugmentConfig(brightness=-0.1)


def test_deterministic_per_seed() -> None:
    x = _images()
    a, b, c = augment(x, _gen(7)), augment(x, _gen(7)), augment(x, _gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    g = _gen(7)
    first, second = augment(x, g), augment(x, g)  # the generator advances between calls
    assert torch.equal(first, a) and not torch.equal(first, second)


def test_uses_no_global_rng() -> None:
    x = _images()
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = augment(x, _gen(3))
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(999)
    assert torch.equal(augment(x, _gen(3)), a)


def test_zero_strength_is_identity() -> None:
    x = _images(h=24, w=40)
    torch.testing.assert_close(augment(x, _gen(0), ZERO), x, atol=1e-5, rtol=0)


def tf_transform(image: np.ndarray, m: list[float]) -> np.ndarray:
    """tf.contrib.image.transform, transcribed: output pixel (x, y) reads the input at (m0 x + m1 y + m2,
    m3 x + m4 y + m5), bilinear over the four neighbours, each outside the image read as 0. image: [C, H, W]."""
    _, h, w = image.shape
    out = np.zeros_like(image, dtype=np.float64)
    for y in range(h):
        for x in range(w):
            ix, iy = m[0] * x + m[1] * y + m[2], m[3] * x + m[4] * y + m[5]
            x0, y0 = int(np.floor(ix)), int(np.floor(iy))
            for yy, wy in ((y0, y0 + 1 - iy), (y0 + 1, iy - y0)):
                for xx, wx in ((x0, x0 + 1 - ix), (x0 + 1, ix - x0)):
                    if 0 <= yy < h and 0 <= xx < w:
                        out[:, y, x] += wy * wx * image[:, yy, xx]
    return out


def original_matrix(tx, ty, r, z, hx, hy, sx, sy):
    """classifier.py's m1..m6 for one image (angles in radians), as written there."""
    a, b, c, d = hx - r, np.cos(hx), hy + r, np.cos(hy)
    m1, m2 = z * np.cos(a) / b, z * np.sin(a) / b
    m3 = (sx * b - sx * z * np.cos(a) + 2 * tx * z * np.cos(a) - sy * z * np.sin(a) + 2 * ty * z * np.sin(a)) / (2 * b)
    m4, m5 = z * np.sin(c) / d, z * np.cos(c) / d
    m6 = (sy * d - sy * z * np.cos(c) + 2 * ty * z * np.cos(c) - sx * z * np.sin(c) + 2 * tx * z * np.sin(c)) / (2 * d)
    return [m1, m2, m3, m4, m5, m6]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_geometry_matches_the_originals_transform(seed: int) -> None:
    """Random translations, rotations, zooms and both shears, against the original's matrix and TF's sampler."""
    x = torch.rand(4, 3, 32, 32, generator=_gen(seed))
    p = sample_params(4, _gen(seed + 10))
    p = dataclasses.replace(
        p, brightness=torch.tensor(0.0), contrast=torch.tensor(1.0), hue=torch.tensor(0.0),
        saturation=torch.tensor(1.0),
    )  # fmt: skip
    if seed == 2:  # the extremes of the ranges
        p = dataclasses.replace(
            p, rotate_deg=torch.tensor([15.0, -15, 15, -15]), zoom=torch.tensor([1.099, 0.901, 0.901, 1.099]),
            shear_x_deg=torch.tensor([3.0, -3, 3, 0]), shear_y_deg=torch.tensor([-3.0, 3, 0, 3]),
        )  # fmt: skip
    y = apply_params(x, p)
    for i in range(4):
        m = original_matrix(
            float(p.translate_px[i, 0]), float(p.translate_px[i, 1]), np.deg2rad(float(p.rotate_deg[i])),
            float(p.zoom[i]), np.deg2rad(float(p.shear_x_deg[i])), np.deg2rad(float(p.shear_y_deg[i])), 32, 32,
        )  # fmt: skip
        ref = np.clip(tf_transform(x[i].double().numpy(), m), 0, 1)
        assert np.abs(y[i].double().numpy() - ref).max() < 1e-4, i


def test_translation_moves_content_by_the_originals_sign() -> None:
    x = _dot(32, 32, row=8, col=10)
    y = apply_params(x, _params(translate_px=[[3.0, 0.0]]))  # in = out + t: content moves by -t
    assert y[0, 0, 8, 7].item() == pytest.approx(1, abs=1e-5)
    y = apply_params(x, _params(translate_px=[[0.0, -2.0]]))
    assert y[0, 0, 10, 10].item() == pytest.approx(1, abs=1e-5)


def test_zoom_acts_on_the_inverse_map() -> None:
    """z > 1 reads from farther out: the content shrinks towards the centre (16, 16)."""
    x = _dot(32, 32, row=16, col=26)
    y = apply_params(x, _params(zoom=[2.0]))
    assert y[0, 0, 16, 21].item() == pytest.approx(1, abs=1e-5)  # 16 + (21 - 16) * 2 = 26


def test_colour_parameters_are_one_draw_per_batch() -> None:
    p = sample_params(64, _gen(0))
    for name in ("brightness", "contrast", "hue", "saturation", "noise_std"):
        assert getattr(p, name).shape == (), name
    for name in ("rotate_deg", "zoom", "shear_x_deg", "shear_y_deg"):
        v = getattr(p, name)
        assert v.shape == (64,) and len(set(v.tolist())) == 64, name
    # Independent across batches: the next batch from the same generator draws new colour values.
    g = _gen(0)
    a, b = sample_params(64, g), sample_params(64, g)
    assert all(getattr(a, n) != getattr(b, n) for n in ("brightness", "contrast", "hue", "saturation", "noise_std"))
    # Within a batch every image gets the same brightness offset (a flat grey batch stays one value).
    flat = torch.full((16, 3, 8, 8), 0.5)
    cfg = dataclasses.replace(ZERO, brightness=0.2)
    y = augment(flat, _gen(3), cfg)
    assert y.unique().numel() == 1 and y.unique().item() != 0.5


def test_noise_std_is_one_draw_per_batch() -> None:
    x = torch.full((200, 3, 16, 16), 0.5)
    y = augment(x, _gen(0), dataclasses.replace(ZERO, noise_std_max=0.03))
    std = (y - x).std(dim=(1, 2, 3))
    assert std.max() <= 0.031 and std.max() - std.min() < 0.2 * std.mean()  # the same level for every image
    levels = [float((augment(x[:8], g, dataclasses.replace(ZERO, noise_std_max=0.03)) - 0.5).std()) for g in
              [_gen(s) for s in range(20)]]  # fmt: skip
    assert min(levels) < 0.01 and max(levels) > 0.02  # drawn per batch in [0, 0.03]


def _hsv_reference(x: torch.Tensor, hue: float, saturation: float) -> np.ndarray:
    """colorsys's HSV, per pixel: hue shifted (mod 1), saturation scaled and clipped to [0, 1]."""
    a = x.double().numpy()
    out = np.empty_like(a)
    for i in range(a.shape[0]):
        for yy in range(a.shape[2]):
            for xx in range(a.shape[3]):
                h, s, v = colorsys.rgb_to_hsv(*a[i, :, yy, xx])
                out[i, :, yy, xx] = colorsys.hsv_to_rgb((h + hue) % 1.0, min(max(s * saturation, 0.0), 1.0), v)
    return out


@pytest.mark.parametrize(("hue", "saturation"), [(0.08, 1.0), (-0.08, 1.0), (0.0, 0.3), (0.0, 1.5), (0.05, 1.4)])
def test_hue_and_saturation_match_hsv(hue: float, saturation: float) -> None:
    x = torch.rand(2, 3, 6, 6, generator=_gen(4))
    y = apply_params(x, _params(2, hue=hue, saturation=saturation))
    assert np.abs(y.double().numpy() - _hsv_reference(x, hue, saturation)).max() < 1e-5


def test_hue_keeps_grey_and_full_turn_is_identity() -> None:
    grey = torch.rand(16, 1, 32, 32, generator=_gen(1)).expand(16, 3, 32, 32)
    y = augment(grey, _gen(2), dataclasses.replace(ZERO, hue=0.5, saturation=(0.3, 1.5)))
    torch.testing.assert_close(y, grey, atol=1e-5, rtol=0)
    x = _images(batch=4)
    for turn in (1.0, -1.0, 2.0):
        torch.testing.assert_close(apply_params(x, _params(4, hue=turn)), x, atol=1e-5, rtol=0)
    assert (apply_params(x, _params(4, hue=0.5)) - x).abs().max() > 0.1


def test_hue_direction_matches_hsv() -> None:
    red = torch.zeros(1, 3, 4, 4)
    red[:, 0] = 1
    assert apply_params(red, _params(hue=1 / 3))[0, :, 0, 0].argmax().item() == 1  # red -> green
    assert apply_params(red, _params(hue=-1 / 3))[0, :, 0, 0].argmax().item() == 2  # red -> blue


def test_brightness_and_contrast_per_channel_mean() -> None:
    x = torch.full((2, 3, 8, 8), 0.5)
    x[:, :, :4] = 0.3
    x[:, 2] += 0.2  # the blue channel's mean differs: contrast works around each channel's own mean
    y = apply_params(x, _params(2, brightness=0.1))
    torch.testing.assert_close(y - x, torch.full_like(x, 0.1), atol=1e-5, rtol=0)
    y = apply_params(x, _params(2, contrast=2.0))
    torch.testing.assert_close(y[0, 0, 0, 0], torch.tensor(0.2), atol=1e-5, rtol=0)  # 0.4 + 2 (0.3 - 0.4)
    torch.testing.assert_close(y[0, 2, 0, 0], torch.tensor(0.4), atol=1e-5, rtol=0)  # 0.6 + 2 (0.5 - 0.6)
    y = apply_params(x, _params(2, contrast=0.0))
    torch.testing.assert_close(y[:, 2], torch.full((2, 8, 8), 0.6), atol=1e-5, rtol=0)


def test_parameter_ranges_are_covered() -> None:
    p = sample_params(20_000, _gen(0))
    checks = {
        "translate_px": (p.translate_px, -3, 3),
        "rotate_deg": (p.rotate_deg, -15, 15),
        "zoom": (p.zoom, 0.901, 1.099),
        "shear_x_deg": (p.shear_x_deg, -3, 3),
        "shear_y_deg": (p.shear_y_deg, -3, 3),
    }
    for name, (v, lo, hi) in checks.items():
        tol = 0.01 * (hi - lo)
        assert lo <= v.min() <= lo + tol and hi - tol <= v.max() <= hi, name
        assert v.mean().item() == pytest.approx((lo + hi) / 2, abs=3 * tol), name
    stacked = torch.stack([p.rotate_deg, p.zoom, p.shear_x_deg, p.shear_y_deg, p.translate_px[:, 0]])
    assert (torch.corrcoef(stacked) - torch.eye(5)).abs().max() < 0.05
    g = _gen(1)
    batches = [sample_params(2, g) for _ in range(4000)]
    colour = {
        "brightness": ([b.brightness for b in batches], -0.2, 0.2),
        "contrast": ([b.contrast for b in batches], 0.5, 1.5),
        "hue": ([b.hue for b in batches], -0.08, 0.08),
        "saturation": ([b.saturation for b in batches], 0.3, 1.5),
        "noise_std": ([b.noise_std for b in batches], 0, 0.03),
    }
    for name, (values, lo, hi) in colour.items():
        v = torch.stack(values)
        tol = 0.01 * (hi - lo)
        assert lo <= v.min() <= lo + tol and hi - tol <= v.max() <= hi, name


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(1, 4),
    h=st.integers(2, 24),
    w=st.integers(2, 24),
    strength=st.floats(0, 3),
)
def test_output_always_in_unit_range(seed: int, batch: int, h: int, w: int, strength: float) -> None:
    cfg = AugmentConfig(
        translate_px=3 * strength,
        rotate_deg=15 * strength,
        zoom=0.099 * strength,
        shear_deg=3 * strength,
        brightness=0.2 * strength,
        contrast=(0.0, 1 + strength),
        hue=0.08 * strength,
        saturation=(0.0, 1 + strength),
        noise_std_max=0.03 * strength,
    )
    x = torch.rand(batch, 3, h, w, generator=_gen(seed))
    y = augment(x, _gen(seed + 1), cfg)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert y.min() >= 0 and y.max() <= 1


def test_parameters_from_uniforms_are_per_batch_draws_and_cover_their_ranges() -> None:
    """What the trainers draw: each row of uniforms is one batch's parameters (the same alone or with others);
    colour is one value per batch, repeated over its images; every field covers its range."""
    u = torch.rand(3, 6 * 8 + 5, generator=_gen(0))
    p = params_from_uniform(u, 8)
    for i in range(3):
        alone = params_from_uniform(u[i : i + 1], 8)
        for name, value in vars(alone).items():
            assert torch.equal(value, getattr(p, name)[8 * i : 8 * i + 8]), name
    assert p.brightness.view(3, 8).unique(dim=1).shape == (3, 1)  # one brightness per batch
    many = params_from_uniform(torch.rand(2000, 6 * 4 + 5, generator=_gen(1)), 4)
    for name, lo, hi in [("rotate_deg", -15, 15), ("zoom", 0.901, 1.099), ("hue", -0.08, 0.08),
                         ("saturation", 0.3, 1.5), ("noise_std", 0, 0.03)]:  # fmt: skip
        v = getattr(many, name)
        assert lo <= float(v.min()) <= lo + 0.02 * (hi - lo) and hi - 0.02 * (hi - lo) <= float(v.max()) <= hi
    with pytest.raises(ValueError, match=r"expected uniforms \[P, 53\] for batches of 8"):
        params_from_uniform(torch.rand(2, 50), 8)


def test_augment_with_is_apply_params_of_the_uniforms_and_the_generators_noise() -> None:
    x, u = torch.rand(6, 3, 32, 32), torch.rand(1, 6 * 6 + 5, generator=_gen(2))
    y = augment_with(x, u, _gen(1))
    noise = torch.randn(x.shape, generator=_gen(1))
    assert torch.equal(y, apply_params(x, params_from_uniform(u, 6), noise))
