"""The spectral (DCT-basis OU) reference against closed forms: DBFS spec checks U1-U7 and U9.

U8 (one network at several resolutions) is a network test and lives with the network (sb-dbfs).
"""

from __future__ import annotations

import math

import pytest
import scipy.fft
import torch
from torch import Tensor

from sbcore.process.brownian import BrownianBridge
from sbcore.process.spectral import SpectralProcess, dct, idct
from sbcore.sampler.base import Predictor
from sbcore.sampler.exponential import ExponentialIntegrator
from sbcore.sampler.integrators import EulerMaruyama

DT = torch.float64


def oracle(end: Tensor, process: SpectralProcess, direction: str = "forward") -> Predictor:
    """A 'network' that knows the end: the reference bridge itself as a learned SDE."""
    return Predictor(lambda x, t: end.expand_as(x), process, direction, "endpoint")


def mode_variance(x: Tensor, dims: int) -> Tensor:
    return dct(x, dims).var(0).squeeze(0)


# ---- U1, U2: the basis and the spectrum ----------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 32), (2, 16, 24)], ids=["1d", "2d-rect"])
def test_dct_matches_scipy_and_round_trips(shape: tuple[int, ...]) -> None:
    dims = len(shape) - 1
    x = torch.randn(4, *shape)
    axes = tuple(range(-dims, 0))
    expected = torch.from_numpy(scipy.fft.dctn(x.numpy(), type=2, norm="ortho", axes=axes))
    assert (dct(x, dims) - expected).abs().max() < 1e-5
    assert (idct(dct(x, dims), dims) - x).abs().max() < 1e-5


def test_pixel_spectrum_matches_the_reference_code_at_32() -> None:
    process = SpectralProcess(dims=2)
    a, s = process.eigenvalues((32, 32)), process.noise_scale((32, 32))
    assert a.max().item() == pytest.approx(1 + 2 * math.pi**2 * (31 / 32) ** 2, abs=1e-3)
    assert a.max().item() == pytest.approx(19.525, abs=1e-3)
    lam = s.square()
    assert lam.min().item() == pytest.approx(0.9423, abs=1e-4)
    assert lam.mean().item() == pytest.approx(0.9649, abs=1e-3)


def test_physical_spectrum_equals_pixel_at_the_reference_size_and_keeps_its_law_across_grids() -> None:
    pixel, physical = SpectralProcess(dims=1), SpectralProcess(dims=1, spectrum="physical", reference_size=32)
    assert torch.allclose(pixel.noise_scale((32,)), physical.noise_scale((32,)))
    assert torch.allclose(pixel.eigenvalues((32,)), physical.eigenvalues((32,)))
    # resolution-normalised coefficients X_k / sqrt(N) of the first modes: one law at every N
    first = [physical.noise_scale((n,))[:12] / math.sqrt(n) for n in (32, 64, 128, 256)]
    assert all(torch.allclose(first[0], f) for f in first[1:])
    assert all(torch.allclose(physical.eigenvalues((32,))[:12], physical.eigenvalues((n,))[:12]) for n in (64, 256))
    torch.manual_seed(0)
    coef = [dct(physical.noise_like(torch.zeros(4000, 1, n)), 1)[..., :4] / math.sqrt(n) for n in (32, 128)]
    assert torch.allclose(coef[0].std((0, 1)), coef[1].std((0, 1)), rtol=0.06)


def test_trace_class_noise_has_a_per_pixel_variance_that_converges_with_the_grid() -> None:
    process = SpectralProcess(dims=1, spectrum="physical", reference_size=32, q_exponent=1.0)
    per_pixel = [process.noise_scale((n,)).square().mean().item() for n in (64, 256, 1024)]
    assert per_pixel[2] == pytest.approx(per_pixel[1], rel=0.02)
    assert abs(per_pixel[2] - per_pixel[1]) < abs(per_pixel[1] - per_pixel[0])


def test_pixel_noise_is_white_per_pixel_at_every_grid() -> None:
    process = SpectralProcess(dims=2)
    for n in (16, 64, 128):
        assert process.noise_scale((n, n)).square().mean().item() == pytest.approx(0.965, abs=2e-3)


# ---- U3, U4: the bridge marginal ------------------------------------------------------------------


