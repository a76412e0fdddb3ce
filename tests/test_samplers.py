"""Fixed-grid integrators against closed forms: convergence order, NFE, paths, noise statistics."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from sbcore.process.brownian import BrownianBridge
from sbcore.sampler.base import drift_model
from sbcore.sampler.integrators import EulerMaruyama, EulerODE, HeunODE

torch.set_num_threads(1)
DT = torch.float64


def rate(x: Tensor, t: Tensor) -> Tensor:
    """dx/dt = (1 + 2t) x, so x(t) = x(0) exp(t + t^2); time-dependent, so Heun must use t_{k+1}."""
    return (1 + 2 * t)[:, None] * x


def exact(x0: Tensor, t: float) -> Tensor:
    return x0 * math.exp(t + t * t)


def ode_error(sampler_cls: type, steps: int, backward: bool) -> float:
    """Relative error at the end of the grid."""
    x0 = torch.tensor([[1.0, -0.5]], dtype=DT)
    grid = torch.linspace(0, 1, steps + 1, dtype=DT)
    if backward:  # from x(1) back to x(0); the drift is the velocity in the direction of travel
        out = sampler_cls(steps).sample(drift_model(lambda x, t: -rate(x, t), BrownianBridge(0.0)), exact(x0, 1.0),
                                        grid.flip(0))
        return ((out.x - x0) / x0).abs().max().item()
    out = sampler_cls(steps).sample(drift_model(rate, BrownianBridge(0.0)), x0, grid)
    return ((out.x - exact(x0, 1.0)) / exact(x0, 1.0)).abs().max().item()


@pytest.mark.parametrize("backward", [False, True], ids=["forward", "backward"])
@pytest.mark.parametrize(("sampler_cls", "order"), [(EulerODE, 1), (HeunODE, 2)])
def test_ode_solvers_converge_at_their_order(sampler_cls: type, order: int, backward: bool) -> None:
    coarse, fine = ode_error(sampler_cls, 64, backward), ode_error(sampler_cls, 128, backward)
    assert fine < coarse < (0.1 if order == 1 else 1e-3)
    assert coarse / fine == pytest.approx(2**order, rel=0.05)


def test_euler_maruyama_without_noise_is_euler() -> None:
    x0 = torch.randn(5, 3, dtype=DT)
    grid = torch.linspace(0, 1, 11, dtype=DT)
    em = EulerMaruyama(10).sample(drift_model(rate, BrownianBridge(0.0)), x0, grid)
    euler = EulerODE(10).sample(drift_model(rate, BrownianBridge(0.0)), x0, grid)
    assert torch.equal(em.x, euler.x)


class Recorder:
    """A drift that records the times it is called at and counts calls."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        assert t.shape == (x.shape[0],) and (t == t[0]).all()
        self.times.append(round(t[0].item(), 6))
        return -x


@pytest.mark.parametrize(
    ("sampler", "calls"),
    [
        (EulerMaruyama(4), [1.0, 0.75, 0.5, 0.25]),
        (EulerODE(4), [1.0, 0.75, 0.5, 0.25]),
        (HeunODE(4), [1.0, 0.75, 0.75, 0.5, 0.5, 0.25, 0.25, 0.0]),
    ],
)
def test_nfe_and_evaluation_times_along_a_decreasing_grid(sampler: object, calls: list[float]) -> None:
    drift = Recorder()
    out = sampler.sample(drift_model(drift, BrownianBridge(1.0)), torch.randn(3, 2), torch.linspace(1, 0, 5))
    assert drift.times == calls
    assert out.nfe == len(calls)


@pytest.mark.parametrize("sampler", [EulerMaruyama(6), EulerODE(6), HeunODE(6)], ids=repr)
def test_path_has_every_grid_state_from_x_start_to_x(sampler: object) -> None:
    x_start = torch.randn(4, 2, 3)
    grid = torch.linspace(0, 1, 7)
    out = sampler.sample(drift_model(lambda x, t: -x, BrownianBridge(0.5)), x_start, grid, return_path=True)
    assert out.path.shape == (7, 4, 2, 3)
    assert torch.equal(out.path[0], x_start)
    assert torch.equal(out.path[-1], out.x)
    assert not torch.equal(out.path[1], out.path[0])
    assert sampler.sample(drift_model(lambda x, t: -x, BrownianBridge(0.5)), x_start, grid).path is None


