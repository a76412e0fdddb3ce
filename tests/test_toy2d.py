"""The built-in 2-D toy sets: DDIB golden values, population statistics, shapes of the DSB sets, Toy2D."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sbcore.data.base import Source
from sbcore.data.toy2d import NAMES, Toy2D, generate

DDIB = [
    "ddib-moons",
    "ddib-checkerboard",
    "ddib-concentric-rings",
    "ddib-concentric-squares",
    "ddib-parallel-rings",
    "ddib-parallel-squares",
]

# np.random.seed(0); reference generate(id, N=90000): points 0, 45000, 89999 and sum |p| (float32 output).
GOLDEN = {
    "ddib-moons": ([0.993525, -0.495005], [-0.514627, 0.296234], [2.254113, 0.040284], 145850.6471),
    "ddib-checkerboard": ([1.731193, 1.030756], [-0.004736, 1.175807], [-1.732848, 0.254726], 155867.3015),
    "ddib-concentric-rings": ([0.671442, 0.002179], [-1.305378, -0.010843], [2.104225, 0.002635], 149676.1017),
    "ddib-concentric-squares": ([-0.477505, 0.478554], [1.091213, -1.090303], [-1.637714, 1.638094], 152786.1223),
    "ddib-parallel-rings": ([-1.000918, 0.001486], [-0.564039, -0.004115], [2.269878, 0.001674], 138203.5188),
    "ddib-parallel-squares": ([-2.003153, 0.441124], [0.484729, -0.483682], [1.096048, 0.468028], 140706.1720),
}

# Per-axis mean and std of the normalised reference outputs (N = 300 000, seed 0).
TABLE = {
    "ddib-moons": ((0.174, -0.174), (1.209, 0.692)),
    "ddib-checkerboard": ((0.0, 0.0), (1.0, 1.0)),
    "ddib-concentric-rings": ((0.0, 0.0), (1.0, 1.0)),
    "ddib-concentric-squares": ((0.0, 0.0), (1.0, 1.0)),
    "ddib-parallel-rings": ((0.0, 0.0), (1.355, 0.404)),
    "ddib-parallel-squares": ((0.0, 0.0), (1.347, 0.430)),
}

N_STATS = 300_000


def rs(seed: int = 0) -> np.random.RandomState:
    return np.random.RandomState(seed)


# ------------------------------------------------------------------------------------------ DDIB
@pytest.mark.parametrize("name", DDIB)
def test_ddib_golden_values(name: str) -> None:
    p = generate(name, 90_000, rs(0))
    first, middle, last, abs_sum = GOLDEN[name]
    assert p.shape == (90_000, 2) and p.dtype == np.float32
    np.testing.assert_allclose(p[0], first, atol=1e-6)
    np.testing.assert_allclose(p[45_000], middle, atol=1e-6)
    np.testing.assert_allclose(p[89_999], last, atol=1e-6)
    assert np.abs(p).astype(np.float64).sum() == pytest.approx(abs_sum, abs=2e-3)


def test_ddib_reference_uses_only_the_given_rng() -> None:
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = generate("ddib-moons", 600, rs(5))
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    np.testing.assert_array_equal(a, generate("ddib-moons", 600, rs(5)))


@pytest.mark.parametrize("name", DDIB)
def test_ddib_statistics_match_the_table(name: str) -> None:
    """The reference form at seed 0 reproduces the table; the i.i.d. form (other seed) has the same law."""
    mean, std = TABLE[name]
    ref = generate(name, N_STATS, rs(0)).astype(np.float64)
    np.testing.assert_allclose(ref.mean(0), mean, atol=2e-3)
    np.testing.assert_allclose(ref.std(0), std, atol=2e-3)
    # population standardisation: the i.i.d. draws have scalar mean 0 and std 1 without being rescaled
    iid = generate(name, N_STATS, rs(1), iid=True).astype(np.float64)
    np.testing.assert_allclose(iid.mean(0), mean, atol=0.01)
    np.testing.assert_allclose(iid.std(0), std, atol=0.01)
    assert abs(iid.mean()) < 0.01 and iid.std() == pytest.approx(1.0, abs=0.005)
    # same law: every per-axis quantile agrees
    q = np.linspace(0.01, 0.99, 99)
    np.testing.assert_allclose(np.quantile(iid, q, axis=0), np.quantile(ref, q, axis=0), atol=0.03)


def test_ddib_reference_is_ordered_and_needs_whole_blocks() -> None:
    rings = generate("ddib-concentric-rings", 3000, rs(0)).astype(np.float64)
    radius = np.linalg.norm(rings, axis=1)
    # reference order is ring by ring (radii 1, 2, 3): the block means increase
    assert radius[:1000].mean() < radius[1000:2000].mean() < radius[2000:].mean()
    board = generate("ddib-checkerboard", 1000, rs(0))
    assert np.all(np.diff(board[:, 0]) <= 0)  # sorted by x1, descending
    with pytest.raises(ValueError, match="multiple of 3"):
        generate("ddib-concentric-rings", 1000, rs(0))
    with pytest.raises(ValueError, match="multiple of 12"):
        generate("ddib-parallel-squares", 1000, rs(0))


def test_ddib_squares_geometry() -> None:
    """Concentric squares: each point's sup-norm (before standardising) is R_k + U(-1/4, 1/4)."""
    p = generate("ddib-concentric-squares", 12_000, rs(0), iid=True).astype(np.float64)
    std = math.sqrt((14 / 3 + 1 / 48) * 2 / 3)  # population std, see _population_moments
    sup = np.abs(p * std).max(axis=1)
    dist = np.min(np.abs(sup[:, None] - np.array([1.0, 2.0, 3.0])), axis=1)
    assert dist.max() <= 0.25 + 1e-5


