"""The posterior sampler with an oracle network (spec §1.12 tier A, item 3): landing point, marginals."""

from __future__ import annotations

import pytest
import torch
from sb_i2sb.process import I2SBBridge
from sb_i2sb.sampler import I2SBPosterior

from sbcore.process.scheduled import ScheduledBridge
from sbcore.sampler.base import Predictor


def oracle(process, x0: torch.Tensor) -> Predictor:
    """A network whose eps output is the exact label for the true x0 (so x0_hat = x0)."""
    return Predictor(lambda x, t: (x - x0) / process.std_fwd(t).reshape(-1, *[1] * (x.ndim - 1)), process,
                     "backward", predict="eps")


def run(process, nfe, x0, x1, **kw):
    sampler = I2SBPosterior(nfe)
    return sampler.sample(oracle(process, x0), x1, sampler.time_grid(process, "backward", dtype=x1.dtype), **kw)


@pytest.mark.parametrize(("beta_max", "b"), [(0.3, 7.09e-4), (1.0, 4.05e-4)])
@pytest.mark.parametrize("nfe", [1, 2, 3, 4, 5, 10, 20, 50, 100, 999])
def test_oracle_chain_lands_on_x0_up_to_the_s0_mixing(beta_max, b, nfe):
    """Deterministic chain: x_out = x0 - (s_0^2 / s_N^2)(x0 - x1) for every NFE (0.69922 / 0.69955)."""
    process = I2SBBridge(beta_max, ot_ode=True)
    x0, x1 = torch.full((4, 1), 0.7, dtype=torch.float64), torch.full((4, 1), -0.4, dtype=torch.float64)
    out = run(process, nfe, x0, x1)
    mix = float(process.tables["std_fwd"][0] ** 2 / process.tables["std_fwd"][-1] ** 2)
    assert mix == pytest.approx(b, rel=2e-3)
    assert torch.allclose(out.x, x0 - mix * (x0 - x1), atol=1e-12)
    assert out.nfe == nfe
    assert float(out.x[0]) == pytest.approx({0.3: 0.69922, 1.0: 0.69955}[beta_max], abs=1e-5)


@pytest.mark.parametrize("nfe", [2, 10, 999])
def test_stochastic_oracle_chain_has_the_bridge_marginal_midway(nfe):
    """20 000 chains: at the grid's middle step (500, or 499 for nfe 999) mean and std match the bridge."""
    torch.manual_seed(nfe)
    process = I2SBBridge(0.3)
    n = 20_000
    x0, x1 = torch.full((n, 1), 0.7, dtype=torch.float64), torch.full((n, 1), -0.4, dtype=torch.float64)
    sampler = I2SBPosterior(nfe)
    grid = sampler.time_grid(process, "backward", dtype=torch.float64)
    out = sampler.sample(oracle(process, x0), x1, grid, return_path=True)
    i = int((process.index(grid) <= 500).nonzero()[0])
    x, t = out.path[i], grid[i]
    mean = float(process.table("mu_x0", t)) * 0.7 - float(process.table("mu_x1", t)) * 0.4
    std = float(process.std_sb(t))
    assert abs(float(x.mean()) - mean) < 4 * std / n**0.5
    assert abs(float(x.std()) / std - 1) < 0.01 * 4


@pytest.mark.parametrize("nfe", [5, 20])
def test_stochastic_oracle_final_noise_is_the_propagated_step_noise(nfe):
    """No noise on the last step; what remains is earlier noise shrunk by s_p^2 / s_n^2 (spec: 0.0006 at
    nfe 5, 0.0013 at nfe 20)."""
    torch.manual_seed(0)
    process = I2SBBridge(0.3)
    n = 20_000
    x0, x1 = torch.full((n, 1), 0.7, dtype=torch.float64), torch.full((n, 1), -0.4, dtype=torch.float64)
    out = run(process, nfe, x0, x1)
    s2 = (process.tables["std_fwd"] ** 2)[process.index(I2SBPosterior(nfe).time_grid(process, "backward"))]
    var = 0.0
    for s_n2, s_p2 in zip(s2[:-1].tolist(), s2[1:].tolist(), strict=True):
        r = s_p2 / s_n2
        var = var * r**2 + (s_p2 * (s_n2 - s_p2) / s_n2 if s_p2 != s2[-1] else 0.0)
    assert abs(float(out.x.std()) / var**0.5 - 1) < 0.04
    assert var**0.5 == pytest.approx({5: 0.0006, 20: 0.0013}[nfe], abs=1e-4)


def test_continuous_scheduled_bridge_lands_exactly():
    """On the core's continuous bridge std_fwd(0) = 0, so the oracle chain lands on x0 itself."""
    process = ScheduledBridge("symmetric", 0.1, 0.3)
    x0, x1 = torch.full((3, 2), 0.7, dtype=torch.float64), torch.full((3, 2), -0.4, dtype=torch.float64)
    sampler = I2SBPosterior(7, grid="uniform")
    out = sampler.sample(oracle(process, x0), x1, sampler.time_grid(process, "backward", dtype=torch.float64))
    assert torch.allclose(out.x, x0, atol=1e-12)


def test_record_clip_and_callback():
    process = I2SBBridge(0.3, ot_ode=True)
    x0 = torch.full((2, 1, 4, 4), 1.5)
    x1 = torch.zeros(2, 1, 4, 4)
    sampler = I2SBPosterior(4, clip_denoise=True)
    seen = []

    def callback(k, x, t, estimate):
        seen.append(k)
        return x.clone().fill_(0.25) if k == 3 else None

    out = sampler.sample(oracle(process, x0), x1, sampler.time_grid(process, "backward"), callback=callback,
                         record=True, return_path=True)
    assert seen == [0, 1, 2, 3]
    assert out.predictions.shape == (4, 2, 1, 4, 4) and float(out.predictions.max()) == 1.0  # clamped x0_hat
    assert out.path.shape == (5, 2, 1, 4, 4) and float(out.x.max()) == 0.25


def test_only_the_backward_direction():
    process = I2SBBridge()
    sampler = I2SBPosterior(2)
    with pytest.raises(ValueError, match="backward direction"):
        sampler.sample(Predictor(lambda x, t: x, process, "forward", "eps"), torch.zeros(1, 1),
                       sampler.time_grid(process, "forward"))
