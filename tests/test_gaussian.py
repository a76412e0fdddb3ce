"""Closed-form Gaussian SB / EOT and Gaussian distances, checked in float64.

Each check uses a computation independent of the code under test: a defining property of the optimum
(precision block, first-order optimality, Lyapunov equation), a textbook special case, another library
(numpy/scipy/POT) or a Monte-Carlo estimate with a tolerance derived from its standard error.
"""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import scipy.linalg
import scipy.stats
import torch

from sbcore.data.gaussian import GaussianSource, random_spd
from sbcore.metrics.gaussian import (
    GaussianSB,
    bw2,
    bw2_uvp,
    cbw2_uvp,
    entropic_cross_cov,
    fit_gaussian,
    kl_fit_floor,
    kl_gaussian,
    marginal_kl_slices,
    sqrtm_psd,
)
from sbcore.process.brownian import BrownianBridge
from sbcore.sampler.base import drift_model
from sbcore.sampler.integrators import EulerMaruyama

F64 = torch.float64


def _random_sb(d: int, sigma: float, seed: int) -> GaussianSB:
    rng = np.random.default_rng(seed)

    def spd() -> np.ndarray:
        x = rng.standard_normal((d, d))
        return x @ x.T / d + 0.3 * np.eye(d)

    return GaussianSB(rng.standard_normal(d), spd(), rng.standard_normal(d), spd(), sigma)


def _np_kl(m1, s1, m2, s2) -> float:
    """Textbook KL(N1 || N2) with explicit inverses and slogdet."""
    s2_inv = np.linalg.inv(s2)
    dm = m2 - m1
    return 0.5 * (
        np.trace(s2_inv @ s1) + dm @ s2_inv @ dm - len(m1) + np.linalg.slogdet(s2)[1] - np.linalg.slogdet(s1)[1]
    )


