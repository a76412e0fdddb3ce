"""The adaptive ODE solver and the probability-flow ODE against closed forms (no training).

* adaptive_ode on a linear ODE whose solution is known: the error stays within 10 rtol and the NFE is counted.
* probability_flow with the exact forward and backward drifts of the Gaussian Schrödinger bridge
  (`GaussianSB.forward_drift` / `backward_drift`, Bunne et al. 2023): the ODE is linear in x, so its flow map is
  affine and the exact law of x_1 is the push-forward of N(mean0, cov0) through it, computed from d + 1
  integrated points (no sampling error). It must match the SB marginal at t = 1 (and t = 0 going back).
"""

from __future__ import annotations

import math

import pytest
import torch

from sbcore.config import structure_config
from sbcore.config_text import merge
from sbcore.errors import UserError
from sbcore.launch.local import run_local
from sbcore.metrics.gaussian import GaussianSB, kl_gaussian
from sbcore.process import BrownianBridge
from sbcore.sample import load_trainer
from sbcore.sampler import Predictor
from sbcore.sampler.adaptive import AdaptiveODE
from sbcore.sampler.flow import ProbabilityFlow, score_reverse

DT = torch.float64
K, OMEGA = 0.7, 2 * math.pi  # dx/dt = (-K I + OMEGA J) x: a decaying rotation, one full turn over [0, 1]


