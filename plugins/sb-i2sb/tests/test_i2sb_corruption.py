"""Corruption operators (spec §1.7 and §1.12 tier A, item 5): gains, taps, JPEG, masks, registration."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from sb_i2sb.corruption import OPERATORS, CenterMask, GaussianBlur, UniformBlur, fill_noise
from sb_i2sb.corruption.inpaint import freeform_mask
from sb_i2sb.corruption.jpeg import JPEG
from sb_i2sb.corruption.linear import Bicubic, Pool, bicubic_taps

from sbcore.plugins import create_plugins
from sbcore.registry import Registry


def images(n=2, c=1, size=32, seed=0):
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1


def test_pool_is_the_exact_block_mean_repeated():
    x = images(c=3)
    y = Pool()(x).x1
    assert torch.allclose(y[..., :4, :4], x[..., :4, :4].mean((-2, -1), keepdim=True).expand(-1, -1, 4, 4))
    assert torch.allclose(F.avg_pool2d(y, 4), F.avg_pool2d(x, 4))


@pytest.mark.parametrize(("op", "centre", "corner"),
                         [(UniformBlur(), 0.3954, 0.0988), (GaussianBlur(), 0.3216, 0.0812)])
def test_reference_blur_dc_gain(op, centre, corner):
    """A constant 0.5 image in [0, 1] (0 in [-1, 1]) at 256 px: DDRM's dropped tap darkens it (spec §0.7)."""
    y = (op(torch.zeros(1, 1, 256, 256, dtype=torch.float64)).x1 + 1) / 2
    assert float(y[0, 0, 128, 128]) == pytest.approx(centre, abs=1e-4)
    assert float(y[0, 0, 0, 0]) == pytest.approx(corner, abs=1e-4)


FIXTURE = Path(__file__).parent / "fixtures" / "i2sb_blur_reference.safetensors"


@pytest.mark.parametrize(("name", "op"), [("uni", UniformBlur), ("gauss", GaussianBlur)])
def test_blur_matches_the_released_code_intended_by_default_and_shipped_on_request(name, op):
    """Fixture: NVlabs/I2SB@1ffdfaa `build_blur` run on 2 RGB 24 px images ("shipped", float32) and the same code
    with `singulars()` = `_singulars.repeat_interleave(3)` ("intended"); numbers only, made outside the repo."""
    ref = load_file(FIXTURE)
    x = ref["x"].double()
    intended, shipped = op()(x).x1, op(reference_channel_order=True)(x).x1
    torch.testing.assert_close(intended, ref[f"intended_{name}"].double(), atol=1e-5, rtol=0)
    torch.testing.assert_close(shipped, ref[f"shipped_{name}"].double(), atol=1e-5, rtol=0)
    assert float((shipped - intended).abs().max()) > 0.4  # the quirk is no round-off


def test_shipped_channel_order_is_the_intended_blur_on_one_channel():
    x = images(c=1, size=16)
    torch.testing.assert_close(UniformBlur(reference_channel_order=True)(x).x1, UniformBlur()(x).x1)
    with pytest.raises(ValueError, match="square images"):
        UniformBlur(reference_channel_order=True)(torch.zeros(1, 3, 16, 8))


def test_blur_dc_gains_without_truncation():
    """Dropped tap: gains 64/81 and 0.802^2; full kernel (reference_compat false): gain 1 inside."""
    half = torch.zeros(1, 1, 64, 64, dtype=torch.float64)
    taps = GaussianBlur()._taps
    for op, gain in [(UniformBlur(), 64 / 81), (GaussianBlur(), float(taps[:-1].sum()) ** 2),
                     (UniformBlur(reference_compat=False), 1.0), (GaussianBlur(reference_compat=False), 1.0)]:
        m = op.matrix(64)
        y = (m @ ((half + 1) / 2) @ m.T)[0, 0, 32, 32]
        assert float(y) == pytest.approx(0.5 * gain, rel=1e-12)
    assert float(taps[:-1].sum()) ** 2 == pytest.approx(0.6432, abs=1e-4)