def test_bridge_coefficients_at_the_ends_and_in_the_brownian_limit() -> None:
    process = SpectralProcess(dims=1)
    c0, c1, c = process.coefficients(torch.tensor([0.0, 1.0], dtype=DT), (32,))
    assert torch.allclose(c0[0], torch.ones(32, dtype=DT)) and torch.allclose(c1[0], torch.zeros(32, dtype=DT))
    assert torch.allclose(c0[1], torch.zeros(32, dtype=DT), atol=1e-12)
    assert torch.allclose(c1[1], torch.ones(32, dtype=DT))
    assert c.abs().max() < 1e-12
    t = torch.linspace(0.01, 0.99, 9, dtype=DT)
    expected = BrownianBridge(1.0).coefficients(t)
    for shift in (1e-9, 0.0):  # a -> 0 and a = 0 exactly, on a one-point grid
        brownian_limit = SpectralProcess(dims=1, shift=shift, q_exponent=0.0).coefficients(t, (1,))
        for got, want in zip(brownian_limit, expected, strict=True):
            assert torch.allclose(got[:, 0], want, rtol=1e-6)


def test_bridge_samples_have_the_per_mode_mean_and_variance() -> None:
    process = SpectralProcess(dims=1)
    gen = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(1, 1, 32, generator=gen, dtype=DT), torch.randn(1, 1, 32, generator=gen, dtype=DT)
    n = 20_000
    torch.manual_seed(1)
    x_t = process.sample_bridge(x0.expand(n, 1, 32), x1.expand(n, 1, 32), torch.full((n,), 0.5, dtype=DT))
    c0, c1, c = process.coefficients(torch.tensor(0.5, dtype=DT), (32,))
    mean = c0 * dct(x0, 1)[0, 0] + c1 * dct(x1, 1)[0, 0]
    modes = dct(x_t, 1)[:, 0]
    assert ((modes.mean(0) - mean).abs() / (c / math.sqrt(n))).max() < 4
    ratio = modes.var(0) / c.square()
    assert ratio.min() > 0.95 and ratio.max() < 1.05


def test_a_given_noise_makes_the_bridge_draw_reproducible() -> None:
    process = SpectralProcess(dims=2)
    x0, x1, noise = torch.randn(3, 2, 8, 8), torch.randn(3, 2, 8, 8), process.noise_like(torch.zeros(3, 2, 8, 8))
    t = torch.rand(3)
    assert torch.equal(process.sample_bridge(x0, x1, t, noise), process.sample_bridge(x0, x1, t, noise))


# ---- U5, U7: the oracle bridge SDE, Euler-Maruyama vs the exponential integrator -------------------


