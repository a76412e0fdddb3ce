"""Closed-form Gaussian Schrödinger bridge / entropic OT, and Gaussian distances to score learned bridges.

Convention (the EOT benchmark's, Gushchin et al. 2023): reference dX = sigma dW on [0, 1], eps = sigma^2,
static problem  min_pi E_pi[½‖X0 − X1‖²] + eps·KL(pi ‖ p0 ⊗ p1)  between p0 = N(a, A) and p1 = N(b, B).

Sources for the formulas:
- Janati, Muzellec, Peyré, Cuturi 2020, "Entropic optimal transport between unbalanced Gaussian measures has a
  closed form" (Thm. 1, balanced case): the optimal plan and its value. Janati uses cost ‖x−y‖² and
  regulariser 2σ²KL; with σ² = eps everything here is half of theirs.
- Mallasto, Gerolin, Minh 2021, "Entropy-regularized 2-Wasserstein distance between Gaussian measures"
  (Information Geometry): the same plan, written with the cross-covariance C_eps used below.
- Bunne, Hsieh, Cuturi, Krause 2023 (AISTATS), "The Schrödinger bridge between Gaussian measures has a
  closed form": the SB marginals and the SDE dX = [(b − a) + S_tᵀ Σ_t⁻¹ (X − μ_t)] dt + sigma dW.

Everything is computed in float64 on the CPU; inputs may be torch tensors (any device), numpy arrays or lists.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cached_property

import attrs
import numpy as np
import torch
from torch import Tensor

ArrayLike = Tensor | np.ndarray | Sequence | float


def _f64(x: ArrayLike) -> Tensor:
    """float64 on the CPU: the closed forms are small dense linear algebra, best done exactly there."""
    return torch.as_tensor(x, dtype=torch.float64, device="cpu")


def sqrtm_psd(m: ArrayLike) -> Tensor:
    """Symmetric square root of a symmetric PSD matrix (batched over leading dims), via eigh.

    Tiny negative eigenvalues from round-off are clipped to 0 so the result stays real.
    """
    m = _f64(m)
    vals, vecs = torch.linalg.eigh(0.5 * (m + m.mT))
    return (vecs * vals.clamp_min(0).sqrt().unsqueeze(-2)) @ vecs.mT


def _sqrtm_and_sym_inv_sqrt(m: Tensor) -> tuple[Tensor, Tensor]:
    vals, vecs = torch.linalg.eigh(0.5 * (m + m.mT))
    root = vals.sqrt().unsqueeze(-2)
    return (vecs * root) @ vecs.mT, (vecs / root) @ vecs.mT


def entropic_cross_cov(a_cov: ArrayLike, b_cov: ArrayLike, eps: float) -> Tensor:
    """C_eps = Cov(X0, X1) of the entropic OT plan between N(·, A) and N(·, B).

    C_eps = ½ (A^{1/2} D_eps A^{-1/2} − eps I),  D_eps = (4 A^{1/2} B A^{1/2} + eps² I)^{1/2}
    (Mallasto et al. 2021; Janati et al. 2020, Thm. 1, with σ² = eps). The means do not enter.
    C_eps is in general not symmetric; its (i, j) entry is Cov(X0_i, X1_j).
    """
    a_cov, b_cov = _f64(a_cov), _f64(b_cov)
    eye = torch.eye(a_cov.shape[-1], dtype=torch.float64)
    a_half, a_inv_half = _sqrtm_and_sym_inv_sqrt(a_cov)
    d_eps = sqrtm_psd(4 * a_half @ b_cov @ a_half + eps**2 * eye)
    return 0.5 * (a_half @ d_eps @ a_inv_half - eps * eye)


def _check_spd(name: str, m: Tensor, dim: int) -> None:
    if m.shape != (dim, dim):
        raise ValueError(f"{name}: expected a ({dim}, {dim}) covariance matrix, got shape {tuple(m.shape)}")
    if not torch.allclose(m, m.mT, rtol=1e-10, atol=1e-12):
        raise ValueError(f"{name}: expected a symmetric matrix, got max asymmetry {(m - m.mT).abs().max():.3g}")
    if torch.linalg.cholesky_ex(m).info != 0:
        raise ValueError(f"{name}: expected a positive definite matrix, got one that is not")


@attrs.frozen(slots=False)
class GaussianSB:
    """The Schrödinger bridge between N(mean0, cov0) and N(mean1, cov1) for the reference dX = sigma dW.

    Its static part is the EOT plan pi* = N((a, b), [[A, C], [Cᵀ, B]]) with C = `cross_cov`; its dynamic part
    is pi* mixed with Brownian bridges, a Gaussian Markov process with linear drift (Bunne et al. 2023).
    Known exactly, so it scores any learned bridge (plan, marginals, path KL).
    """

    mean0: Tensor = attrs.field(converter=_f64)
    cov0: Tensor = attrs.field(converter=_f64)
    mean1: Tensor = attrs.field(converter=_f64)
    cov1: Tensor = attrs.field(converter=_f64)
    sigma: float = attrs.field(converter=float)

    def __attrs_post_init__(self) -> None:
        if self.mean0.ndim != 1:
            raise ValueError(f"mean0: expected a vector of shape (d,), got shape {tuple(self.mean0.shape)}")
        d = self.dim
        if self.mean1.shape != (d,):
            raise ValueError(f"mean1: expected shape ({d},) like mean0, got {tuple(self.mean1.shape)}")
        _check_spd("cov0", self.cov0, d)
        _check_spd("cov1", self.cov1, d)
        if not self.sigma > 0:
            raise ValueError(f"sigma: expected a positive number, got {self.sigma}")

    @property
    def dim(self) -> int:
        return self.mean0.shape[0]

    @property
    def eps(self) -> float:
        """Entropic regularisation eps = sigma² (variance of the reference over unit time)."""
        return self.sigma**2

    @cached_property
    def cross_cov(self) -> Tensor:
        """C = Cov(X0, X1) under the optimal plan (see `entropic_cross_cov`)."""
        return entropic_cross_cov(self.cov0, self.cov1, self.eps)

    @cached_property
    def _eye(self) -> Tensor:
        return torch.eye(self.dim, dtype=torch.float64)

    def plan_mean(self) -> Tensor:
        """Mean (a, b) of the optimal plan, shape (2d,)."""
        return torch.cat([self.mean0, self.mean1])

    def plan_cov(self) -> Tensor:
        """Covariance [[A, C], [Cᵀ, B]] of the optimal plan, shape (2d, 2d)."""
        c = self.cross_cov
        return torch.cat([torch.cat([self.cov0, c], 1), torch.cat([c.mT, self.cov1], 1)], 0)

    def sample_plan(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """n exact float64 pairs (x0, x1) ~ pi*, drawn with `generator` only."""
        z = torch.randn(n, 2 * self.dim, generator=generator, dtype=torch.float64)
        xy = self.plan_mean() + z @ torch.linalg.cholesky(self.plan_cov()).mT
        return xy[:, : self.dim], xy[:, self.dim :]

    def marginal(self, t: float | Tensor) -> tuple[Tensor, Tensor]:
        """(μ_t, Σ_t) of the SB at time t (batched over a 1-D t).

        The SB is pi* mixed with Brownian bridges N((1−t)x0 + t x1, eps t(1−t) I), hence
        μ_t = (1−t)a + t b,  Σ_t = (1−t)² A + t² B + t(1−t)(C + Cᵀ + eps I).
        """
        t = _f64(t)
        tm = t[..., None, None]
        c = self.cross_cov
        mean = (1 - t[..., None]) * self.mean0 + t[..., None] * self.mean1
        cov = (1 - tm) ** 2 * self.cov0 + tm**2 * self.cov1 + tm * (1 - tm) * (c + c.mT + self.eps * self._eye)
        return mean, cov

    def _s_transposed(self, t: Tensor) -> Tensor:
        """S_tᵀ = t(B − C) − (1−t)(A − Cᵀ) − eps t I (Bunne et al.'s S_t = P_t − Q_tᵀ − σ²tI), batched over t."""
        tm = t[..., None, None]
        c = self.cross_cov
        return tm * (self.cov1 - c) - (1 - tm) * (self.cov0 - c.mT) - self.eps * tm * self._eye

    def _affine_drift(self, x: Tensor, t: float | Tensor, backward: bool) -> Tensor:
        """offset + (x − μ_t) @ gain_t, with the time-t matrices computed once per distinct time in t."""
        x = torch.as_tensor(x)
        x64 = _f64(x)
        times, index = torch.unique(_f64(t).expand(x64.shape[0]), return_inverse=True)
        mean, cov = self.marginal(times)
        s_t = self._s_transposed(times)
        if backward:
            offset, gain = self.mean0 - self.mean1, -torch.linalg.solve(cov, s_t.mT + self.eps * self._eye)
        else:
            offset, gain = self.mean1 - self.mean0, torch.linalg.solve(cov, s_t.mT)
        out = torch.empty_like(x64)
        for k in range(len(times)):
            rows = index == k
            out[rows] = offset + (x64[rows] - mean[k]) @ gain[k]
        return out.to(device=x.device, dtype=x.dtype)

    def forward_drift(self, x: Tensor, t: float | Tensor) -> Tensor:
        """f(x, t) = (b − a) + S_tᵀ Σ_t⁻¹ (x − μ_t), the SB drift for dX = f dt + sigma dW (Bunne et al. 2023).

        x: (n, d); t: scalar or (n,). Returned on x's device in x's dtype (computed in float64 on the CPU).
        """
        return self._affine_drift(x, t, backward=False)

    def backward_drift(self, x: Tensor, t: float | Tensor) -> Tensor:
        """Drift of the time reversal, in reversed time: −f(x, t) + eps ∇log p_t(x), ∇log p_t = −Σ_t⁻¹(x − μ_t).

        A sampler moving from t = 1 to t = 0 with x <- x + drift |dt| + sigma sqrt|dt| xi lands on p0
        (Anderson 1982 time reversal). Equals −(b − a) − (S_tᵀ + eps I) Σ_t⁻¹ (x − μ_t).
        """
        return self._affine_drift(x, t, backward=True)

    def conditional(self, x0: Tensor) -> tuple[Tensor, Tensor]:
        """X1 | X0 = x0 ~ N(b + Cᵀ A⁻¹ (x0 − a), B − Cᵀ A⁻¹ C); x0 (n, d) -> means (n, d), shared cov (d, d)."""
        c = self.cross_cov
        a_inv_c = torch.linalg.solve(self.cov0, c)
        mean = self.mean1 + (_f64(x0) - self.mean0) @ a_inv_c
        cov = self.cov1 - c.mT @ a_inv_c
        return mean, 0.5 * (cov + cov.mT)

    def eot_value(self) -> float:
        """OT_eps = min_pi E[½‖X0 − X1‖²] + eps KL(pi ‖ p0 ⊗ p1), in Janati et al.'s (Thm. 1) form halved:

        ½[‖a − b‖² + Tr A + Tr B − Tr D_eps + d eps (1 − log 2eps) + eps log det(D_eps + eps I)].
        """
        eps, d = self.eps, self.dim
        a_half = sqrtm_psd(self.cov0)
        d_eps = sqrtm_psd(4 * a_half @ self.cov1 @ a_half + eps**2 * self._eye)
        value = (
            (self.mean0 - self.mean1).square().sum()
            + self.cov0.trace()
            + self.cov1.trace()
            - d_eps.trace()
            + d * eps * (1 - math.log(2 * eps))
            + eps * torch.logdet(d_eps + eps * self._eye)
        )
        return 0.5 * value.item()

    def path_kl(self) -> float:
        """KL(T* ‖ W^eps_{p0}) between the SB path measure and the reference started at p0.

        Both share their bridges, so this is the static KL(pi* ‖ p0(x) N(y; x, eps I))
        = OT_eps / eps − H(p1) + (d/2) log(2π eps), with H(p1) = ½ log det(2πe B).
        """
        d = self.dim
        entropy1 = 0.5 * (d * math.log(2 * math.pi * math.e) + torch.logdet(self.cov1).item())
        return self.eot_value() / self.eps - entropy1 + 0.5 * d * math.log(2 * math.pi * self.eps)


def fit_gaussian(samples: ArrayLike, diagonal: bool = False) -> tuple[Tensor, Tensor]:
    """Mean and unbiased covariance of samples (..., n, d); `diagonal` keeps only per-dimension variances."""
    x = _f64(samples)
    if x.ndim < 2 or x.shape[-2] < 2:
        raise ValueError(f"samples: expected shape (..., n, d) with n >= 2, got {tuple(x.shape)}")
    mean = x.mean(-2)
    xc = x - mean.unsqueeze(-2)
    if diagonal:
        return mean, torch.diag_embed(xc.square().sum(-2) / (x.shape[-2] - 1))
    return mean, xc.mT @ xc / (x.shape[-2] - 1)


def kl_gaussian(m1: ArrayLike, s1: ArrayLike, m2: ArrayLike, s2: ArrayLike) -> Tensor:
    """KL(N(m1, S1) ‖ N(m2, S2)) = ½[Tr(S2⁻¹S1) + (m2−m1)ᵀS2⁻¹(m2−m1) − d + log det S2 − log det S1].

    Batched over leading dims; computed with Cholesky factors for stability.
    """
    m1, s1, m2, s2 = map(_f64, (m1, s1, m2, s2))
    l1, l2 = torch.linalg.cholesky(s1), torch.linalg.cholesky(s2)
    trace = torch.linalg.solve_triangular(l2, l1, upper=False).square().sum((-2, -1))
    maha = torch.linalg.solve_triangular(l2, (m2 - m1).unsqueeze(-1), upper=False).square().sum((-2, -1))
    logdet = 2 * (l2.diagonal(dim1=-2, dim2=-1).log().sum(-1) - l1.diagonal(dim1=-2, dim2=-1).log().sum(-1))
    return 0.5 * (trace + maha - m1.shape[-1] + logdet)


def bw2(m1: ArrayLike, s1: ArrayLike, m2: ArrayLike, s2: ArrayLike) -> Tensor:
    """Bures–Wasserstein distance squared, W2² between N(m1, S1) and N(m2, S2) (batched):

    ‖m1 − m2‖² + Tr S1 + Tr S2 − 2 Tr (S1^{1/2} S2 S1^{1/2})^{1/2}.
    """
    m1, s1, m2, s2 = map(_f64, (m1, s1, m2, s2))
    s1_half = sqrtm_psd(s1)
    cross = torch.linalg.eigvalsh(s1_half @ s2 @ s1_half).clamp_min(0).sqrt().sum(-1)
    bures = s1.diagonal(dim1=-2, dim2=-1).sum(-1) + s2.diagonal(dim1=-2, dim2=-1).sum(-1) - 2 * cross
    return (m1 - m2).square().sum(-1) + bures.clamp_min(0)


def _as_moments(estimate: ArrayLike | tuple[ArrayLike, ArrayLike]) -> tuple[Tensor, Tensor]:
    if isinstance(estimate, tuple):
        return _f64(estimate[0]), _f64(estimate[1])
    return fit_gaussian(estimate)


def bw2_uvp(estimate: ArrayLike | tuple[ArrayLike, ArrayLike], mean: ArrayLike, cov: ArrayLike) -> float:
    """BW2²-UVP = 100 · BW2²(p̂, p) / Tr Σ in percent (Gushchin et al. 2023, benchmark metric).

    estimate: samples (n, d) of p̂ (a Gaussian is fitted) or its moments (mean, cov); p = N(mean, cov).
    """
    m_hat, s_hat = _as_moments(estimate)
    cov = _f64(cov)
    return 100.0 * (bw2(m_hat, s_hat, mean, cov) / cov.trace()).item()


def cbw2_uvp(x0: ArrayLike, samples: ArrayLike, sb: GaussianSB) -> float:
    """Conditional BW2²-UVP of a learned plan (Gushchin et al. 2023, benchmark metric), in percent:

    100 / Tr(cov1) · mean_i BW2²(N(fit of samples[i]), law of X1 | X0 = x0[i] under `sb`).
    x0: (n, d) conditioning inputs; samples: (n, k, d), k model draws of X1 given each x0[i].
    """
    x0, samples = _f64(x0), _f64(samples)
    if samples.ndim != 3 or samples.shape[0] != x0.shape[0] or samples.shape[2] != x0.shape[1]:
        raise ValueError(
            f"samples: expected shape ({x0.shape[0]}, k, {x0.shape[1]}) matching x0 {tuple(x0.shape)}, "
            f"got {tuple(samples.shape)}"
        )
    m_hat, s_hat = fit_gaussian(samples)
    m_true, s_true = sb.conditional(x0)
    return 100.0 * (bw2(m_hat, s_hat, m_true, s_true).mean() / sb.cov1.trace()).item()


def marginal_kl_slices(path: ArrayLike, sb: GaussianSB, times: ArrayLike, diagonal: bool = False) -> Tensor:
    """KL(N̂_t ‖ SB_t) at each slice of a sampled path (DSBM's Gaussian metric, Shi et al. 2023, Table 3).

    path: (T, n, d) states, e.g. `Trajectory.path`; times: (T,) the time of each slice. N̂_t is the Gaussian
    fitted to the slice. With `diagonal`, both N̂_t and the SB marginal keep only their per-dimension
    variances, i.e. the sum over dimensions of 1-D KLs (the reading that matches DSBM's published values).
    Even exact samples give about k / (2n) (k fitted parameters), see `kl_fit_floor`.
    """
    path, times = _f64(path), _f64(times)
    if path.ndim != 3 or times.shape != (path.shape[0],):
        raise ValueError(
            f"path/times: expected path (T, n, d) and times (T,), got {tuple(path.shape)} and {tuple(times.shape)}"
        )
    m_hat, s_hat = fit_gaussian(path, diagonal=diagonal)
    mean, cov = sb.marginal(times)
    if diagonal:
        cov = torch.diag_embed(cov.diagonal(dim1=-2, dim2=-1))
    return kl_gaussian(m_hat, s_hat, mean, cov)


def kl_fit_floor(dim: int, n: int, diagonal: bool = False) -> float:
    """Expected KL(fitted ‖ true) for n exact samples, ≈ k / (2n) with k the fitted parameters (Wilks).

    k = 2d for a diagonal fit and d + d(d+1)/2 for a full one; report it next to `marginal_kl_slices`.
    """
    k = 2 * dim if diagonal else dim + dim * (dim + 1) // 2
    return k / (2 * n)
