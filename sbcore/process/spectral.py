"""Function-space reference: a diagonal Ornstein–Uhlenbeck / Q-Wiener process in the DCT-II basis.

DBFS (Park, Choi, Lim, Lee, NeurIPS 2024, arXiv 2405.20630) bridges functions with the linear SDE
dX = A X dt + sigma dW^Q, A and Q diagonal in one orthonormal basis. On a grid the basis is the
orthonormal DCT-II over the trailing spatial axes (per channel); in mode k the SDE is the scalar OU

    dX_k = -a_k X_k dt + s_k dW,         e(h) = exp(-a h),   v(h) = (1 - exp(-2 a h)) / (2 a),

whose bridge between X_0 and X_1 (the Doob h-transform) is Gaussian in every mode:

    X_t = [v(1-t) e(t) X_0 + v(t) e(1-t) X_1] / v(1)  +  s_k sqrt(v(t) v(1-t) / v(1)) Z,

with drift towards X_1  -a X + [e(1-t) X_1 - e(1-t)^2 X] / v(1-t)  (s_k cancels). The OU process is
reversible, so the bridge run backwards is the same formula with the time left, t, in place of 1 - t.

Spectra (`spectrum`): ``pixel`` is the reference code's a = shift + sum_d (pi k_d / N_d)^2 with the
frequencies divided by the grid size, lambda = a^(-q), s_k = sigma sqrt(lambda): per-pixel white noise
of variance ~0.965 at any N, stiffness a <= shift + d pi^2 at any N. ``physical`` fixes the operator on
the domain [0, 1]^d, a = shift + sum_d (pi k_d / N_ref)^2, and scales the mode noise by sqrt(prod N / N_ref^d),
so resolution-normalised coefficients X_k / sqrt(prod N) have one law at every N (trace-class when
q > d/2); its stiffest rate grows like N^2 and needs the `exponential` sampler. Both agree at N = N_ref.
Note the reference code's `sigma` argument divides the noise; here `sigma` multiplies it.
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import torch
from torch import Tensor

from sbcore.process.base import Direction, ReferenceProcess, check_direction

Spectrum = Literal["pixel", "physical"]


@functools.lru_cache(maxsize=32)
def dct_matrix(n: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Orthonormal DCT-II matrix C (n x n): C[k, i] = sqrt(2/n) cos(pi k (2i + 1) / (2n)), row 0 / sqrt(2)."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    c = math.sqrt(2.0 / n) * torch.cos(math.pi * k * (2 * i + 1) / (2 * n))
    c[0] /= math.sqrt(2.0)
    return c.to(device=device, dtype=dtype)


def dct(x: Tensor, dims: int) -> Tensor:
    """Orthonormal DCT-II over the last `dims` (1 or 2) axes; equals scipy.fft.dctn(type=2, norm='ortho')."""
    x = x @ dct_matrix(x.shape[-1], x.device, x.dtype).T
    return dct_matrix(x.shape[-2], x.device, x.dtype) @ x if dims == 2 else x


def idct(x: Tensor, dims: int) -> Tensor:
    """Inverse of `dct` (the transpose: the matrix is orthogonal)."""
    x = x @ dct_matrix(x.shape[-1], x.device, x.dtype)
    return dct_matrix(x.shape[-2], x.device, x.dtype).T @ x if dims == 2 else x


def ou_decay(a: Tensor, h: Tensor) -> Tensor:
    """e(h) = exp(-a h): the OU mean factor over a duration h."""
    return torch.exp(-a * h)


def ou_variance(a: Tensor, h: Tensor) -> Tensor:
    """v(h) = (1 - exp(-2 a h)) / (2 a), the OU transition variance per unit noise; h itself at a = 0."""
    safe = torch.where(a > 0, a, torch.ones_like(a))
    return torch.where(a > 0, -torch.expm1(-2 * safe * h) / (2 * safe), h * torch.ones_like(a))


class SpectralProcess(ReferenceProcess):
    """Diagonal OU / Q-Wiener reference in the orthonormal DCT-II basis of the last `dims` axes.

    dims: 1 (functions, data (C, N)) or 2 (images, data (C, H, W)).
    spectrum: ``pixel`` (reference code, default) or ``physical`` (module docstring).
    q_exponent: lambda = a^(-q) (the reference's 0.02).
    sigma: multiplies the mode noise s_k = sigma sqrt(lambda_k) (the reference's `energy` is 1 / sigma).
    shift: the constant in a = shift + ... (the reference's 1; 0 makes the DC mode Brownian).
    reference_size: N_ref, the grid size at which ``physical`` equals ``pixel``; required for physical.

    Per-mode coefficients depend on the grid: `coefficients(t, shape)` etc. take the spatial `shape`
    and return tensors of shape t.shape + shape. Every conversion works in the DCT domain.
    """

    def __init__(
        self, dims: int = 2, spectrum: Spectrum = "pixel", q_exponent: float = 0.02, sigma: float = 1.0,
        shift: float = 1.0, reference_size: int | None = None,
    ) -> None:
        if dims not in (1, 2):
            raise ValueError(f"dims: expected 1 or 2 spatial axes, got {dims}")
        if spectrum not in ("pixel", "physical"):
            raise ValueError(f"spectrum: expected 'pixel' or 'physical', got {spectrum!r}")
        if spectrum == "physical" and (reference_size is None or reference_size < 1):
            raise ValueError("reference_size: the physical spectrum needs the grid size it is defined at, "
                             f"got {reference_size}")
        if not sigma > 0 or not shift >= 0 or not q_exponent >= 0:
            raise ValueError(f"need sigma > 0, shift >= 0, q_exponent >= 0; got sigma={sigma}, shift={shift}, "
                             f"q_exponent={q_exponent}")
        if shift == 0 and q_exponent > 0:
            raise ValueError(f"shift: 0 makes a = 0 in the constant mode, where lambda = a^(-q) is infinite; "
                             f"use q_exponent: 0 with it, got q_exponent={q_exponent}")
        self.dims, self.spectrum, self.q_exponent = dims, spectrum, float(q_exponent)
        self.sigma, self.shift, self.reference_size = float(sigma), float(shift), reference_size
        self._cache: dict[tuple, tuple[Tensor, Tensor]] = {}

    def __repr__(self) -> str:
        return (f"SpectralProcess(dims={self.dims}, spectrum={self.spectrum!r}, q_exponent={self.q_exponent}, "
                f"sigma={self.sigma}, shift={self.shift}, reference_size={self.reference_size})")

    def check_data_shape(self, shape: tuple[int, ...]) -> None:
        if len(shape) < self.dims or any(n < 1 for n in shape):
            axes = "(C, N)" if self.dims == 1 else "(C, H, W)"
            raise ValueError(f"process: spectral with dims: {self.dims} bridges data with {self.dims} spatial axes "
                             f"{axes}; this run's samples have shape {tuple(shape)} (use a process for vectors "
                             "such as brownian, or dims: 1)")

    # ---- the spectrum ------------------------------------------------------------------------

    def _check_shape(self, shape: tuple[int, ...] | None) -> tuple[int, ...]:
        if shape is None or len(shape) != self.dims:
            raise ValueError(f"SpectralProcess(dims={self.dims}) coefficients are per mode: pass the spatial shape "
                             f"of {self.dims} grid size(s), got {shape}")
        return tuple(int(n) for n in shape)

    def eigenvalues(self, shape: tuple[int, ...], **like) -> Tensor:
        """Decay rates a_k of -A on a grid of `shape`, shape `shape` (float64 unless `dtype` is given)."""
        return self._spectrum(self._check_shape(shape), **like)[0]

    def noise_scale(self, shape: tuple[int, ...], **like) -> Tensor:
        """Std s_k of the driving noise per mode and unit time, in orthonormal DCT coefficients."""
        return self._spectrum(self._check_shape(shape), **like)[1]

    def _spectrum(self, shape: tuple[int, ...], dtype: torch.dtype = torch.float64,
                  device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """(a, s) on a grid, computed in float64 once per (shape, dtype, device)."""
        key = (shape, dtype, torch.device(device))
        if key not in self._cache:
            a = torch.full(shape, self.shift, dtype=torch.float64)
            for axis, n in enumerate(shape):
                scale = n if self.spectrum == "pixel" else self.reference_size
                freq = (math.pi * torch.arange(n, dtype=torch.float64) / scale) ** 2
                a = a + freq.reshape([n if i == axis else 1 for i in range(len(shape))])
            s = self.sigma * a.pow(-self.q_exponent / 2)
            if self.spectrum == "physical":
                s = s * math.sqrt(math.prod(shape) / self.reference_size**self.dims)
            self._cache[key] = (a.to(dtype=dtype, device=device), s.to(dtype=dtype, device=device))
        return self._cache[key]

    # ---- per-mode coefficients (t.shape + shape) ----------------------------------------------

    def _grid(self, t: Tensor, shape: tuple[int, ...] | None) -> tuple[Tensor, Tensor, Tensor]:
        """(t, a, s) broadcast to t.shape + shape."""
        shape = self._check_shape(shape)
        t = torch.as_tensor(t)
        t = t if t.is_floating_point() else t.to(torch.get_default_dtype())
        like = {"dtype": t.dtype, "device": t.device}
        t = t.reshape(*t.shape, *([1] * self.dims))
        return t, self.eigenvalues(shape, **like), self.noise_scale(shape, **like)

    def coefficients(self, t: Tensor, shape: tuple[int, ...] | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(c0, c1, c) of X_t = c0 X_0 + c1 X_1 + c xi per mode, xi the unit-normal DCT coefficient."""
        t, a, s = self._grid(t, shape)
        total = ou_variance(a, torch.ones_like(t))
        v_in, v_out = ou_variance(a, t), ou_variance(a, 1 - t)
        c0 = v_out * ou_decay(a, t) / total
        c1 = v_in * ou_decay(a, 1 - t) / total
        return c0, c1, s * torch.sqrt((v_in * v_out / total).clamp_min(0))

    def drift_coefficients(
        self, t: Tensor, direction: Direction, shape: tuple[int, ...] | None = None
    ) -> tuple[Tensor, Tensor]:
        """(u, w): the bridge drift towards the end is u * end + w * x per mode (s_k cancels)."""
        check_direction(direction)
        t, a, _ = self._grid(t, shape)
        left = self.time_left(t, direction)
        e, v = ou_decay(a, left), ou_variance(a, left)
        return e / v, -a - e * e / v

    def eps_coefficients(
        self, t: Tensor, direction: Direction, shape: tuple[int, ...] | None = None
    ) -> tuple[Tensor, Tensor]:
        """(p, q): end = p x_t + q eps, the reference's transition from x_t to the end (Brownian's sign)."""
        check_direction(direction)
        t, a, s = self._grid(t, shape)
        left = self.time_left(t, direction)
        return ou_decay(a, left), -s * ou_variance(a, left).sqrt()

    def diffusion(self, t: Tensor) -> Tensor:
        """1: the per-mode noise scale s_k is carried by `noise_like`."""
        t = torch.as_tensor(t)
        dtype = t.dtype if t.is_floating_point() else torch.get_default_dtype()
        return torch.ones(t.shape, dtype=dtype, device=t.device)

    # ---- in the DCT domain ---------------------------------------------------------------------

    def _spatial(self, x: Tensor) -> tuple[int, ...]:
        if x.ndim < self.dims + 1:
            raise ValueError(f"SpectralProcess(dims={self.dims}) expects a batch (B, ..., {self.dims} spatial axes), "
                             f"got shape {tuple(x.shape)}")
        return tuple(x.shape[-self.dims:])

    def _per_sample(self, c: Tensor, x: Tensor) -> Tensor:
        """Coefficients of shape (B, *spatial) (or spatial alone) -> broadcastable against x (B, C, *spatial)."""
        if c.ndim == self.dims:
            return c
        return c.reshape(c.shape[0], *([1] * (x.ndim - 1 - self.dims)), *c.shape[1:])

    def _time(self, t: Tensor | float, x: Tensor) -> Tensor:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        return t.expand(x.shape[0]) if t.ndim == 0 else t

    def noise_like(self, x: Tensor) -> Tensor:
        """IDCT of s_k xi_k: the Q-Wiener increment per unit time on x's grid."""
        s = self.noise_scale(self._spatial(x), dtype=x.dtype, device=x.device)
        return idct(s * torch.randn_like(x), self.dims)

    def mean(self, x0: Tensor, x1: Tensor, t: Tensor) -> Tensor:
        c0, c1, _ = self.coefficients(self._time(t, x0), self._spatial(x0))
        c0, c1 = self._per_sample(c0, x0), self._per_sample(c1, x0)
        return idct(c0 * dct(x0, self.dims) + c1 * dct(x1, self.dims), self.dims)

    def sample_bridge(self, x0: Tensor, x1: Tensor, t: Tensor, noise: Tensor | None = None) -> Tensor:
        """Draw x_t per mode (DBFS `sample_bridge`); `noise` is a `noise_like` draw, for reproducibility."""
        if noise is None:
            noise = self.noise_like(x0)
        shape = self._spatial(x0)
        c0, c1, c = (self._per_sample(k, x0) for k in self.coefficients(self._time(t, x0), shape))
        unit = dct(noise, self.dims) / self.noise_scale(shape, dtype=x0.dtype, device=x0.device)
        return idct(c0 * dct(x0, self.dims) + c1 * dct(x1, self.dims) + c * unit, self.dims)

    def _affine(self, which: str, t: Tensor, x: Tensor, direction: Direction) -> tuple[Tensor, Tensor]:
        coeffs = getattr(self, which)(self._time(t, x), direction, self._spatial(x))
        return tuple(self._per_sample(k, x) for k in coeffs)

    def target(self, predict: str, x0: Tensor, x1: Tensor, x_t: Tensor, t: Tensor, direction: Direction) -> Tensor:
        if predict not in ("drift", "eps"):
            return super().target(predict, x0, x1, x_t, t, direction)
        check_direction(direction)
        end = x1 if direction == "forward" else x0
        return self._from_end(predict, end, x_t, t, direction)

    def _from_end(self, what: str, end: Tensor, x_t: Tensor, t: Tensor, direction: Direction) -> Tensor:
        e, x = dct(end, self.dims), dct(x_t, self.dims)
        if what == "drift":
            u, w = self._affine("drift_coefficients", t, x_t, direction)
            return idct(u * e + w * x, self.dims)
        p, q = self._affine("eps_coefficients", t, x_t, direction)
        return idct((e - p * x) / q, self.dims)

    def endpoint(self, predict: str, output: Tensor, x_t: Tensor, t: Tensor, direction: Direction) -> Tensor:
        if predict not in ("drift", "eps"):
            return super().endpoint(predict, output, x_t, t, direction)
        check_direction(direction)
        o, x = dct(output, self.dims), dct(x_t, self.dims)
        if predict == "drift":
            u, w = self._affine("drift_coefficients", t, x_t, direction)
            return idct((o - w * x) / u, self.dims)
        p, q = self._affine("eps_coefficients", t, x_t, direction)
        return idct(p * x + q * o, self.dims)

    def drift(self, predict: str, output: Tensor, x_t: Tensor, t: Tensor, direction: Direction) -> Tensor:
        """DBFS's controlled drift (its eq. for the h-transform, `drift_t` in the code) from a prediction."""
        if predict == "drift":
            return output
        return self._from_end("drift", self.endpoint(predict, output, x_t, t, direction), x_t, t, direction)

    def eps(self, predict: str, output: Tensor, x_t: Tensor, t: Tensor, direction: Direction) -> Tensor:
        if predict == "eps":
            return output
        return self._from_end("eps", self.endpoint(predict, output, x_t, t, direction), x_t, t, direction)

    def bridge_step(self, x: Tensor, end: Tensor, t0: Tensor, t1: Tensor, direction: Direction,
                    noise: Tensor | None = None) -> Tensor:
        """Exact draw of x_{t1} given x_{t0} = x for the bridge pinned at `end` (the OU transition per mode).

        With h = |t1 - t0| and L1 the time left after the step: mean [v(L1) e(h) x + v(h) e(L1) end] / v(L1 + h),
        variance s^2 v(h) v(L1) / v(L1 + h); at the last step (L1 = 0) it lands on `end`.
        """
        check_direction(direction)
        shape = self._spatial(x)
        t0, t1 = self._time(t0, x), self._time(t1, x)
        _, a, s = self._grid(t0, shape)
        h = (t1 - t0).abs().reshape(-1, *([1] * self.dims))
        left = self.time_left(t1, direction).clamp_min(0).reshape(-1, *([1] * self.dims))
        v_h, v_left, v_all = ou_variance(a, h), ou_variance(a, left), ou_variance(a, left + h)
        mean_x, mean_end = v_left * ou_decay(a, h) / v_all, v_h * ou_decay(a, left) / v_all
        std = s * torch.sqrt((v_h * v_left / v_all).clamp_min(0))
        mean_x, mean_end, std = (self._per_sample(k, x) for k in (mean_x, mean_end, std))
        xi = torch.randn_like(x) if noise is None else dct(noise, self.dims) / self._per_sample(
            self.noise_scale(shape, dtype=x.dtype, device=x.device), x)
        return idct(mean_x * dct(x, self.dims) + mean_end * dct(end, self.dims) + std * xi, self.dims)
