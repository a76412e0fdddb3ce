"""Linear degradations: 4x super-resolution (pooling, bicubic) and blur (uniform, Gaussian).

Bicubic down-sampling and blur are separable, Y = A_h X A_w^T. With ``reference_compat: true``
(default) they reproduce the I2SB reference (which takes them from DDRM, Kawar et al. 2022):

* the operator is applied through the SVD of each 1-D matrix with singular values below 3e-2 set to 0;
* the blur's 1-D convolution loops over j in [i - k//2, i + k//2) and so drops the kernel's last tap
  (9-tap uniform: row sum 8/9, 2-D DC gain 64/81; 5-tap Gaussian of sigma 10 px: 2-D gain 0.643), with
  zero padding, applied to images mapped to [0, 1] -- degraded images come out darker, with dark borders.

``reference_compat: false`` applies the full kernel and the exact matrices. Super-resolution upsamples
the low-resolution result back to the input size by nearest-neighbour repetition (as the reference).

``reference_channel_order: true`` (blur only, off by default) reproduces a bug of the released blur
(DDRM's ``Deblurring``): it computes H x = U (s * V^T x) with the coefficients V^T x laid out pixel-major,
channel-interleaved (index C q + c for the q-th largest singular value), but its singular values
``_singulars.repeat(1, 3)`` channel-major (index c HW + q), so coefficient (q, c) is scaled by the
((C q + c) mod HW)-th largest singular value instead of the q-th (``repeat_interleave(3)`` was meant).
On colour images that mixes frequencies and shifts brightness (max |difference| 0.47 on 24 px images,
plugins/sb-i2sb/README.md); with one channel both layouts agree. sbcore's default is the intended operator.
"""

from __future__ import annotations

from abc import abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor

from sb_i2sb.corruption.base import Corrupted, Corruption

#: singular values below this are zeroed in reference mode (DDRM's ZERO).
SINGULAR_FLOOR = 3e-2


def bicubic_taps(factor: int = 4, a: float = -0.5) -> Tensor:
    """4 * factor normalised taps of Keys' cubic kernel at x = (i - 2 factor + 1/2) / factor."""
    x = ((torch.arange(4 * factor, dtype=torch.float64) - 2 * factor + 0.5) / factor).abs()
    inner = (a + 2) * x**3 - (a + 3) * x**2 + 1
    outer = a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    k = torch.where(x <= 1, inner, torch.where(x < 2, outer, torch.zeros_like(x)))
    return k / k.sum()


