"""Reference processes against closed forms, in float64 (issue 9): the constant-beta scheduled bridge is the
Brownian bridge, the symmetric schedule's marginals and I2SB's discrete sum, the VP conversions, and every
built-in process selected from YAML."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from scipy.integrate import quad

from sbcore.cli import main
from sbcore.plugins import get_plugins
from sbcore.process import PREDICTIONS, BrownianBridge, ScheduledBridge, VPDiffusion

torch.set_num_threads(1)
DT = torch.float64
ROOT = Path(__file__).resolve().parents[1]
GAUSSIAN = str(ROOT / "examples" / "bm" / "gaussian.yaml")


def close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-12, atol: float = 1e-12) -> None:
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol)


def endpoints(n: int = 7, dim: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, dim, generator=g, dtype=DT)
    x1 = 1 + torch.randn(n, dim, generator=g, dtype=DT)
    return x0, x1, torch.randn(n, dim, generator=g, dtype=DT)


# ---- the constant schedule is Brownian ---------------------------------------------------------


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
def test_constant_schedule_is_the_brownian_bridge(sigma: float) -> None:
    brownian, scheduled = BrownianBridge(sigma), ScheduledBridge("constant", beta_max=sigma**2)
    assert scheduled.brownian_sigma == pytest.approx(sigma, rel=1e-15)
    t = torch.linspace(0, 1, 101, dtype=DT)
    for a, b in zip(scheduled.coefficients(t), brownian.coefficients(t), strict=True):
        close(a, b)
    close(scheduled.diffusion(t), brownian.diffusion(t))
    x0, x1, z = endpoints()
    t = torch.linspace(0.02, 0.98, len(x0), dtype=DT)
    x_t = brownian.sample_bridge(x0, x1, t, noise=z)
    close(scheduled.sample_bridge(x0, x1, t, noise=z), x_t)
    out = torch.randn_like(x_t)
    for direction in ("forward", "backward"):
        close(scheduled.remaining_variance(t, direction), brownian.remaining_variance(t, direction))
        for predict in ("drift", "endpoint", "eps", "velocity"):
            close(scheduled.target(predict, x0, x1, x_t, t, direction), brownian.target(predict, x0, x1, x_t, t,
                                                                                        direction))
            for convert in ("endpoint", "drift", "eps"):
                close(getattr(scheduled, convert)(predict, out, x_t, t, direction),
                      getattr(brownian, convert)(predict, out, x_t, t, direction))


def losses(config: dict, tmp_path: Path, name: str) -> list[float]:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**config, "name": name}))
    assert main(["run", str(path)]) == 0
    records = [json.loads(line) for line in (tmp_path / "runs" / name / "metrics.jsonl").open()]
    return [r["loss"] for r in records if "loss" in r]


def test_constant_schedule_trains_like_brownian(tiny_gaussian: dict, tmp_path: Path) -> None:
    """Same seed, same data, time and noise draws: only the process object differs, so the losses agree
    to float32 rounding (the coefficients differ by an ulp: sigma2 / total vs t)."""
    brownian = losses({**tiny_gaussian, "process": {"kind": "brownian", "sigma": 0.7}}, tmp_path, "brownian")
    scheduled = losses({**tiny_gaussian, "process": {"kind": "scheduled", "schedule": "constant", "beta_max": 0.49}},
                       tmp_path, "scheduled")
    assert len(brownian) == 4
    np.testing.assert_allclose(scheduled, brownian, rtol=1e-5)
    other = losses({**tiny_gaussian, "process": {"kind": "brownian", "sigma": 0.8}}, tmp_path, "other")
    assert not np.allclose(other, brownian, rtol=1e-3)  # the comparison can tell processes apart


# ---- the symmetric schedule ----------------------------------------------------------------------


def integrated_beta(process: ScheduledBridge, t: float) -> float:
    """int_0^t beta by adaptive quadrature, split at the kink t = 1/2."""
    def beta(s: float) -> float:
        return float(process.beta(torch.tensor(s, dtype=DT)))

    return quad(beta, 0.0, t, points=[0.5] if t > 0.5 else None, epsabs=1e-15, epsrel=1e-13)[0]


@pytest.mark.parametrize("beta_max", [0.3, 1.0])
def test_symmetric_schedule_marginals_match_the_integrated_beta(beta_max: float) -> None:
    process = ScheduledBridge("symmetric", beta_min=0.1, beta_max=beta_max)
    peak = (math.sqrt(0.1) + (math.sqrt(beta_max) - math.sqrt(0.1)) / 2) ** 2
    times = torch.tensor([0.0, 0.1, 0.25, 0.4999, 0.5, 0.7, 0.93, 1.0], dtype=DT)
    close(process.beta(times), process.beta(1 - times))
    assert float(process.beta(torch.tensor(0.5, dtype=DT))) == pytest.approx(peak, rel=1e-14)
    total = integrated_beta(process, 1.0)
    assert process.total == pytest.approx(total, rel=1e-12)
    s2 = torch.tensor([integrated_beta(process, float(t)) for t in times], dtype=DT)
    close(process.sigma2(times), s2)
    close(process.sigma2(1 - times), total - s2)  # the mirror image
    a, b, c = process.coefficients(times)
    close(a, 1 - s2 / total)
    close(b, s2 / total)
    close(c, (s2 * (total - s2) / total).sqrt())
    close(process.std_fwd(times), s2.sqrt())
    close(process.std_bwd(times), (total - s2).sqrt())
    # Monte Carlo: draws of one pair have this mean and std
    n, t = 40_000, 0.3
    x0, x1 = torch.full((n, 1), -1.0, dtype=DT), torch.full((n, 1), 2.0, dtype=DT)
    torch.manual_seed(0)
    draws = process.sample_bridge(x0, x1, torch.full((n,), t, dtype=DT))
    s2t = integrated_beta(process, t)
    std = math.sqrt(s2t * (total - s2t) / total)
    assert float(draws.mean()) == pytest.approx(-1 + 3 * s2t / total, abs=5 * std / math.sqrt(n))
    assert float(draws.std()) == pytest.approx(std, rel=5 / math.sqrt(2 * n))


def test_symmetric_total_is_i2sb_discrete_sum_up_to_the_step_size() -> None:
    """I2SB sums N = 1000 per-step betas linspace(sqrt(1e-4), sqrt(beta_max / N), N)^2, first half mirrored
    (specs/i2sb_ddib.md, item 1): 0.14103 at beta_max 0.3. Our continuous schedule integrates the same curve
    (beta = N * per-step beta); a Riemann sum of a monotone function on each half is off by at most
    (rise) / N per half."""
    n, beta_max = 1000, 0.3
    half = np.linspace(math.sqrt(1e-4), math.sqrt(beta_max / n), n)[: n // 2] ** 2
    discrete = float(np.concatenate([half, half[::-1]]).sum())
    assert discrete == pytest.approx(0.14103, abs=5e-6)
    process = ScheduledBridge("symmetric", beta_min=0.1, beta_max=beta_max)
    rise = float(process.beta(torch.tensor(0.5, dtype=DT)) - process.beta(torch.tensor(0.0, dtype=DT)))
    assert abs(process.total - discrete) <= 2 * rise / n
    assert process.total == pytest.approx(discrete, abs=5e-5)  # measured: 4.1e-5


# ---- VP -------------------------------------------------------------------------------------------


def guided_diffusion_alpha_bar(steps: int) -> torch.Tensor:
    """prod_{j <= i} (1 - beta_j) over linspace(1e-4, 0.02) * 1000 / N (DDPM, Ho et al. 2020, eq. (4))."""
    betas = np.linspace(1e-4 * 1000 / steps, 0.02 * 1000 / steps, steps)
    return torch.tensor(np.cumprod(1 - betas), dtype=DT)


@pytest.mark.parametrize("steps", [None, 1000], ids=["continuous", "discrete"])
def test_vp_conversions_round_trip(steps: int | None) -> None:
    process = VPDiffusion(steps=steps)
    x0, _, eps = endpoints(n=9)
    t = torch.linspace(0.05, 0.95, len(x0), dtype=DT)
    if steps is None:
        abar = torch.exp(-(0.1 * t + (20.0 - 0.1) * t**2 / 2))
    else:
        t = torch.arange(50, 1000, 110, dtype=DT) / (steps - 1)  # on the table's nodes
        abar = guided_diffusion_alpha_bar(steps)[torch.arange(50, 1000, 110)]
    close(process.alpha_bar(t), abar)
    x_t = process.mean(x0, eps, t)
    close(x_t, abar.sqrt()[:, None] * x0 + (1 - abar).sqrt()[:, None] * eps)
    # eps -> x0 -> eps, backward (decoding towards data)
    x0_hat = process.endpoint("eps", eps, x_t, t, "backward")
    close(x0_hat, x0, rtol=1e-10, atol=1e-10)
    close(process.eps("endpoint", x0_hat, x_t, t, "backward"), eps, rtol=1e-10, atol=1e-10)
    close(process.target("eps", x0, eps, x_t, t, "backward"), eps, rtol=1e-10, atol=1e-10)
    # forward the end is the noise itself
    close(process.target("x1", x0, eps, x_t, t, "forward"), eps)
    close(process.target("eps", x0, eps, x_t, t, "forward"), eps)
    # score = -eps / std, the score of N(sqrt(abar) x0, (1 - abar) I) at x_t
    score = process.score(eps, t)
    close(score, -eps / (1 - abar).sqrt()[:, None])
    close(score, -(x_t - abar.sqrt()[:, None] * x0) / (1 - abar)[:, None], rtol=1e-10, atol=1e-10)
    for direction, end in (("forward", eps), ("backward", x0)):
        for predict in [p for p in PREDICTIONS if p not in ("x0", "x1")]:
            y = process.target(predict, x0, eps, x_t, t, direction)
            close(process.endpoint(predict, y, x_t, t, direction), end, rtol=1e-9, atol=1e-9)
            close(process.eps(predict, y, x_t, t, direction), process.target("eps", x0, eps, x_t, t, direction),
                  rtol=1e-9, atol=1e-9)


# ---- selected from YAML ---------------------------------------------------------------------------

#: what a built-in process needs beyond its defaults on the 5-d Gaussian example.
YAML_OVERRIDES = {"spectral": ["process.dims=1"]}
QUICK = ["train.steps=4", "train.log_every=2", "train.eval_samples=64", "train.batch_size=32", "network.hidden=16",
         "sampler.steps=4", "train.progress=false", "train.checkpoint_every=4", "log.console=false"]


@pytest.mark.parametrize("kind", get_plugins().registry.owned_by("process")["process"])
def test_every_builtin_process_runs_from_yaml(kind: str, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    args = ["run", "plugin=bm", GAUSSIAN, f"process.kind={kind}", *YAML_OVERRIDES.get(kind, []), *QUICK,
            f"out={out}", "name=r"]
    assert main(args) == 0
    config = yaml.safe_load((out / "r" / "config.yaml").read_text())
    assert config["process"]["kind"] == kind
    records = [json.loads(line) for line in (out / "r" / "metrics.jsonl").open()]
    assert [r["step"] for r in records if "loss" in r] == [2, 4]
    assert all(math.isfinite(r["loss"]) for r in records if "loss" in r)


@pytest.mark.parametrize(("override", "message"), [
    ("process.kind=brownain", "unknown process 'brownain'; available: brownian, ") ,
    ("process.sigam=2", "unknown key 'sigam' (did you mean 'sigma'?) @ config.process"),
])
def test_misspelt_process_kind_or_parameter_is_one_clear_line(override: str, message: str, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    assert main(["run", "plugin=bm", GAUSSIAN, override, f"out={tmp_path}"]) == 2
    lines = [line.strip() for line in capsys.readouterr().err.splitlines() if "process" in line]
    assert len(lines) == 1 and message in lines[0]
    if "brownain" in override:
        assert lines[0].endswith("Did you mean 'brownian'? @ config.process")


def test_config_lists_the_process_section(capsys: pytest.CaptureFixture) -> None:
    assert main(["config", "plugin=bm"]) == 0
    assert "\nprocess:\n  kind: brownian\n  sigma: 1.0\n" in capsys.readouterr().out