# --------------------------------------------------------------------------------- DSB family
def test_standardised_sets_have_their_scales() -> None:
    """moons / scurve (x0.4) and swissroll (x0.45): closed-form moments give scalar mean 0, std = scale."""
    for name, scale in [("moons", 0.4), ("scurve", 0.4), ("swissroll", 0.45)]:
        p = generate(name, 200_000, rs(2)).astype(np.float64)
        assert abs(p.mean()) < 0.005, name
        assert p.std() == pytest.approx(scale, abs=0.003), name


@pytest.mark.parametrize("cells", [4, 8])
def test_checkerboard_fills_only_even_cells(cells: int) -> None:
    p = generate(f"checkerboard:{cells}", 64_000, rs(0)).astype(np.float64)
    assert np.all(np.abs(p) <= 1)
    ij = np.floor((p + 1) * cells / 2).astype(int)
    assert np.all((ij[:, 0] + ij[:, 1]) % 2 == 0)
    counts = np.bincount(ij[:, 0] * cells + ij[:, 1], minlength=cells * cells)
    occupied = counts[counts > 0]
    assert len(occupied) == cells * cells // 2
    np.testing.assert_allclose(occupied / len(p), 2 / cells**2, rtol=0.1)


def test_default_checkerboard_is_eight_by_eight() -> None:
    np.testing.assert_array_equal(generate("checkerboard", 500, rs(3)), generate("checkerboard:8", 500, rs(3)))


def test_dsb_checker_cells() -> None:
    p = generate("dsb-checker", 20_000, rs(0)).astype(np.float64)
    assert np.all(p >= -1) and np.all(p < 1)
    ij = np.floor(2 * p).astype(int)  # 4 x 4 cells of side 1/2
    assert np.all((ij[:, 0] + ij[:, 1]) % 2 == 0)
    assert len(np.unique(ij, axis=0)) == 8


@pytest.mark.parametrize(
    ("name", "angles_deg"), [("8gaussians", 45.0 * np.arange(8)), ("6gaussians", 90.0 + 60.0 * np.arange(6))]
)
def test_gaussians_on_a_circle(name: str, angles_deg: np.ndarray) -> None:
    a = np.deg2rad(angles_deg)
    centres = 0.7 * np.stack([np.cos(a), np.sin(a)], axis=1)
    p = generate(name, 48_000, rs(0)).astype(np.float64)
    label = np.argmin(((p[:, None] - centres) ** 2).sum(-1), axis=1)
    counts = np.bincount(label, minlength=len(centres))
    np.testing.assert_allclose(counts / len(p), 1 / len(centres), rtol=0.08)
    for k, c in enumerate(centres):
        members = p[label == k]
        np.testing.assert_allclose(members.mean(0), c, atol=0.005)
        np.testing.assert_allclose(members.std(0), 0.05, rtol=0.06)


def test_grid_gaussians() -> None:
    p = generate("gaussians:16", 32_000, rs(0)).astype(np.float64)
    centres = np.array([(2 * (i + 0.5) / 4 - 1, 2 * (j + 0.5) / 4 - 1) for i in range(4) for j in range(4)])
    label = np.argmin(((p[:, None] - centres) ** 2).sum(-1), axis=1)
    assert len(np.unique(label)) == 16
    resid = p - centres[label]
    np.testing.assert_allclose(resid.std(0), 2 * 0.25 / 10, rtol=0.05)  # std g/10 on [0,1], doubled
    with pytest.raises(ValueError, match="perfect square"):
        generate("gaussians:10", 10, rs(0))