def test_bicubic_taps_and_constant_images():
    taps = bicubic_taps()
    expected = [-0.0017, -0.0110, -0.0183, -0.0120, 0.0227, 0.0974, 0.1819, 0.2410]
    assert torch.allclose(taps[:8], torch.tensor(expected, dtype=torch.float64), atol=1e-4)
    assert torch.allclose(taps, taps.flip(0)) and float(taps.sum()) == pytest.approx(1.0)
    for compat in (True, False):
        y = Bicubic(reference_compat=compat)(torch.full((1, 3, 32, 32), 0.3, dtype=torch.float64)).x1
        assert torch.allclose(y, torch.full_like(y, 0.3), atol=1e-12)


def test_jpeg_quality_100_is_near_lossless_and_quality_10_is_not():
    x = (images(c=1, size=32) * 127.5).round() / 127.5  # 8-bit values
    for c in (1, 3):
        xc = x.expand(-1, c, -1, -1).float()
        assert float((JPEG(100)(xc).x1 - xc).abs().max()) < 4 / 127.5
        assert JPEG(100)(xc).x1.shape == xc.shape
    smooth = F.interpolate(images(c=1, size=8), size=32, mode="bilinear").float().expand(-1, 3, -1, -1)
    err100 = float((JPEG(100)(smooth).x1 - smooth).abs().mean())
    err10 = float((OPERATORS["jpeg-10"]()(smooth).x1 - smooth).abs().mean())
    err5 = float((OPERATORS["jpeg-5"]()(smooth).x1 - smooth).abs().mean())
    assert err100 < 2 / 127.5 < err10 < err5


def test_center_mask_covers_a_quarter_and_is_white():
    x = images(c=3, size=32)
    out = CenterMask()(x)
    assert out.mask.shape == (2, 1, 32, 32) and float(out.mask.mean()) == 0.25
    assert bool((out.x1[:, :, 8:24, 8:24] == 1).all())
    assert torch.equal(out.x1 * (1 - out.mask), x * (1 - out.mask))
    noise = torch.randn_like(x)
    filled = fill_noise(out.x1, out.mask, noise)
    assert torch.equal(filled[:, :, 8:24, 8:24], noise[:, :, 8:24, 8:24])
    assert torch.equal(filled[:, :, :8], x[:, :, :8])


@pytest.mark.parametrize(("name", "low", "high"),
                         [("inpaint-freeform1020", 0.1, 0.2), ("inpaint-freeform2030", 0.2, 0.3)])
@pytest.mark.parametrize("size", [32, 64])
def test_freeform_masks_are_seeded_and_in_range(name, low, high, size):
    op = OPERATORS[name]()
    x = images(n=8, c=1, size=size)
    a = op(x, torch.Generator().manual_seed(1)).mask
    b = op(x, torch.Generator().manual_seed(1)).mask
    assert torch.equal(a, b)
    coverage = a.mean((1, 2, 3))
    assert bool(((coverage >= low) & (coverage <= high)).all())
    assert len({tuple(m.flatten().tolist()) for m in a}) == 8  # every image its own mask
    with pytest.raises(ValueError, match="0 < low < high < 1"):
        freeform_mask(size, size, 0.3, 0.2)


@pytest.mark.parametrize("name", sorted(OPERATORS))
@pytest.mark.parametrize("channels", [1, 3])
def test_every_operator_keeps_shape_on_1_and_3_channels(name, channels):
    x = images(c=channels).float()
    out = OPERATORS[name]()(x, torch.Generator().manual_seed(0))
    assert out.x1.shape == x.shape and out.x1.dtype == x.dtype and torch.isfinite(out.x1).all()
    assert (out.mask is not None) == name.startswith("inpaint")


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"Pool: image sides must be multiples of 4, got 30x30"):
        Pool()(torch.zeros(1, 1, 30, 30))
    with pytest.raises(ValueError, match=r"expected images \(B, 1 or 3, H, W\), got shape \(1, 2, 8, 8\)"):
        Pool()(torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match="quality must be in 1..100"):
        JPEG(0)


def test_corruption_is_a_registered_component_kind():
    registry = create_plugins().registry
    assert set(registry.names("corruption")) == set(OPERATORS)
    assert registry.get("process", "i2sb").__name__ == "I2SBBridge"
    assert registry.get("sampler", "i2sb").__name__ == "I2SBPosterior"
    fresh = Registry()
    with pytest.raises(ValueError, match="unknown component kind 'corruption'"):
        fresh.add("corruption", "x", object)
    fresh.add_kind("corruption", "operators")
    fresh.add_kind("corruption", "operators")  # the same description again is fine
    with pytest.raises(ValueError, match="already exists"):
        fresh.add_kind("corruption", "something else")