@pytest.mark.parametrize("grid", [(0.2, 0.8), (1.0, 0.0)], ids=["forward-part", "backward-full"])
def test_euler_maruyama_with_zero_drift_has_variance_sigma2_times_elapsed_time(grid: tuple[float, float]) -> None:
    torch.manual_seed(0)
    sigma, n = 0.7, 40_000
    out = EulerMaruyama(10).sample(
        drift_model(lambda x, t: torch.zeros_like(x), BrownianBridge(sigma)),
        torch.zeros(n // 2, 2, dtype=DT),
        torch.linspace(*grid, 11, dtype=DT),
    )
    var = sigma**2 * abs(grid[1] - grid[0])
    # sampling error of the variance is var * sqrt(2 / n) = 0.7 % of var; of the mean sqrt(var / n)
    assert out.x.var().item() == pytest.approx(var, rel=0.03)
    assert abs(out.x.mean().item()) < 4 * math.sqrt(var / n)


class NoiseRecordingBridge(BrownianBridge):
    def __init__(self, sigma: float) -> None:
        super().__init__(sigma)
        self.noises: list[Tensor] = []

    def noise_like(self, x: Tensor) -> Tensor:
        self.noises.append(super().noise_like(x))
        return self.noises[-1]


def test_last_step_noise_false_drops_exactly_the_last_noise_term() -> None:
    sigma, steps = 0.8, 5
    x0, grid = torch.randn(6, 2, dtype=DT), torch.linspace(0, 1, steps + 1, dtype=DT)
    drift = lambda x, t: torch.sin(x) * (1 - t)[:, None]  # noqa: E731 - state and time dependent
    noisy_process, mean_process = NoiseRecordingBridge(sigma), NoiseRecordingBridge(sigma)
    torch.manual_seed(1)
    noisy = EulerMaruyama(steps).sample(drift_model(drift, noisy_process), x0, grid, return_path=True)
    torch.manual_seed(1)
    mean = EulerMaruyama(steps, last_step_noise=False).sample(drift_model(drift, mean_process), x0, grid,
                                                              return_path=True)
    assert len(noisy_process.noises) == steps and len(mean_process.noises) == steps - 1
    assert torch.equal(noisy.path[:-1], mean.path[:-1])
    torch.testing.assert_close(noisy.x - mean.x, sigma * math.sqrt(1 / steps) * noisy_process.noises[-1])


def test_euler_maruyama_with_the_bridge_drift_lands_on_x1() -> None:
    # the Brownian bridge's forward drift (x1 - x)/(1 - t) (DSBM eq. (8)); the last step from
    # t = 1 - dt moves x by (x1 - x)/dt * dt, i.e. onto x1, whatever the earlier noise did.
    torch.manual_seed(2)
    x0, x1 = torch.randn(500, 3, dtype=DT), torch.randn(500, 3, dtype=DT) + 4.0
    grid = torch.linspace(0, 1, 21, dtype=DT)

    def drift(x: Tensor, t: Tensor) -> Tensor:
        return (x1 - x) / (1 - t)[:, None]

    out = EulerMaruyama(20, last_step_noise=False).sample(drift_model(drift, BrownianBridge(1.0)), x0, grid,
                                                          return_path=True)
    torch.testing.assert_close(out.x, x1, rtol=0, atol=1e-12)
    assert (out.path[10] - (x0 + x1) / 2).abs().max() > 0.5  # the path itself was noisy
    # with the last noise kept, the end point misses x1 by exactly sigma sqrt(dt) N(0, 1)
    noisy = EulerMaruyama(20).sample(drift_model(drift, BrownianBridge(1.0)), x0, grid)
    assert (noisy.x - x1).std().item() == pytest.approx(math.sqrt(1 / 20), rel=0.1)


def test_steps_must_be_positive() -> None:
    with pytest.raises(ValueError, match="steps must be >= 1, got 0"):
        HeunODE(0)