def test_mixture_and_circles() -> None:
    p = generate("mixture", 40_000, rs(0)).astype(np.float64)
    right = p[p[:, 0] > 0]
    assert len(right) / len(p) == pytest.approx(0.5, abs=0.01)
    np.testing.assert_allclose(right.mean(0), [0.5, 0.0], atol=0.005)
    np.testing.assert_allclose(right.std(0), [0.1, 0.2], rtol=0.03)
    r = np.linalg.norm(generate("circles", 40_000, rs(0)).astype(np.float64), axis=1)
    inner, outer = r[r < 0.6], r[r >= 0.6]
    assert len(inner) / len(r) == pytest.approx(0.5, abs=0.01)
    assert inner.mean() == pytest.approx(0.4, abs=0.003) and outer.mean() == pytest.approx(0.8, abs=0.003)


def test_pinwheel_arms() -> None:
    """Seven arms: -angle(x) - 0.25 exp(|x| / 0.4) is close to a multiple of 2 pi / 7 (tangential noise aside)."""
    p = generate("pinwheel", 20_000, rs(0)).astype(np.float64)
    step = 2 * np.pi / 7
    phase = -np.arctan2(p[:, 1], p[:, 0]) - 0.25 * np.exp(np.linalg.norm(p, axis=1) / 0.4)
    residual = (phase + step / 2) % step - step / 2
    assert np.median(np.abs(residual)) < 0.1  # uniform phases would give about 0.22
    assert np.median(np.linalg.norm(p, axis=1)) == pytest.approx(0.4, abs=0.01)


def test_standard_normal() -> None:
    p = generate("standard", 100_000, rs(0)).astype(np.float64)
    np.testing.assert_allclose(p.mean(0), 0, atol=0.01)
    np.testing.assert_allclose(np.cov(p.T), np.eye(2), atol=0.015)


def test_aliases_are_the_same_sets() -> None:
    for alias, name in [("dsb-moon", "moons"), ("dsb-swiss", "swissroll"), ("dsb-pinwheel", "pinwheel")]:
        np.testing.assert_array_equal(generate(alias, 100, rs(4)), generate(name, 100, rs(4)))


# ------------------------------------------------------------------------------------ names
def test_unknown_name_lists_names_and_closest_match() -> None:
    with pytest.raises(ValueError) as info:
        generate("moon", 10, rs(0))
    msg = str(info.value)
    assert "unknown toy 2-D dataset 'moon'" in msg
    assert "Did you mean 'moons'?" in msg
    assert all(name in msg for name in NAMES)
    with pytest.raises(ValueError, match="Did you mean 'checkerboard'"):
        Toy2D("checkerbord:4")


@pytest.mark.parametrize("bad", ["checkerboard:x", "checkerboard:0", "moons:3"])
def test_bad_parameters(bad: str) -> None:
    with pytest.raises(ValueError, match=bad.split(":")[0]):
        Toy2D(bad)


# ---------------------------------------------------------------------------------- Toy2D
@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("gaussians",)] + ["gaussians:9"])
def test_toy2d_shape_dtype_finite(name: str) -> None:
    src = Toy2D(name)
    assert isinstance(src, Source) and src.shape == (2,)
    x = src.sample(7, torch.Generator().manual_seed(0))  # 7: not a multiple of any reference block
    assert x.shape == (7, 2) and x.dtype == torch.float32 and torch.isfinite(x).all()
    assert src.sample(0, torch.Generator().manual_seed(0)).shape == (0, 2)


def test_toy2d_determinism_and_generator_only() -> None:
    src = Toy2D("ddib-moons")
    np.random.seed(0)
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    g1, g2 = torch.Generator().manual_seed(11), torch.Generator().manual_seed(11)
    a1, a2 = src.sample(256, g1), src.sample(256, g2)
    torch.testing.assert_close(a1, a2, rtol=0, atol=0)
    b1 = src.sample(256, g1)  # the generator advanced: a different batch
    assert not torch.equal(a1, b1)
    assert not torch.equal(a1, src.sample(256, torch.Generator().manual_seed(12)))
    assert torch.equal(torch.get_rng_state(), torch_state)
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)


def test_toy2d_scale() -> None:
    base = Toy2D("8gaussians").sample(100, torch.Generator().manual_seed(1))
    scaled = Toy2D("8gaussians", scale=3.0).sample(100, torch.Generator().manual_seed(1))
    torch.testing.assert_close(scaled, 3.0 * base)
    with pytest.raises(ValueError, match="scale"):
        Toy2D("moons", scale=0.0)


def test_toy2d_ddib_batches_are_iid_not_ordered() -> None:
    """A reference slice would hold one ring; a Toy2D batch mixes all three in equal shares."""
    x = Toy2D("ddib-concentric-rings").sample(3000, torch.Generator().manual_seed(0)).double()
    radius = x.norm(dim=1) * math.sqrt((14 / 3 + 1 / 48) / 2)  # undo the population standardisation
    ring = (radius - 1).round().clamp(0, 2).long()
    share = torch.bincount(ring[:1000], minlength=3) / 1000
    torch.testing.assert_close(share, torch.full((3,), 1 / 3, dtype=share.dtype), atol=0.05, rtol=0)