def _eot_objective(sb: GaussianSB, c: np.ndarray) -> float:
    """E[½‖X0 − X1‖²] + eps·KL(pi ‖ p0⊗p1) for the Gaussian plan with cross-covariance c (direct formula)."""
    a, b = sb.mean0.numpy(), sb.mean1.numpy()
    cov_a, cov_b = sb.cov0.numpy(), sb.cov1.numpy()
    joint = np.block([[cov_a, c], [c.T, cov_b]])
    transport = 0.5 * (np.sum((a - b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(c))
    mutual_info = 0.5 * (np.linalg.slogdet(cov_a)[1] + np.linalg.slogdet(cov_b)[1] - np.linalg.slogdet(joint)[1])
    return transport + sb.eps * mutual_info


def _linear_drift(drift, sb: GaussianSB, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Read (offset at μ_t, matrix M) off a drift that is affine in x, by probing it at μ_t and μ_t + e_j."""
    mean, _ = sb.marginal(t)
    probes = torch.cat([mean[None], mean + torch.eye(sb.dim, dtype=F64)])
    f = drift(probes, torch.full((sb.dim + 1,), t, dtype=F64))
    return f[0], (f[1:] - f[0]).T


# ---------------------------------------------------------------- closed form of the plan


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
def test_isotropic_cross_cov_is_root_of_quadratic(sigma):
    """A = B = I: C = cI with c the positive root of c² + σ²c − 1 = 0 (DSBM's Gaussian benchmark)."""
    eye = torch.eye(5, dtype=F64)
    c = entropic_cross_cov(eye, eye, sigma**2)
    root = 0.5 * (math.sqrt(sigma**4 + 4) - sigma**2)
    torch.testing.assert_close(c, root * eye, rtol=0, atol=1e-12)
    assert root**2 + sigma**2 * root - 1 == pytest.approx(0, abs=1e-12)


def test_isotropic_reference_numbers():
    sb = GaussianSB(-0.1 * torch.ones(5), torch.eye(5), 0.1 * torch.ones(5), torch.eye(5), 1.0)
    assert sb.cross_cov[0, 0].item() == pytest.approx((math.sqrt(5) - 1) / 2, abs=1e-12)
    assert sb.cross_cov[0, 0].item() == pytest.approx(0.6180, abs=5e-5)
    mean, cov = sb.marginal(0.5)
    torch.testing.assert_close(mean, torch.zeros(5, dtype=F64))
    assert cov[0, 0].item() == pytest.approx(1.059, abs=5e-4)  # (1/4 + 1/4 + c/2 + 1/4)


@pytest.mark.parametrize(("s", "eps"), [(0.5, 0.1), (1.0, 1.0), (2.0, 10.0)])
def test_scaled_identity_cross_cov(s, eps):
    """A = B = s²I: C = ½(√(4s⁴ + ε²) − ε) I."""
    cov = s**2 * torch.eye(3, dtype=F64)
    expected = 0.5 * (math.sqrt(4 * s**4 + eps**2) - eps)
    torch.testing.assert_close(entropic_cross_cov(cov, cov, eps), expected * torch.eye(3, dtype=F64))


@pytest.mark.parametrize("eps", [0.1, 1.0, 10.0])
def test_plan_precision_off_diagonal_is_minus_identity_over_eps(eps):
    """pi*(x, y) ∝ exp(f(x) + g(y) − ‖x − y‖²/(2ε)): the x–y block of the precision is −I/ε."""
    sb = _random_sb(4, math.sqrt(eps), seed=1)
    precision = np.linalg.inv(sb.plan_cov().numpy())
    np.testing.assert_allclose(precision[:4, 4:], -np.eye(4) / eps, atol=1e-8 / eps)
    np.testing.assert_allclose(precision[4:, :4], -np.eye(4) / eps, atol=1e-8 / eps)
    np.testing.assert_allclose(sb.plan_mean().numpy(), np.concatenate([sb.mean0, sb.mean1]))


def test_conditional_matches_gaussian_conditioning_from_precision():
    sb = _random_sb(3, 0.8, seed=2)
    precision = np.linalg.inv(sb.plan_cov().numpy())
    p11, p10 = precision[3:, 3:], precision[3:, :3]
    x0 = np.random.default_rng(0).standard_normal((6, 3))
    mean, cov = sb.conditional(torch.as_tensor(x0))
    expected_mean = sb.mean1.numpy() - (x0 - sb.mean0.numpy()) @ (np.linalg.solve(p11, p10)).T
    np.testing.assert_allclose(mean.numpy(), expected_mean, atol=1e-10)
    np.testing.assert_allclose(cov.numpy(), np.linalg.inv(p11), atol=1e-10)


@pytest.mark.parametrize("eps", [0.1, 1.0, 10.0])
def test_eot_value_direct_formula_equals_janati_form(eps):
    sb = _random_sb(4, math.sqrt(eps), seed=3)
    assert sb.eot_value() == pytest.approx(_eot_objective(sb, sb.cross_cov.numpy()), rel=1e-10, abs=1e-10)


def test_eot_value_isotropic_janati_scalar():
    """d = 1, A = α, B = β, a − b = δ: ½[δ² + α + β − D + ε(1 − log 2ε) + ε log(D + ε)], D = √(4αβ + ε²)."""
    alpha, beta, delta, eps = 0.7, 2.3, 1.5, 0.4
    sb = GaussianSB([0.0], [[alpha]], [delta], [[beta]], math.sqrt(eps))
    big_d = math.sqrt(4 * alpha * beta + eps**2)
    expected = 0.5 * (delta**2 + alpha + beta - big_d + eps * (1 - math.log(2 * eps)) + eps * math.log(big_d + eps))
    assert sb.eot_value() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("eps", [0.1, 1.0, 10.0])
def test_perturbing_cross_cov_increases_eot_objective(eps):
    """C_ε is a stationary minimum: any small perturbation raises the objective, quadratically in its size."""
    sb = _random_sb(3, math.sqrt(eps), seed=4)
    c = sb.cross_cov.numpy()
    best = _eot_objective(sb, c)
    rng = np.random.default_rng(0)
    for _ in range(10):
        direction = rng.standard_normal((3, 3))
        direction /= np.linalg.norm(direction)
        small = _eot_objective(sb, c + 1e-3 * direction) - best
        large = _eot_objective(sb, c + 2e-3 * direction) - best
        assert small > 0 and large > 0
        assert large / small == pytest.approx(4.0, rel=0.05)


def test_path_kl_equals_static_kl_to_reference_plan():
    """KL(T* || W_p0) = KL(N((a,b), Σπ) || N((a,a), [[A, A], [A, A + εI]]))."""
    sb = _random_sb(3, 0.9, seed=5)
    a, cov_a = sb.mean0.numpy(), sb.cov0.numpy()
    ref_cov = np.block([[cov_a, cov_a], [cov_a, cov_a + sb.eps * np.eye(3)]])
    expected = _np_kl(sb.plan_mean().numpy(), sb.plan_cov().numpy(), np.concatenate([a, a]), ref_cov)
    assert sb.path_kl() == pytest.approx(expected, rel=1e-9)


def test_path_kl_is_zero_when_target_is_the_reference_marginal():
    """p1 = N(a, A + εI) is what the reference carries p0 to, so the SB is the reference itself."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 4))
    cov_a, mean = x @ x.T + 0.5 * np.eye(4), rng.standard_normal(4)
    sb = GaussianSB(mean, cov_a, mean, cov_a + 0.49 * np.eye(4), 0.7)
    assert sb.path_kl() == pytest.approx(0.0, abs=1e-10)
    torch.testing.assert_close(sb.cross_cov, torch.as_tensor(cov_a))  # X1 = X0 + sqrt(eps) W1


# ---------------------------------------------------------------- dynamics


@pytest.mark.parametrize(("sigma", "t"), [(0.5, 0.2), (1.0, 0.5), (3.0, 0.9)])
def test_forward_drift_solves_moment_equations(sigma, t):
    """For dX = (m + M_t(X − μ_t))dt + σdW the moments obey dμ/dt = m, dΣ/dt = MΣ + ΣMᵀ + εI and
    d Cov(X0, X_t)/dt = Cov(X0, X_t) Mᵀ, where the SB has Cov(X0, X_t) = (1 − t)A + tC."""
    sb = _random_sb(3, sigma, seed=7)
    offset, m = _linear_drift(sb.forward_drift, sb, t)
    h = 1e-5
    d_cov = (sb.marginal(t + h)[1] - sb.marginal(t - h)[1]) / (2 * h)
    _, cov = sb.marginal(t)
    torch.testing.assert_close(offset, sb.mean1 - sb.mean0)
    torch.testing.assert_close(d_cov, m @ cov + cov @ m.T + sb.eps * torch.eye(3, dtype=F64), rtol=1e-7, atol=1e-7)
    cross = (1 - t) * sb.cov0 + t * sb.cross_cov
    torch.testing.assert_close(cross @ m.T, sb.cross_cov - sb.cov0, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("t", [0.0, 0.3, 1.0])
def test_backward_drift_is_forward_drift_of_the_swapped_bridge(t):
    """The SB from p1 to p0 run in time s = 1 − t is the time reversal of the SB from p0 to p1."""
    sb = _random_sb(3, 1.3, seed=8)
    swapped = GaussianSB(sb.mean1, sb.cov1, sb.mean0, sb.cov0, sb.sigma)
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    torch.testing.assert_close(sb.backward_drift(x, t), swapped.forward_drift(x, 1 - t), rtol=1e-9, atol=1e-9)


def test_backward_drift_solves_reversed_lyapunov_equation():
    """In reversed time s the marginals run backwards: −dΣ_t/dt = M_b Σ + Σ M_bᵀ + εI."""
    sb, t, h = _random_sb(3, 0.8, seed=9), 0.4, 1e-5
    offset, m = _linear_drift(sb.backward_drift, sb, t)
    d_cov = -(sb.marginal(t + h)[1] - sb.marginal(t - h)[1]) / (2 * h)
    _, cov = sb.marginal(t)
    torch.testing.assert_close(offset, sb.mean0 - sb.mean1)
    torch.testing.assert_close(d_cov, m @ cov + cov @ m.T + sb.eps * torch.eye(3, dtype=F64), rtol=1e-7, atol=1e-7)


def test_drift_accepts_per_sample_times_and_keeps_dtype():
    sb = _random_sb(2, 1.0, seed=10)
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0.1, 0.9, 0.1, 0.5, 0.9])
    batched = sb.forward_drift(x, t)
    assert batched.dtype == torch.float32 and batched.shape == (5, 2)
    for i in range(5):
        torch.testing.assert_close(batched[i], sb.forward_drift(x[i : i + 1], float(t[i]))[0])


@pytest.mark.parametrize("steps", [50, 100])
def test_euler_moment_recursion_is_first_order(steps):
    """The EM chain of an affine drift is Gaussian; propagate its moments exactly. The mean and Cov(X0, X1)
    land exactly (their ODEs have constant right-hand sides), Cov(X1) with an O(dt) error."""
    sb, d = _random_sb(2, 1.0, seed=11), 2
    dt = 1.0 / steps
    mean, cov, cross = sb.mean0, sb.cov0, sb.cov0
    for k in range(steps):
        offset, m = _linear_drift(sb.forward_drift, sb, k * dt)
        step = torch.eye(d, dtype=F64) + dt * m
        mean = mean + dt * (offset + m @ (mean - sb.marginal(k * dt)[0]))
        cov, cross = step @ cov @ step.T + sb.eps * dt * torch.eye(d, dtype=F64), cross @ step.T
    torch.testing.assert_close(mean, sb.mean1)
    torch.testing.assert_close(cross, sb.cross_cov)
    err = (cov - sb.cov1).abs().max().item()
    assert 0.1 * dt < err < 3 * dt


def _mc_tol(samples: torch.Tensor) -> torch.Tensor:
    return 4 * samples.std(0) / math.sqrt(samples.shape[0])


def test_euler_maruyama_with_exact_drift_reproduces_the_bridge():
    """Forward from p0 lands on p1 with Cov(X0, X1) = C; backward from p1 returns to p0 with Cov(X0, X1) = C.

    Tolerance: 4 Monte-Carlo standard errors (+ 1/steps for covariances, the O(dt) Euler bias that the
    moment recursion above measures at about 0.8·dt).
    """
    # EulerMaruyama draws its noise from the global generator; seed it differently from the data generator,
    # or the first noise increment would repeat the standard normals behind x0.
    torch.manual_seed(1234)
    p0 = GaussianSource(dim=2, mean=[1.0, -1.0], spd_seed=0)
    p1 = GaussianSource(dim=2, mean=[-0.5, 2.0], spd_seed=1)
    sb = GaussianSB(p0.mean, p0.cov, p1.mean, p1.cov, sigma=1.0)
    process, steps, n = BrownianBridge(sb.sigma), 100, 40_000
    gen = torch.Generator().manual_seed(0)
    sampler = EulerMaruyama(steps=steps)

    x0 = p0.sample(n, gen).double()
    x1 = sampler.sample(drift_model(sb.forward_drift, process), x0, sampler.time_grid(process, "forward", dtype=F64)).x
    y1 = p1.sample(n, gen).double()
    y0 = sampler.sample(drift_model(sb.backward_drift, process, "backward"), y1,
                        sampler.time_grid(process, "backward", dtype=F64)).x

    for end, mean_end, cov_end in [(x1, sb.mean1, sb.cov1), (y0, sb.mean0, sb.cov0)]:
        end_c = end - end.mean(0)
        assert ((end.mean(0) - mean_end).abs() < _mc_tol(end)).all()
        products = end_c[:, :, None] * end_c[:, None, :]
        assert ((products.mean(0) - cov_end).abs() < _mc_tol(products.flatten(1)).view(2, 2) + 1 / steps).all()
    for x_0, x_1 in [(x0, x1), (y0, y1)]:
        products = (x_0 - x_0.mean(0))[:, :, None] * (x_1 - x_1.mean(0))[:, None, :]
        assert ((products.mean(0) - sb.cross_cov).abs() < _mc_tol(products.flatten(1)).view(2, 2) + 1 / steps).all()


def test_brownian_bridge_sample_matches_its_law():
    """x_t | x0, x1 ~ N((1 − t)x0 + t x1, σ² t(1 − t) I), checked with per-sample times."""
    torch.manual_seed(1)
    sigma, n = 0.7, 50_000
    process = BrownianBridge(sigma)
    x0 = torch.tensor([[1.0, -2.0]], dtype=F64).expand(n, 2)
    x1 = torch.tensor([[3.0, 0.5]], dtype=F64).expand(n, 2)
    for t_value in [0.25, 0.6]:
        t = torch.full((n,), t_value, dtype=F64)
        xt = process.sample_bridge(x0, x1, t)
        mean = (1 - t_value) * x0[0] + t_value * x1[0]
        var = sigma**2 * t_value * (1 - t_value)
        assert ((xt.mean(0) - mean).abs() < 4 * math.sqrt(var / n)).all()
        assert ((xt.var(0) - var).abs() < 4 * var * math.sqrt(2 / (n - 1))).all()


# ---------------------------------------------------------------- generic Gaussian distances


def test_sqrtm_psd_matches_scipy():
    x = np.random.default_rng(0).standard_normal((4, 4))
    m = x @ x.T
    root = sqrtm_psd(m)
    np.testing.assert_allclose(root.numpy(), scipy.linalg.sqrtm(m).real, atol=1e-10)
    np.testing.assert_allclose(root.numpy(), root.numpy().T)


def test_kl_gaussian_one_dimensional_closed_form():
    m1, s1, m2, s2 = 0.3, 0.5, -1.0, 2.0
    expected = math.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5
    assert kl_gaussian([m1], [[s1**2]], [m2], [[s2**2]]).item() == pytest.approx(expected, rel=1e-12)


def test_kl_gaussian_matches_monte_carlo_and_is_zero_for_identical():
    sb = _random_sb(3, 1.0, seed=12)
    m1, s1, m2, s2 = sb.mean0.numpy(), sb.cov0.numpy(), sb.mean1.numpy(), sb.cov1.numpy()
    x = scipy.stats.multivariate_normal(m1, s1).rvs(200_000, random_state=0)
    log_ratio = scipy.stats.multivariate_normal(m1, s1).logpdf(x) - scipy.stats.multivariate_normal(m2, s2).logpdf(x)
    kl = kl_gaussian(m1, s1, m2, s2).item()
    assert abs(kl - log_ratio.mean()) < 4 * log_ratio.std() / math.sqrt(len(x))
    assert kl == pytest.approx(_np_kl(m1, s1, m2, s2), rel=1e-10)
    assert kl_gaussian(m1, s1, m1, s1).item() == pytest.approx(0.0, abs=1e-12)


def test_bw2_special_cases_and_pot():
    # 1-D: (m1 − m2)² + (s1 − s2)²
    assert bw2([0.3], [[0.25]], [-1.0], [[4.0]]).item() == pytest.approx(1.3**2 + 1.5**2, rel=1e-12)
    # commuting covariances: ‖m1 − m2‖² + ‖√diag1 − √diag2‖²
    d1, d2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    assert bw2(np.zeros(3), np.diag(d1), np.ones(3), np.diag(d2)).item() == pytest.approx(
        3 + np.sum((np.sqrt(d1) - np.sqrt(d2)) ** 2), rel=1e-12
    )
    sb = _random_sb(4, 1.0, seed=13)
    args = (sb.mean0.numpy(), sb.mean1.numpy(), sb.cov0.numpy(), sb.cov1.numpy())
    expected = ot.gaussian.bures_wasserstein_distance(*args) ** 2
    assert bw2(sb.mean0, sb.cov0, sb.mean1, sb.cov1).item() == pytest.approx(expected, rel=1e-9)
    assert bw2(sb.mean1, sb.cov1, sb.mean0, sb.cov0).item() == pytest.approx(expected, rel=1e-9)
    assert bw2(sb.mean0, sb.cov0, sb.mean0, sb.cov0).item() == pytest.approx(0.0, abs=1e-10)


def test_fit_gaussian_full_and_diagonal():
    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    mean, cov = fit_gaussian(x)
    np.testing.assert_allclose(cov.numpy(), np.cov(x.numpy(), rowvar=False), atol=1e-12)
    np.testing.assert_allclose(mean.numpy(), x.numpy().mean(0))
    _, diag = fit_gaussian(x, diagonal=True)
    np.testing.assert_allclose(diag.numpy(), np.diag(np.var(x.numpy(), axis=0, ddof=1)), atol=1e-12)
    with pytest.raises(ValueError, match=r"samples: expected shape \(\.\.\., n, d\) with n >= 2, got \(1, 3\)"):
        fit_gaussian(x[:1])


def _exact_moment_samples(mean: torch.Tensor, cov: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """k points whose sample mean and unbiased sample covariance are exactly (mean, cov)."""
    z = torch.randn(k, mean.shape[-1], generator=torch.Generator().manual_seed(seed), dtype=F64)
    z = z - z.mean(0)
    z = z @ torch.linalg.inv(torch.linalg.cholesky(z.T @ z / (k - 1))).T
    return mean.unsqueeze(-2) + z @ torch.linalg.cholesky(cov).T


def test_bw2_uvp_samples_and_moments():
    sb = _random_sb(3, 1.0, seed=14)
    shift = torch.tensor([0.3, -0.1, 0.2], dtype=F64)
    expected = 100 * shift.square().sum().item() / sb.cov1.trace().item()
    samples = _exact_moment_samples(sb.mean1 + shift, sb.cov1, 50, seed=0)
    assert bw2_uvp(samples, sb.mean1, sb.cov1) == pytest.approx(expected, rel=1e-9)
    assert bw2_uvp((sb.mean1 + shift, sb.cov1), sb.mean1, sb.cov1) == pytest.approx(expected, rel=1e-9)


def test_cbw2_uvp_exact_shifted_and_overdispersed_conditionals():
    sb = _random_sb(2, 0.8, seed=15)
    x0 = torch.randn(8, 2, generator=torch.Generator().manual_seed(2), dtype=F64)
    cond_mean, cond_cov = sb.conditional(x0)
    exact = torch.stack([_exact_moment_samples(m, cond_cov, 40, seed=i) for i, m in enumerate(cond_mean)])
    assert cbw2_uvp(x0, exact, sb) == pytest.approx(0.0, abs=1e-9)
    shift = torch.tensor([0.5, -0.25], dtype=F64)
    expected_shift = 100 * shift.square().sum() / sb.cov1.trace()
    assert cbw2_uvp(x0, exact + shift, sb) == pytest.approx(expected_shift.item(), rel=1e-9)
    # doubling the spread around the mean: BW2 = Tr S + 4 Tr S − 2·2 Tr S = Tr S
    wide = cond_mean[:, None] + 2 * (exact - cond_mean[:, None])
    assert cbw2_uvp(x0, wide, sb) == pytest.approx((100 * cond_cov.trace() / sb.cov1.trace()).item(), rel=1e-9)
    with pytest.raises(ValueError, match=r"samples: expected shape \(8, k, 2\) matching x0 \(8, 2\), got \(8, 2\)"):
        cbw2_uvp(x0, exact[:, 0], sb)


def test_marginal_kl_slices_exact_moments_and_shift():
    """Zero for samples with the SB's exact moments; a mean shift δ adds ½δᵀΣ_t⁻¹δ (full) or
    ½Σ_i δ_i²/Σ_t,ii (diagonal)."""
    sb = GaussianSB([0.0, 1.0], random_spd(2, 0), [2.0, -1.0], random_spd(2, 1), 1.0)
    times = torch.linspace(0, 1, 5, dtype=F64)
    means, covs = sb.marginal(times)
    path = torch.stack([_exact_moment_samples(m, c, 30, seed=0) for m, c in zip(means, covs, strict=True)])
    for diagonal in (False, True):
        torch.testing.assert_close(marginal_kl_slices(path, sb, times, diagonal), torch.zeros(5, dtype=F64))
    delta = torch.tensor([0.2, -0.3], dtype=F64)
    full = marginal_kl_slices(path + delta, sb, times)
    diag = marginal_kl_slices(path + delta, sb, times, diagonal=True)
    for i, cov in enumerate(covs):
        assert full[i].item() == pytest.approx(0.5 * (delta @ torch.linalg.solve(cov, delta)).item(), rel=1e-9)
        assert diag[i].item() == pytest.approx(0.5 * (delta.square() / cov.diagonal()).sum().item(), rel=1e-9)
    with pytest.raises(ValueError, match=r"expected path \(T, n, d\) and times \(T,\), got \(5, 30, 2\) and \(4,\)"):
        marginal_kl_slices(path, sb, times[:4])


def test_marginal_kl_slices_on_exact_bridge_samples_sits_at_the_fit_floor():
    """21 slices of exact SB samples (plan + Brownian bridge): mean KL ≈ k/(2n), far below a wrong bridge's."""
    torch.manual_seed(3)
    sb = GaussianSB(-0.1 * torch.ones(3), torch.eye(3), 0.1 * torch.ones(3), torch.eye(3), 1.0)
    n, times = 4000, torch.linspace(0, 1, 21, dtype=F64)
    x0, x1 = sb.sample_plan(n, torch.Generator().manual_seed(0))
    process = BrownianBridge(sb.sigma)
    path = torch.stack([process.sample_bridge(x0, x1, t.expand(n)) for t in times])
    wrong = torch.stack([process.sample_bridge(x0, x1[torch.randperm(n)], t.expand(n)) for t in times])
    for diagonal in (False, True):
        floor = kl_fit_floor(3, n, diagonal)
        kl = marginal_kl_slices(path, sb, times, diagonal).mean().item()
        assert 0.3 * floor < kl < 2.5 * floor
        assert marginal_kl_slices(wrong, sb, times, diagonal).mean().item() > 10 * floor


def test_sample_plan_moments():
    sb = _random_sb(2, 1.0, seed=16)
    x0, x1 = sb.sample_plan(50_000, torch.Generator().manual_seed(0))
    joint = torch.cat([x0, x1], 1)
    centred = joint - joint.mean(0)
    products = (centred[:, :, None] * centred[:, None, :]).flatten(1)
    assert ((joint.mean(0) - sb.plan_mean()).abs() < _mc_tol(joint)).all()
    assert ((products.mean(0) - sb.plan_cov().flatten()).abs() < _mc_tol(products)).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mean0": [[0.0]]}, r"mean0: expected a vector of shape \(d,\), got shape \(1, 1\)"),
        ({"mean1": [0.0, 0.0, 0.0]}, r"mean1: expected shape \(2,\) like mean0, got \(3,\)"),
        ({"cov0": np.eye(3)}, r"cov0: expected a \(2, 2\) covariance matrix, got shape \(3, 3\)"),
        ({"cov1": [[1.0, 0.5], [0.0, 1.0]]}, "cov1: expected a symmetric matrix"),
        ({"cov1": [[1.0, 2.0], [2.0, 1.0]]}, "cov1: expected a positive definite matrix"),
        ({"sigma": 0.0}, "sigma: expected a positive number, got 0.0"),
    ],
)
def test_gaussian_sb_validation(kwargs, message):
    args = {"mean0": [0.0, 0.0], "cov0": np.eye(2), "mean1": [1.0, 1.0], "cov1": np.eye(2), "sigma": 1.0} | kwargs
    with pytest.raises(ValueError, match=message):
        GaussianSB(**args)