def oracle_half_way(sampler_cls: type, steps: int, n: int, direction: str = "forward") -> tuple[Tensor, Tensor, Tensor]:
    """Run the oracle bridge SDE from the start to t = 1/2 on a 32x32 grid; (empirical var, exact var, a)."""
    process = SpectralProcess(dims=2)
    gen = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(1, 1, 32, 32, generator=gen), torch.randn(1, 1, 32, 32, generator=gen)
    start, end = (x0, x1) if direction == "forward" else (x1, x0)
    grid = torch.linspace(0, 1, steps + 1)[: steps // 2 + 1]
    grid = grid if direction == "forward" else 1 - grid
    torch.manual_seed(2)
    sampler = sampler_cls(steps, last_step_noise=True) if sampler_cls is EulerMaruyama else sampler_cls(steps)
    out = sampler.sample(oracle(end, process, direction), start.expand(n, 1, 32, 32).clone(), grid)
    exact = process.coefficients(torch.tensor(0.5), (32, 32))[2].square()
    return mode_variance(out.x, 2), exact, process.eigenvalues((32, 32), dtype=torch.float32)


def test_oracle_bridge_sde_matches_the_marginal_with_a_fine_euler_grid() -> None:
    var, exact, a = oracle_half_way(EulerMaruyama, 300, 400)
    ratio = var / exact
    assert 0.97 < ratio[a < 2].mean() < 1.03
    assert 0.95 < ratio[a > 10].mean() < 1.05


def test_oracle_bridge_sde_lands_on_its_end_at_30_steps() -> None:
    process = SpectralProcess(dims=2)
    x0, x1 = torch.randn(64, 1, 32, 32), torch.randn(1, 1, 32, 32)
    out = EulerMaruyama(30, last_step_noise=False).sample(oracle(x1, process), x0, torch.linspace(0, 1, 31))
    rmse = (out.x - x1).square().mean().sqrt()
    assert rmse < 0.05 * x1.square().mean().sqrt()


def test_euler_maruyama_inflates_stiff_modes_and_the_exponential_integrator_does_not() -> None:
    """Spec U7: EM at T=30 inflates a > 10 modes by ~27 %; the exact OU step stays within 2 %."""
    var, exact, a = oracle_half_way(EulerMaruyama, 30, 1000)
    assert 1.2 < (var / exact)[a > 10].mean() < 1.35
    var, exact, a = oracle_half_way(ExponentialIntegrator, 30, 1000)
    ratio = var / exact
    assert 0.98 < ratio[a > 10].mean() < 1.02
    assert 0.98 < ratio[a < 2].mean() < 1.02
    var, exact, a = oracle_half_way(ExponentialIntegrator, 30, 1000, direction="backward")
    assert 0.98 < (var / exact).mean() < 1.02


def test_exponential_integrator_is_stable_where_euler_diverges() -> None:
    """The physical spectrum at N=128 has a_max dt ~ 5 at 30 steps: EM blows up, the exact step cannot."""
    process = SpectralProcess(dims=1, spectrum="physical", reference_size=32)
    x0, x1 = torch.randn(16, 1, 128), torch.randn(1, 1, 128)
    grid = torch.linspace(0, 1, 31)
    em = EulerMaruyama(30, last_step_noise=False).sample(oracle(x1, process), x0, grid)
    exp = ExponentialIntegrator(30).sample(oracle(x1, process), x0, grid)
    assert not torch.isfinite(em.x).all() or em.x.abs().max() > 1e6
    assert torch.allclose(exp.x, x1.expand_as(exp.x), atol=1e-4)


def test_exponential_integrator_needs_an_exact_bridge_step() -> None:
    with pytest.raises(TypeError, match="bridge_step"):
        ExponentialIntegrator(4).sample(oracle(torch.zeros(1, 2), BrownianBridge(1.0)), torch.zeros(3, 2),
                                        torch.linspace(0, 1, 5))


# ---- U6, U9: the Markovian projection of a Gaussian mixture of bridges ----------------------------


class GaussianModes:
    """x0 ~ N(0, diag S0), x1 ~ N(m1, diag S1) independently, diagonal in the DCT basis of a 1-D grid."""

    def __init__(self, process: SpectralProcess, n: int, dtype: torch.dtype = DT) -> None:
        k = torch.arange(n, dtype=dtype)
        self.process, self.n = process, n
        self.s0, self.s1 = 1.0 / (1 + 0.1 * k), 0.25 / (1 + 0.5 * k)
        self.m1 = torch.where(k < 4, 1.0 - 0.2 * k, torch.zeros_like(k))

    def marginal(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(mean, variance, c1) of X_t per mode."""
        c0, c1, c = self.process.coefficients(t, (self.n,))
        return c1 * self.m1, c0.square() * self.s0 + c1.square() * self.s1 + c.square(), c1

    def expected_end(self, x: Tensor, t: Tensor) -> Tensor:
        """E[x1 | x_t] in pixel space, the exact x1-prediction."""
        mean, var, c1 = self.marginal(t[:1])
        modes = self.m1 + c1 * self.s1 / var * (dct(x, 1) - mean)
        return idct(modes, 1)


def test_exact_x1_prediction_gives_the_drift_of_the_marginal() -> None:
    """U9: with f = E[x1 | x_t], the implied drift moves the marginal mean and variance as their closed forms."""
    process = SpectralProcess(dims=1)
    model = GaussianModes(process, 16)
    for t in (0.2, 0.5, 0.8):
        tt, h = torch.tensor([t], dtype=DT), 1e-5
        mean, var, c1 = model.marginal(tt)
        (mean_p, var_p, _), (mean_m, var_m, _) = model.marginal(tt + h), model.marginal(tt - h)
        u, w = process.drift_coefficients(tt, "forward", (16,))
        # drift = u E[x1|x] + w x is affine in x: slope alpha, offset beta per mode
        alpha = u * c1 * model.s1 / var + w
        beta = u * (model.m1 - c1 * model.s1 / var * mean)
        s2 = process.noise_scale((16,), dtype=DT).square()
        assert torch.allclose((mean_p - mean_m) / (2 * h), alpha * mean + beta, rtol=1e-3, atol=1e-8)
        assert torch.allclose((var_p - var_m) / (2 * h), 2 * alpha * var + s2, rtol=1e-3)
        # the same drift through the process's conversion of an x1 prediction, in pixel space
        x = idct(mean + var.sqrt() * torch.randn(5, 1, 16, dtype=DT), 1)
        drift = process.drift("x1", model.expected_end(x, tt.expand(5)), x, tt.expand(5), "forward")
        assert torch.allclose(dct(drift, 1), alpha * dct(x, 1) + beta, rtol=1e-9, atol=1e-12)


def test_oracle_markovian_projection_matches_the_mixture_marginal() -> None:
    """U6: the DBFS sampler driven by the exact E[x1 | x_t], T=100, against the mixture's marginal at t = 1/2."""
    process = SpectralProcess(dims=1)
    model = GaussianModes(process, 32, torch.float32)
    n = 8000
    torch.manual_seed(3)
    x0 = idct(model.s0.sqrt() * torch.randn(n, 1, 32), 1)
    predictor = Predictor(model.expected_end, process, "forward", "x1")
    out = EulerMaruyama(100).sample(predictor, x0, torch.linspace(0, 1, 101)[:51])
    mean, var, _ = model.marginal(torch.tensor([0.5]))
    modes = dct(out.x, 1)[:, 0]
    assert 0.97 < (modes.var(0) / var[0]).mean() < 1.05
    assert (modes.mean(0) - mean[0]).abs().max() < 0.03


# ---- conversions and errors --------------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("predict", ["drift", "eps", "velocity", "endpoint"])
def test_every_prediction_converts_to_the_end_and_back(predict: str, direction: str) -> None:
    process = SpectralProcess(dims=2)
    x0, x1 = torch.randn(3, 2, 8, 6, dtype=DT), torch.randn(3, 2, 8, 6, dtype=DT)
    t = torch.tensor([0.1, 0.5, 0.9], dtype=DT)
    x_t = process.sample_bridge(x0, x1, t)
    target = process.target(predict, x0, x1, x_t, t, direction)
    end = x1 if direction == "forward" else x0
    assert torch.allclose(process.endpoint(predict, target, x_t, t, direction), end, atol=1e-9)
    assert torch.allclose(process.drift(predict, target, x_t, t, direction),
                          process.target("drift", x0, x1, x_t, t, direction), atol=1e-9)


def test_backward_drift_is_the_forward_drift_of_the_mirrored_bridge() -> None:
    """The OU reference is reversible: towards x0 at time t is towards x1 at time 1 - t."""
    process = SpectralProcess(dims=1)
    x0, x1, x_t = (torch.randn(2, 1, 16, dtype=DT) for _ in range(3))
    t = torch.tensor([0.3, 0.6], dtype=DT)
    assert torch.allclose(process.target("drift", x0, x1, x_t, t, "backward"),
                          process.target("drift", x1, x0, x_t, 1 - t, "forward"))


def test_bad_settings_and_shapes_are_named() -> None:
    with pytest.raises(ValueError, match="dims: expected 1 or 2"):
        SpectralProcess(dims=3)
    with pytest.raises(ValueError, match="reference_size"):
        SpectralProcess(spectrum="physical")
    with pytest.raises(ValueError, match="spectrum: expected"):
        SpectralProcess(spectrum="fourier")
    with pytest.raises(ValueError, match="shift: 0 makes a = 0"):
        SpectralProcess(shift=0.0)
    with pytest.raises(ValueError, match="per mode: pass the spatial shape"):
        SpectralProcess(dims=2).coefficients(torch.tensor([0.5]))
    with pytest.raises(ValueError, match="expects a batch"):
        SpectralProcess(dims=2).noise_like(torch.zeros(8, 8))