def rotation_decay(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return -K * x + OMEGA * torch.stack([-x[:, 1], x[:, 0]], 1)


def exact(x0: torch.Tensor, duration: float) -> torch.Tensor:
    c, s = math.cos(OMEGA * duration), math.sin(OMEGA * duration)
    return math.exp(-K * duration) * torch.stack([c * x0[:, 0] - s * x0[:, 1], s * x0[:, 0] + c * x0[:, 1]], 1)


@pytest.mark.parametrize("rtol", [1e-4, 1e-7, 1e-10])
def test_adaptive_solver_on_a_linear_ode(rtol):
    """Acceptance: dopri5 (the default) ends within 10 rtol of the exact solution, in both directions."""
    process = BrownianBridge(0.0)  # only carries the drift; the field is the test's own
    x0 = torch.randn(64, 2, dtype=DT, generator=torch.Generator().manual_seed(0))
    sampler = AdaptiveODE(steps=2, rtol=rtol, atol=rtol * 1e-3)
    calls = 0

    def network(x, t):
        nonlocal calls
        calls += 1
        return rotation_decay(x, t)

    # forward: dx/dt = f; backward: the drift in reversed time, so the same field traced from t = 1 to 0
    for direction in ("forward", "backward"):
        calls = 0
        grid = sampler.time_grid(process, direction, dtype=DT)
        out = sampler.sample(Predictor(network, process, direction, "drift"), x0, grid, return_path=True)
        want = exact(x0, 1.0)
        error = (out.x - want).norm(dim=1) / want.norm(dim=1)
        assert float(error.max()) <= 10 * rtol, (direction, float(error.max()))
        assert out.nfe == calls > 0
        half = exact(x0, 0.5)
        assert float(((out.path[1] - half).norm(dim=1) / half.norm(dim=1)).max()) <= 10 * rtol
    assert sampler.nfe() is None


@pytest.mark.parametrize("method", ["dopri8", "bosh3", "fehlberg2", "adaptive_heun"])
def test_every_adaptive_method_converges(method):
    """The tolerances bound each step's error, not the global one: over a full turn the lower-order methods
    end further than 10 rtol away (bosh3: ~90 rtol at 1e-7), but every method converges."""
    process = BrownianBridge(0.0)
    x0 = torch.randn(8, 2, dtype=DT, generator=torch.Generator().manual_seed(0))
    model = Predictor(rotation_decay, process, "forward", "drift")
    errors = []
    for rtol in (1e-2, 1e-5):
        sampler = AdaptiveODE(method=method, rtol=rtol, atol=rtol * 1e-3)
        out = sampler.sample(model, x0, torch.tensor([0.0, 1.0], dtype=DT))
        errors.append(float((out.x - exact(x0, 1.0)).norm(dim=1).max()))
    assert errors[1] < errors[0] / 20 and errors[1] < 1e-2


def test_tighter_tolerance_costs_more_evaluations():
    process = BrownianBridge(0.0)
    x0 = torch.randn(8, 2, dtype=DT, generator=torch.Generator().manual_seed(1))
    model = Predictor(rotation_decay, process, "forward", "drift")
    nfe = [AdaptiveODE(rtol=r, atol=r).sample(model, x0, torch.tensor([0.0, 1.0], dtype=DT)).nfe
           for r in (1e-3, 1e-6, 1e-9)]
    assert nfe[0] < nfe[1] < nfe[2]


def test_adaptive_solver_refuses_a_drift_that_is_not_finite_and_bad_options():
    process = BrownianBridge(0.0)
    grid = torch.tensor([0.0, 1.0], dtype=DT)
    model = Predictor(lambda x, t: x * torch.where(t[:, None] > 0.5, torch.nan, 1.0), process, "forward", "drift")
    with pytest.raises(ValueError, match=r"drift is not finite at t = 0\.[5-9]"):
        AdaptiveODE().sample(model, torch.ones(2, 2, dtype=DT), grid)
    model = Predictor(lambda x, t: x / (0.5 - t[:, None]), process, "forward", "drift")  # blows up at t = 0.5
    with pytest.raises(ValueError, match=r"step size vanished near t = 0\.5"):
        AdaptiveODE().sample(model, torch.ones(2, 2, dtype=DT), grid)
    with pytest.raises(ValueError, match="method must be one of"):
        AdaptiveODE(method="rk45")
    with pytest.raises(ValueError, match="rtol and atol must be > 0"):
        AdaptiveODE(rtol=0)


def gaussian_sb(d: int = 5, sigma: float = 1.0) -> GaussianSB:
    g = torch.Generator().manual_seed(3)
    a = torch.randn(d, d, generator=g, dtype=DT) / math.sqrt(d)
    b = torch.randn(d, d, generator=g, dtype=DT) / math.sqrt(d)
    return GaussianSB(torch.randn(d, generator=g, dtype=DT), a @ a.T + 0.5 * torch.eye(d, dtype=DT),
                      torch.randn(d, generator=g, dtype=DT) + 1, b @ b.T + 0.3 * torch.eye(d, dtype=DT), sigma)


def pushed_forward(sampler, model, mean, cov, direction) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Law of the end of an affine flow started at N(mean, cov): integrate mean and mean + columns of chol(cov)."""
    chol = torch.linalg.cholesky(cov)
    points = torch.cat([mean[None], mean[None] + chol.T], 0)
    grid = sampler.time_grid(model.process, direction, dtype=DT)
    out = sampler.sample(model, points, grid)
    centre = out.x[0]
    spread = out.x[1:] - centre  # rows: M chol[:, i]
    return centre, spread.T @ spread, out.nfe


def exact_pair(sb: GaussianSB, direction: str) -> Predictor:
    process = BrownianBridge(sb.sigma)
    forward = Predictor(sb.forward_drift, process, "forward", "drift")
    backward = Predictor(sb.backward_drift, process, "backward", "drift")
    if direction == "forward":
        forward.reverse = backward
        return forward
    backward.reverse = forward
    return backward


@pytest.mark.parametrize("sigma", [1.0, 0.5])
def test_probability_flow_reaches_the_sb_marginals_with_the_adaptive_solver(sigma):
    """Acceptance: KL(ODE's law at t = 1 || SB marginal) <= 1e-3 at d = 5; measured 5.7e-10 (sigma = 1) with
    dopri5 at rtol = atol = 1e-5 in 40 evaluations (20 of the flow), so the test asks for 1e-6."""
    sb = gaussian_sb(5, sigma)
    sampler = ProbabilityFlow(steps=1, solver="dopri5", rtol=1e-5, atol=1e-5)
    mean1, cov1, nfe = pushed_forward(sampler, exact_pair(sb, "forward"), sb.mean0, sb.cov0, "forward")
    assert float(kl_gaussian(mean1, cov1, sb.mean1, sb.cov1)) <= 1e-6
    assert nfe > 0 and nfe % 2 == 0  # both networks per evaluation of the flow
    mean0, cov0, _ = pushed_forward(sampler, exact_pair(sb, "backward"), sb.mean1, sb.cov1, "backward")
    assert float(kl_gaussian(mean0, cov0, sb.mean0, sb.cov0)) <= 1e-6


def test_probability_flow_follows_every_marginal_and_fixed_step_solvers_converge():
    sb = gaussian_sb(5)
    model = exact_pair(sb, "forward")
    chol = torch.linalg.cholesky(sb.cov0)
    points = torch.cat([sb.mean0[None], sb.mean0[None] + chol.T], 0)
    sampler = ProbabilityFlow(steps=4, solver="dopri5", rtol=1e-6, atol=1e-6)
    out = sampler.sample(model, points, sampler.time_grid(model.process, "forward", dtype=DT), return_path=True)
    for k, t in enumerate((0.25, 0.5, 0.75)):
        spread = out.path[k + 1, 1:] - out.path[k + 1, 0]
        mean_t, cov_t = sb.marginal(t)
        assert float(kl_gaussian(out.path[k + 1, 0], spread.T @ spread, mean_t, cov_t)) <= 1e-8
    kls = []
    for steps in (8, 32):
        heun = ProbabilityFlow(steps=steps, solver="heun")
        mean1, cov1, nfe = pushed_forward(heun, model, sb.mean0, sb.cov0, "forward")
        assert nfe == 4 * steps == heun.nfe()
        kls.append(float(kl_gaussian(mean1, cov1, sb.mean1, sb.cov1)))
    assert kls[1] < kls[0] / 50  # second order: 4x the steps, ~16x smaller error, ~256x smaller KL
    assert ProbabilityFlow(steps=10, solver="euler").nfe() == 20


def test_a_drift_and_a_score_make_the_same_flow():
    """eq. (1): the reverse drift from the forward drift and the marginal score, -f + sigma^2 grad log p_t."""
    sb = gaussian_sb(5)
    process = BrownianBridge(sb.sigma)
    forward = Predictor(sb.forward_drift, process, "forward", "drift")

    def score(x, t):
        mean, cov = sb.marginal(t[:1])
        return -torch.linalg.solve(cov[0], (x - mean).T).T

    x = torch.randn(7, 5, dtype=DT)
    t = torch.full((7,), 0.3, dtype=DT)
    reverse = score_reverse(forward, score)
    assert reverse.direction == "backward"
    assert torch.allclose(reverse(x, t).drift, sb.backward_drift(x, t), atol=1e-10)
    forward.reverse = reverse
    mean1, cov1, _ = pushed_forward(ProbabilityFlow(steps=1), forward, sb.mean0, sb.cov0, "forward")
    assert float(kl_gaussian(mean1, cov1, sb.mean1, sb.cov1)) <= 1e-6


def test_probability_flow_needs_both_directions():
    sb = gaussian_sb(2)
    model = Predictor(sb.forward_drift, BrownianBridge(1.0), "forward", "drift")
    sampler = ProbabilityFlow(steps=2)
    with pytest.raises(ValueError, match="needs both directions' networks"):
        sampler.sample(model, torch.zeros(3, 2, dtype=DT), sampler.time_grid(model.process, "forward"))
    with pytest.raises(ValueError, match="solver must be one of"):
        ProbabilityFlow(solver="rk4")


def test_a_two_direction_run_samples_and_evaluates_with_the_probability_flow(tiny_gaussian, plugins, tmp_path):
    """The trainer hands the other direction's network along (`Predictor.reverse`): evaluation and
    `Trainer.sample` integrate the ODE of both networks, and its NFE counts both."""
    config = structure_config(merge(tiny_gaussian, {"sampler": {"kind": "probability_flow", "solver": "heun",
                                                                "steps": 3}}), plugins.registry)
    summary = run_local(config, None, plugins)
    assert summary["backward/nfe"] == 2 * 2 * 3  # the end-of-run evaluation used the ODE
    trainer, _ = load_trainer(tmp_path / "runs" / "tiny", "cpu")
    x1 = torch.randn(16, 2)
    out = trainer.sample("backward", x1, return_path=True)
    assert out.nfe == 12 and out.path.shape == (4, 16, 2) and torch.isfinite(out.x).all()
    one = trainer.predictor("backward")
    assert one.reverse is not None and one.reverse.direction == "forward"
    single = merge(tiny_gaussian, {"method": {"directions": ["forward"]},
                                   "sampler": {"kind": "probability_flow", "steps": 3}})
    with pytest.raises(UserError, match="integrates the forward and backward networks together"):
        run_local(structure_config(single, plugins.registry), None, plugins)
