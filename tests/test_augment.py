"""Tests of the batched augmentation pipeline (builder.augment), CPU only."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.augment import AugmentConfig, AugmentParams, apply_params, augment, sample_params

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


@pytest.mark.parametrize(("h", "w"), [(32, 32), (20, 36)])
def test_translation_moves_content(h: int, w: int) -> None:
    x = _dot(h, w, row=8, col=10)
    y = apply_params(x, _params(translate_px=[[3.0, 0.0]]))  # +x: right
    assert y[0, 0].argmax().item() == 8 * w + 13
    assert y[0, 0, 8, 13].item() == pytest.approx(1, abs=1e-5)
    y = apply_params(x, _params(translate_px=[[-2.0, 5.0]]))  # +y: down
    assert y[0, 0, 13, 8].item() == pytest.approx(1, abs=1e-5)
    y = apply_params(x, _params(translate_px=[[0.5, 0.0]]))  # half a pixel: bilinear split
    torch.testing.assert_close(y[0, 0, 8, 10:12], torch.tensor([0.5, 0.5]), atol=1e-5, rtol=0)


def test_random_translation_within_range() -> None:
    cfg = dataclasses.replace(ZERO, translate_px=3.0)
    x = _dot(32, 32, row=16, col=16).expand(64, 3, 32, 32)
    y = augment(x, _gen(0), cfg)[:, 0]
    rows = (y.sum(2) * torch.arange(32.0)).sum(1) / y.sum((1, 2))
    cols = (y.sum(1) * torch.arange(32.0)).sum(1) / y.sum((1, 2))
    assert (rows - 16).abs().max() <= 3 + 1e-4 and (cols - 16).abs().max() <= 3 + 1e-4
    assert (cols - 16).abs().max() > 2  # the shifts do reach towards the ends of the range


@pytest.mark.parametrize(("h", "w"), [(32, 32), (20, 36)])
def test_rotation_is_counter_clockwise_on_screen(h: int, w: int) -> None:
    # A dot 4.5 px right of (and 0.5 px above) the centre ((w - 1) / 2, (h - 1) / 2) ends 4.5 px above (and 0.5 px
    # left of) it. On a non-square image this also checks that pixel distances, not normalised ones, are rotated.
    cx, cy = (w - 1) / 2, (h - 1) / 2
    y = apply_params(_dot(h, w, row=int(cy - 0.5), col=int(cx + 4.5)), _params(rotate_deg=[90.0]))
    assert y[0, 0, int(cy - 4.5), int(cx - 0.5)].item() == pytest.approx(1, abs=1e-4)


def test_zoom_scales_about_centre() -> None:
    # A horizontal ramp: zooming by 2 about the centre (15.5) halves its slope there (bilinear is exact on a ramp).
    ramp = (torch.arange(32.0) / 31).expand(1, 3, 32, 32)
    y = apply_params(ramp, _params(scale=[2.0]))
    expected = (15.5 + (torch.arange(32.0) - 15.5) / 2) / 31
    torch.testing.assert_close(y[0, 0, 16], expected, atol=1e-5, rtol=0)


def test_hue_keeps_grey_and_full_turn_is_identity() -> None:
    grey = torch.rand(16, 1, 32, 32, generator=_gen(1)).expand(16, 3, 32, 32)
    y = augment(grey, _gen(2), dataclasses.replace(ZERO, hue=0.5))
    torch.testing.assert_close(y, grey, atol=1e-5, rtol=0)
    x = _images(batch=4)
    turn = apply_params(x, _params(4, hue=[1.0, -1.0, 2.0, 0.0]))
    torch.testing.assert_close(turn, x, atol=1e-5, rtol=0)
    assert (apply_params(x, _params(4, hue=[0.5] * 4)) - x).abs().max() > 0.1


def test_hue_direction_matches_hsv() -> None:
    red = torch.zeros(1, 3, 4, 4)
    red[:, 0] = 1
    assert apply_params(red, _params(hue=[1 / 3]))[0, :, 0, 0].argmax().item() == 1  # red -> green
    assert apply_params(red, _params(hue=[-1 / 3]))[0, :, 0, 0].argmax().item() == 2  # red -> blue


def test_saturation_zero_gives_grey() -> None:
    x = _images(batch=4)
    y = augment(x, _gen(0), dataclasses.replace(ZERO, saturation=(0, 0)))
    luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    for c in range(3):
        torch.testing.assert_close(y[:, c], luma, atol=1e-5, rtol=0)


def test_brightness_and_contrast() -> None:
    x = torch.full((2, 3, 8, 8), 0.5)
    x[:, :, :4] = 0.3
    y = apply_params(x, _params(2, brightness=[0.1, -0.1]))
    torch.testing.assert_close(y - x, torch.tensor([0.1, -0.1]).view(2, 1, 1, 1).expand_as(x), atol=1e-5, rtol=0)
    y = apply_params(x, _params(2, contrast=[2.0, 0.0]))
    torch.testing.assert_close(y[0, :, 0, 0], torch.full((3,), 0.2), atol=1e-5, rtol=0)  # 0.4 + 2 (0.3 - 0.4)
    torch.testing.assert_close(y[1], torch.full((3, 8, 8), 0.4), atol=1e-5, rtol=0)  # flat at the mean grey


def test_noise_level() -> None:
    x = torch.full((200, 3, 16, 16), 0.5)
    y = augment(x, _gen(0), dataclasses.replace(ZERO, noise_std_max=0.03))
    std = (y - x).std(dim=(1, 2, 3))
    assert std.max() <= 0.033 and std.min() < 0.003 and std.max() > 0.027


def test_parameter_ranges_are_covered() -> None:
    cfg = AugmentConfig()
    p = sample_params(20_000, _gen(0), cfg)
    checks = {
        "translate_px": (p.translate_px, -3, 3),
        "rotate_deg": (p.rotate_deg, -15, 15),
        "scale": (p.scale, 0.9, 1.1),
        "shear_deg": (p.shear_deg, -3, 3),
        "brightness": (p.brightness, -0.2, 0.2),
        "contrast": (p.contrast, 0.5, 1.5),
        "saturation": (p.saturation, 0.3, 1.5),
        "hue": (p.hue, -0.08, 0.08),
        "noise_std": (p.noise_std, 0, 0.03),
    }
    for name, (v, lo, hi) in checks.items():
        tol = 0.01 * (hi - lo)
        assert lo <= v.min() <= lo + tol and hi - tol <= v.max() <= hi, name
        assert v.mean().item() == pytest.approx((lo + hi) / 2, abs=3 * tol), name
    # Independent draws: the parameters are not correlated with each other.
    stacked = torch.stack([p.rotate_deg, p.scale, p.brightness, p.hue, p.translate_px[:, 0], p.translate_px[:, 1]])
    corr = torch.corrcoef(stacked) - torch.eye(6)
    assert corr.abs().max() < 0.05


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
        zoom=0.1 * strength,
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
