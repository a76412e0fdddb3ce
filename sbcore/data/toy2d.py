"""Built-in 2-D toy distributions, as the bridge papers define them.

Two families:

* the DSB / Simplified-DSB sets (De Bortoli et al. 2021; Tang et al. 2024, arXiv 2403.14623,
  `util/dataset.py`), also the DSBM 2-D tasks (Shi et al. 2023, Table 2): ``standard``, ``moons``,
  ``scurve``, ``swissroll``, ``circles``, ``mixture``, ``8gaussians``, ``6gaussians``, ``pinwheel``,
  ``dsb-checker``, ``checkerboard[:G]`` and ``gaussians[:P]`` (the reference's ``dsb-*`` names are
  accepted as aliases);
* the six DDIB sets (Su et al., ICLR 2023, arXiv 2203.08382, Fig. 2 and Table 1;
  `synthetic_datasets.py`): ``ddib-moons``, ``ddib-checkerboard``, ``ddib-concentric-rings``,
  ``ddib-concentric-squares``, ``ddib-parallel-rings``, ``ddib-parallel-squares``.

`generate` is a pure function of (name, n, rng). For the DDIB sets it reproduces the reference
construction call for call on a `np.random.RandomState`, so ``generate(name, n, RandomState(s))`` equals
the reference run after ``np.random.seed(s)``: points in blocks (ring by ring, edge by edge, sorted
angles), standardised by the sample's own scalar mean and std. With ``iid=True`` it draws i.i.d. points
of the same law instead: component and angle at random, standardised by the population moments (derived
below) that the reference's 300 000-point statistics estimate, so a batch of any size has that law.

The DSB-family sets that the reference standardises (moons, s-curve, swiss roll) likewise use the
population moments, so every draw of those sets is i.i.d. whatever ``n`` is.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from torch import Tensor

from sbcore.data.base import Source

RandomState = np.random.RandomState
_Draw = Callable[[int, RandomState, bool], np.ndarray]


# --------------------------------------------------------------------------------------- helpers
def _scalar_standardise(points: np.ndarray) -> np.ndarray:
    """(p - mean) / std with ONE mean and std over all 2N numbers (the DDIB/DSB `normalize`)."""
    return (points - points.mean()) / points.std()


def _component_gaussians(n: int, rng: RandomState, centres: np.ndarray, std: float) -> np.ndarray:
    """An equal-weight mixture of isotropic Gaussians."""
    k = rng.randint(len(centres), size=n)
    return centres[k] + std * rng.randn(n, 2)


# ----------------------------------------------------------------------- moons (sklearn make_moons)
_MOON_NOISE = 0.05
# Population moments of the unstandardised moons, with theta ~ U[0, pi] and each moon half the mass:
# coordinate means (0, 1) for x and (2/pi, 1/2 - 2/pi) for y, so the scalar mean is 3/8; the mean
# squares are 1/2, 3/2, 1/2 and 3/4 - 2/pi, plus the noise variance.
_MOONS_MEAN = 3 / 8
_MOONS_STD = math.sqrt((13 / 4 - 2 / math.pi) / 4 + _MOON_NOISE**2 - _MOONS_MEAN**2)


def _moons_raw(theta: np.ndarray, outer: np.ndarray, rng: RandomState) -> np.ndarray:
    """Upper moon (cos t, sin t), lower moon (1 - cos t, 1/2 - sin t), then N(0, 0.05^2) noise."""
    x = np.where(outer, np.cos(theta), 1 - np.cos(theta))
    y = np.where(outer, np.sin(theta), 1 - np.sin(theta) - 0.5)
    return np.stack([x, y], axis=1) + rng.normal(scale=_MOON_NOISE, size=(len(theta), 2))


def _moons_iid(n: int, rng: RandomState) -> np.ndarray:
    outer = rng.rand(n) < 0.5
    theta = np.pi * rng.rand(n)
    return (_moons_raw(theta, outer, rng) - _MOONS_MEAN) / _MOONS_STD


def _ddib_moons(n: int, rng: RandomState, iid: bool) -> np.ndarray:
    """`make_moons(n, shuffle=False, noise=0.05)`: angles on a linspace grid, upper moon first."""
    if iid:
        return _moons_iid(n, rng)
    n_out = n // 2
    theta = np.concatenate([np.linspace(0, np.pi, n_out), np.linspace(0, np.pi, n - n_out)])
    return _scalar_standardise(_moons_raw(theta, np.arange(n) < n_out, rng))


# ------------------------------------------------------------------------------------ checkerboards
def _checker_raw(n: int, rng: RandomState, sort: bool) -> np.ndarray:
    """x1 ~ U[-2, 2), x2 = U[0, 1) - 2 Bern(1/2) + (floor(x1) mod 2): 8 unit cells of [-2, 2]^2.

    Both coordinates have mean 0 and variance 4/3 (x2 is a sum of independent U[0,1), -2 Bern and
    Bern parts: 1/12 + 1 + 1/4).
    """
    x1 = rng.rand(n) * 4 - 2
    if sort:
        x1 = np.sort(x1)[::-1]
    x2 = rng.rand(n) - rng.randint(0, 2, n) * 2
    x2 = x2 + np.floor(x1) % 2
    return np.stack([x1, x2], axis=1)


def _ddib_checkerboard(n: int, rng: RandomState, iid: bool) -> np.ndarray:
    if iid:
        return _checker_raw(n, rng, sort=False) / math.sqrt(4 / 3)
    return _scalar_standardise(_checker_raw(n, rng, sort=True))


def _dsb_checker(n: int, rng: RandomState) -> np.ndarray:
    return 0.5 * _checker_raw(n, rng, sort=False)


def _checkerboard(cells: int) -> Callable[[int, RandomState], np.ndarray]:
    """`checkerboard:G`: a uniform cell (i, j) of the G x G grid with i + j even, uniform inside it.

    x = 2 (u + (i, j)) / G - 1 with u ~ U[0, 1)^2, so the board fills [-1, 1]^2 with G^2 / 2 squares.
    """
    even_cells = np.array([(i, j) for i in range(cells) for j in range(cells) if (i + j) % 2 == 0], float)

    def draw(n: int, rng: RandomState) -> np.ndarray:
        ij = even_cells[rng.randint(len(even_cells), size=n)]
        return 2 * (rng.rand(n, 2) + ij) / cells - 1

    return draw


# ------------------------------------------------------------------------------ rings and squares
_WIDTH = 0.5  # radial jitter: r = R_k + (U - 1/2) * width
_RADII_INCREASING = np.array([1.0, 2.0, 3.0])
_RADII_EQUAL = np.ones(3)
_NO_CENTRES = np.zeros((3, 2))


def _parallel_centres(spacing: int) -> np.ndarray:
    # The reference divides a float32 array by 50 before promoting: keep that rounding (±2.7999999523).
    return (np.array([(-spacing, 0), (0, 0), (spacing, 0)], np.float32) / np.float32(50)).astype(np.float64)


def _population_moments(radii: np.ndarray, centres: np.ndarray, boundary_msq: float) -> tuple[float, float]:
    """Scalar mean and std of r * b + c over both coordinates, for a uniform component k.

    r = R_k + e with e ~ U(-w/2, w/2) independent of the unit shape point b, whose per-coordinate mean
    square is `boundary_msq` (1/2 on the unit circle, 2/3 on the unit square's boundary) and mean 0.
    """
    mean = float(centres.mean())
    r_msq = float(np.mean(radii**2)) + _WIDTH**2 / 12
    c_msq = float(np.mean(np.sum(centres**2, axis=1))) / 2
    return mean, math.sqrt(r_msq * boundary_msq + c_msq - mean**2)


def _rings(n: int, rng: RandomState, iid: bool, radii: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """K rings of radius R_k and width 0.5 around centre c_k, equal mass each.

    Reference order: ring index in blocks of N/K, then the radial jitter, then the angles, drawn
    (K, N/K), sorted within each ring and the whole vector reversed (DDIB `RingSampler`).
    """
    k = len(radii)
    if iid:
        idx = rng.randint(k, size=n)
        jitter = rng.rand(n)
        theta = 2 * np.pi * rng.rand(n)
    else:
        if n % k:
            raise ValueError(f"n: the reference rings need a multiple of {k}, got {n}")
        idx = np.repeat(np.arange(k), n // k)
        jitter = rng.rand(n)
        theta = np.sort(rng.rand(k, n // k) * 2 * np.pi, axis=1).reshape(-1)[::-1]
    r = radii[idx] + (jitter - 0.5) * _WIDTH
    points = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1) + centres[idx]
    if iid:
        mean, std = _population_moments(radii, centres, boundary_msq=1 / 2)
        return (points - mean) / std
    return _scalar_standardise(points)


def _squares(n: int, rng: RandomState, iid: bool, radii: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """K square outlines of half-side R_k and width 0.5 around c_k, equal mass per square and edge.

    A unit-square boundary point b is (s, 1), (1, s), (s, -1) or (-1, s) (top, right, bottom, left),
    s ~ U[-1, 1]; the point is r * b + c_k with r = R_k + (U - 1/2) * 0.5 scaling BOTH coordinates.
    Reference order: per square the four edges' s (sorted; right and bottom reversed), then the jitter
    (DDIB `SquareSampler`).
    """
    k = len(radii)
    if iid:
        idx = rng.randint(k, size=n)
        edge = rng.randint(4, size=n)
        s = 2 * (rng.rand(n) - 0.5)
    else:
        if n % (4 * k):
            raise ValueError(f"n: the reference squares need a multiple of {4 * k}, got {n}")
        per_edge = n // (4 * k)
        idx = np.repeat(np.arange(k), 4 * per_edge)
        edge = np.tile(np.repeat(np.arange(4), per_edge), k)
        edges = []
        for _ in range(k):
            for reverse in (False, True, True, False):
                increasing = 2 * np.sort(rng.rand(per_edge) - 0.5)
                edges.append(increasing[::-1] if reverse else increasing)
        s = np.concatenate(edges)
    one = np.ones_like(s)
    bx = np.choose(edge, [s, one, s, -one])
    by = np.choose(edge, [one, s, -one, s])
    r = radii[idx] + (rng.rand(n) - 0.5) * _WIDTH
    points = np.stack([bx * r, by * r], axis=1) + centres[idx]
    if iid:
        mean, std = _population_moments(radii, centres, boundary_msq=2 / 3)
        return (points - mean) / std
    return _scalar_standardise(points)


# ---------------------------------------------------------------------- the other DSB-family sets
def _standard(n: int, rng: RandomState) -> np.ndarray:
    return rng.randn(n, 2)


def _moons(n: int, rng: RandomState) -> np.ndarray:
    """`dsb-moon`: make_moons(noise=0.05), scalar-standardised, x 0.4."""
    return 0.4 * _moons_iid(n, rng)


# S-curve, columns (x, z) = (sin t, sign(t)(cos t - 1)) + N(0, 0.1^2), t ~ U(-3pi/2, 3pi/2): both odd in
# t, so mean 0; E sin^2 = 1/2, E cos = -2/(3 pi), E (cos t - 1)^2 = 3/2 + 4/(3 pi).
_SCURVE_NOISE = 0.1
_SCURVE_STD = math.sqrt(1 + 2 / (3 * math.pi) + _SCURVE_NOISE**2)


def _scurve(n: int, rng: RandomState) -> np.ndarray:
    """`dsb-scurve`: make_s_curve(noise=0.1) columns [0, 2], scalar-standardised, x 0.4."""
    t = 3 * np.pi * (rng.rand(n) - 0.5)
    points = np.stack([np.sin(t), np.sign(t) * (np.cos(t) - 1)], axis=1) + _SCURVE_NOISE * rng.randn(n, 2)
    return 0.4 * points / _SCURVE_STD


# Swiss roll, columns (t cos t, t sin t) + N(0, 0.7^2), t ~ U(3pi/2, 9pi/2): E t cos t = 2,
# E t sin t = 2/(3 pi), E t^2 = 39 pi^2 / 4.
_SWISS_NOISE = 0.7
_SWISS_MEAN = 1 + 1 / (3 * math.pi)
_SWISS_STD = math.sqrt(39 * math.pi**2 / 8 + _SWISS_NOISE**2 - _SWISS_MEAN**2)


def _swissroll(n: int, rng: RandomState) -> np.ndarray:
    """`dsb-swiss`: make_swiss_roll(noise=0.7) columns [0, 2], scalar-standardised, x 0.45."""
    t = 1.5 * np.pi * (1 + 2 * rng.rand(n))
    points = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) + _SWISS_NOISE * rng.randn(n, 2)
    return 0.45 * (points - _SWISS_MEAN) / _SWISS_STD


def _circles(n: int, rng: RandomState) -> np.ndarray:
    """`dsb-circle`: make_circles(noise=0.05, factor=0.5) x 0.8: radius 1 or 0.5, equal mass."""
    radius = np.where(rng.rand(n) < 0.5, 1.0, 0.5)
    theta = 2 * np.pi * rng.rand(n)
    points = radius[:, None] * np.stack([np.cos(theta), np.sin(theta)], axis=1) + 0.05 * rng.randn(n, 2)
    return 0.8 * points


def _mixture(n: int, rng: RandomState) -> np.ndarray:
    """`dsb-mixture`: N((+-1/2, 0), diag(0.1^2, 0.2^2)), half each."""
    sign = np.where(rng.rand(n) < 0.5, -1.0, 1.0)
    return np.stack([0.5 * sign, np.zeros(n)], axis=1) + rng.randn(n, 2) * np.array([0.1, 0.2])


def _ring_of_gaussians(n: int, rng: RandomState, angles_deg: np.ndarray) -> np.ndarray:
    """Centres at radius 7 at the given angles, std 0.5, all scaled by 0.1 (radius 0.7, std 0.05)."""
    a = np.deg2rad(angles_deg)
    return _component_gaussians(n, rng, 0.7 * np.stack([np.cos(a), np.sin(a)], axis=1), 0.05)


def _pinwheel(n: int, rng: RandomState) -> np.ndarray:
    """`dsb-pinwheel`: 7 arms, radial std 0.3, tangential std 0.1, rate 0.25, x 0.4.

    f ~ N((1, 0), diag(0.3^2, 0.1^2)) on arm c, angle a = 2 pi c / 7 + 0.25 exp(f_1), point 0.4 f^T R_a
    with R_a = [[cos a, -sin a], [sin a, cos a]] (f as a row vector times R_a).
    """
    arm = rng.randint(7, size=n)
    f = rng.randn(n, 2) * np.array([0.3, 0.1]) + np.array([1.0, 0.0])
    a = 2 * np.pi * arm / 7 + 0.25 * np.exp(f[:, 0])
    cos, sin = np.cos(a), np.sin(a)
    return 0.4 * np.stack([f[:, 0] * cos + f[:, 1] * sin, -f[:, 0] * sin + f[:, 1] * cos], axis=1)


def _grid_gaussians(count: int) -> Callable[[int, RandomState], np.ndarray]:
    """`gaussians:P`: a sqrt(P) x sqrt(P) grid of centres ((i + 1/2) g, (j + 1/2) g), g = 1/sqrt(P),
    std g/10, on [0, 1]^2 and then mapped to [-1, 1]^2 by x -> 2x - 1."""
    side = math.isqrt(count)
    if side * side != count:
        raise ValueError(f"gaussians:P: expected P to be a perfect square (4, 9, 16, ...), got {count}")
    g = 1 / side
    centres = np.array([((i + 0.5) * g, (j + 0.5) * g) for i in range(side) for j in range(side)])
    return lambda n, rng: 2 * _component_gaussians(n, rng, centres, g / 10) - 1


# ------------------------------------------------------------------------------------- the table
def _ignore_iid(draw: Callable[[int, RandomState], np.ndarray]) -> _Draw:
    return lambda n, rng, iid: draw(n, rng)


#: families with a size parameter: name -> (factory, default parameter).
_PARAMETRISED: dict[str, tuple[Callable[[int], Callable[[int, RandomState], np.ndarray]], int]] = {
    "checkerboard": (_checkerboard, 8),
    "gaussians": (_grid_gaussians, 16),
}

_SETS: dict[str, _Draw] = {
    "standard": _ignore_iid(_standard),
    "moons": _ignore_iid(_moons),
    "scurve": _ignore_iid(_scurve),
    "swissroll": _ignore_iid(_swissroll),
    "circles": _ignore_iid(_circles),
    "mixture": _ignore_iid(_mixture),
    "8gaussians": _ignore_iid(partial(_ring_of_gaussians, angles_deg=45.0 * np.arange(8))),
    "6gaussians": _ignore_iid(partial(_ring_of_gaussians, angles_deg=90.0 + 60.0 * np.arange(6))),
    "pinwheel": _ignore_iid(_pinwheel),
    "dsb-checker": _ignore_iid(_dsb_checker),
    "ddib-moons": _ddib_moons,
    "ddib-checkerboard": _ddib_checkerboard,
    "ddib-concentric-rings": partial(_rings, radii=_RADII_INCREASING, centres=_NO_CENTRES),
    "ddib-concentric-squares": partial(_squares, radii=_RADII_INCREASING, centres=_NO_CENTRES),
    "ddib-parallel-rings": partial(_rings, radii=_RADII_EQUAL, centres=_parallel_centres(140)),
    "ddib-parallel-squares": partial(_squares, radii=_RADII_EQUAL, centres=_parallel_centres(150)),
}

#: the Simplified-DSB reference's own names for the same sets.
ALIASES: dict[str, str] = {
    "dsb-moon": "moons",
    "dsb-scurve": "scurve",
    "dsb-swiss": "swissroll",
    "dsb-circle": "circles",
    "dsb-mixture": "mixture",
    "dsb-8gaussians": "8gaussians",
    "dsb-6gaussians": "6gaussians",
    "dsb-pinwheel": "pinwheel",
}

#: every accepted base name; ``checkerboard`` and ``gaussians`` take an optional ``:N`` parameter.
NAMES: tuple[str, ...] = tuple(sorted([*_SETS, *_PARAMETRISED, *ALIASES]))


def _resolve(name: str) -> _Draw:
    base, sep, arg = name.partition(":")
    base = ALIASES.get(base, base)
    if base in _PARAMETRISED:
        factory, default = _PARAMETRISED[base]
        if sep and not (arg.isdigit() and int(arg) > 0):
            raise ValueError(f"{base}:N: expected a positive integer N, got {name!r}")
        return _ignore_iid(factory(int(arg) if sep else default))
    if base in _SETS and not sep:
        return _SETS[base]
    if base in _SETS:
        raise ValueError(f"toy 2-D dataset {base!r} takes no ':' parameter, got {name!r}")
    close = difflib.get_close_matches(base, NAMES, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"unknown toy 2-D dataset {name!r}; available: {', '.join(NAMES)} "
        f"(checkerboard and gaussians take an optional ':N', e.g. 'checkerboard:4').{hint}"
    )


def generate(name: str, n: int, rng: RandomState, *, iid: bool = False) -> np.ndarray:
    """Draw n points of toy set `name` with `rng` alone; float32 array of shape (n, 2).

    iid=False (default): DDIB sets exactly as their reference builds them (ordered, self-standardised;
    rings need n % 3 == 0 and squares n % 12 == 0). iid=True: i.i.d. points of the same law. The
    DSB-family sets are i.i.d. either way.
    """
    if n < 0:
        raise ValueError(f"n: expected a non-negative integer, got {n}")
    return _resolve(name)(n, rng, iid).astype(np.float32)


class Toy2D(Source):
    """A built-in 2-D toy distribution (see the module docstring for the names), times `scale`.

    Every batch is i.i.d.: the DDIB sets, which their reference builds in blocks (ring by ring, sorted
    angles), are drawn through ``generate(..., iid=True)`` with random components and angles, so any
    batch is a random sample of the set, never an ordered slice. All randomness comes from the
    generator passed to `sample`.
    """

    fresh_draws = True

    def __init__(self, name: str = "moons", scale: float = 1.0) -> None:
        self._draw = _resolve(name)
        if not scale > 0:
            raise ValueError(f"scale: expected a positive number, got {scale}")
        self.name = name
        self.scale = scale
        self.shape = (2,)

    def __repr__(self) -> str:
        return f"Toy2D(name={self.name!r}, scale={self.scale})"

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
        points = self._draw(n, RandomState(seed), True).astype(np.float32)
        return torch.from_numpy(points) * self.scale