def bicubic_matrix(size: int, factor: int = 4) -> Tensor:
    """(size / factor, size): output r centred between pixels factor r + 1 and factor r + 2, reflective
    padding (index -j-1 below 0, 2 size - 1 - j above)."""
    taps = bicubic_taps(factor)
    m = torch.zeros(size // factor, size, dtype=torch.float64)
    offset = len(taps) // 2 - factor // 2
    for r in range(size // factor):
        for i, tap in enumerate(taps.tolist()):
            j = factor * r + i - offset
            j = -j - 1 if j < 0 else 2 * size - 1 - j if j >= size else j
            m[r, j] += tap
    return m


def blur_matrix(size: int, taps: Tensor, drop_last_tap: bool) -> Tensor:
    """(size, size) zero-padded convolution; `drop_last_tap` loops j over [i - k//2, i + k//2) as DDRM."""
    half = len(taps) // 2
    m = torch.zeros(size, size, dtype=torch.float64)
    for i in range(size):
        for j in range(i - half, i + half + (0 if drop_last_tap else 1)):
            if 0 <= j < size:
                m[i, j] = taps[j - i + half]
    return m


def truncated(m: Tensor) -> Tensor:
    """The matrix rebuilt from its SVD with singular values below `SINGULAR_FLOOR` zeroed."""
    u, s, vh = torch.linalg.svd(m, full_matrices=False)
    return u @ torch.diag(torch.where(s < SINGULAR_FLOOR, torch.zeros_like(s), s)) @ vh


class Separable(Corruption):
    """Y = A X A^T per channel, A built once per side length (and cached)."""

    def __init__(self, reference_compat: bool = True) -> None:
        self.reference_compat = reference_compat
        self._cache: dict[int, Tensor] = {}

    @abstractmethod
    def matrix(self, size: int) -> Tensor:
        """The 1-D operator for a side length (float64)."""

    def apply_matrix(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        mats = []
        for size in (h, w):
            if size not in self._cache:
                m = self.matrix(size)
                self._cache[size] = truncated(m) if self.reference_compat else m
            mats.append(self._cache[size].to(device=x.device, dtype=x.dtype))
        return mats[0] @ x @ mats[1].T


class Pool(Corruption):
    """sr4x-pool: mean over factor x factor blocks, repeated back to full size."""

    def __init__(self, factor: int = 4) -> None:
        self.factor = self.multiple_of = factor

    def apply(self, x0: Tensor, generator: torch.Generator | None) -> Corrupted:
        low = F.avg_pool2d(x0, self.factor)
        return Corrupted(F.interpolate(low, scale_factor=self.factor, mode="nearest"))


class Bicubic(Separable):
    """sr4x-bicubic: bicubic (a = -0.5) down-sampling by `factor`, repeated back to full size."""

    def __init__(self, factor: int = 4, reference_compat: bool = True) -> None:
        super().__init__(reference_compat)
        self.factor = self.multiple_of = factor

    def matrix(self, size: int) -> Tensor:
        return bicubic_matrix(size, self.factor)

    def apply(self, x0: Tensor, generator: torch.Generator | None) -> Corrupted:
        return Corrupted(self.apply_matrix(x0).repeat_interleave(self.factor, -2).repeat_interleave(self.factor, -1))


def shipped_channel_order(x: Tensor, m: Tensor, floor: bool) -> Tensor:
    """M X M^T per channel of square images x (B, C, n, n) through the SVD M = U diag(s) V^T, with the singular
    values applied in the released code's channel-major order (module docstring): coefficient q (in the order
    of the 2-D singular values s_a s_b, largest first) of channel c is scaled by the ((C q + c) mod n^2)-th."""
    c, n = x.shape[1], x.shape[-1]
    u, s, vh = torch.linalg.svd(m, full_matrices=True)
    if floor:
        s = torch.where(s < SINGULAR_FLOOR, torch.zeros_like(s), s)
    # torch's default (unstable) CPU sort, as the released code: equal singular values (s_a s_b = s_b s_a) keep
    # its order, which decides which wrong singular value each coefficient gets
    values, perm = torch.outer(s, s).reshape(-1).sort(descending=True)
    q = torch.arange(n * n)
    scale = torch.empty(c, n * n, dtype=s.dtype)
    for channel in range(c):
        scale[channel, perm] = values[(c * q + channel) % (n * n)]
    u, v, scale = (a.to(device=x.device, dtype=x.dtype) for a in (u, vh.T, scale.view(c, n, n)))
    return u @ (scale * (v.T @ x @ v)) @ u.T


class Blur(Separable):
    """Separable blur applied to images in [0, 1] (as the reference), mapped back to [-1, 1]."""

    _taps: Tensor

    def __init__(self, reference_compat: bool = True, reference_channel_order: bool = False) -> None:
        super().__init__(reference_compat)
        self.reference_channel_order = reference_channel_order

    def matrix(self, size: int) -> Tensor:
        return blur_matrix(size, self._taps, drop_last_tap=self.reference_compat)

    def apply(self, x0: Tensor, generator: torch.Generator | None) -> Corrupted:
        x = (x0 + 1) / 2
        if self.reference_channel_order and x.shape[-3] > 1:
            if x.shape[-1] != x.shape[-2]:
                raise ValueError(f"reference_channel_order reproduces the released blur, which takes square images; "
                                 f"got {tuple(x.shape[-2:])}")
            return Corrupted(shipped_channel_order(x, self.matrix(x.shape[-1]), self.reference_compat) * 2 - 1)
        return Corrupted(self.apply_matrix(x) * 2 - 1)


class UniformBlur(Blur):
    """blur-uni: a box of `size` taps (9 in the paper)."""

    def __init__(self, size: int = 9, reference_compat: bool = True, reference_channel_order: bool = False) -> None:
        super().__init__(reference_compat, reference_channel_order)
        self.size = size
        self._taps = torch.full((size,), 1.0 / size, dtype=torch.float64)


class GaussianBlur(Blur):
    """blur-gauss: `size` taps of exp(-x^2 / (2 sigma^2)), x = -size//2 .. size//2, normalised (5 taps,
    sigma 10 px in the paper: nearly flat)."""

    def __init__(self, size: int = 5, sigma: float = 10.0, reference_compat: bool = True,
                 reference_channel_order: bool = False) -> None:
        super().__init__(reference_compat, reference_channel_order)
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        self.size, self.sigma = size, sigma
        x = torch.arange(size, dtype=torch.float64) - size // 2
        taps = torch.exp(-(x**2) / (2 * sigma**2))
        self._taps = taps / taps.sum()
