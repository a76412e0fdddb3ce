"""Initialising S-DSB from a pretrained model (`sb_sdsb.init`): the FM velocity and a VP model's eps converted
to every parameterisation, checked on Gaussian data against closed forms; both initialisations end to end."""

from __future__ import annotations

import json

import pytest
import torch
from sb_sdsb.chain import next_mean
from sb_sdsb.init import from_velocity, velocity_from_eps, vp_time
from sb_sdsb.method import SDSB

from sbcore.config import structure_config
from sbcore.io import checkpoint as ckpt
from sbcore.launch.local import run_local
from sbcore.plugins import create_plugins
from sbcore.process.vp import VPDiffusion
from sbcore.run import Run

M, S = torch.tensor([0.7, -0.4], dtype=torch.float64), 0.5  # data x1 ~ N(M, S^2 I); prior z ~ N(0, I)
N = 4


def exact(x: torch.Tensor, tau: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """E[x1 | x_tau = x] and E[z | x_tau = x] for x_tau = (1 - tau) z + tau x1, z and x1 independent Gaussians."""
    tau = tau[:, None]
    var = (1 - tau) ** 2 + tau**2 * S**2
    centred = x - tau * M
    return M + tau * S**2 / var * centred, (1 - tau) / var * centred


def points(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=g, dtype=torch.float64), 0.05 + 0.9 * torch.rand(n, generator=g,
                                                                                         dtype=torch.float64)


def test_fm_velocity_converts_to_each_parameterisation():
    """With the exact FM velocity v = E[x1 - z | x]: the endpoint conversion is E[x1 | x], and the chain's next
    mean is the same Euler step whichever parameterisation carries it."""
    x, tau = points()
    x1_hat, z_hat = exact(x, tau)
    v = x1_hat - z_hat
    torch.testing.assert_close(from_velocity("endpoint", v, x, tau, tau + 1 / N), x1_hat)
    torch.testing.assert_close(from_velocity("velocity", v, x, tau, tau + 1 / N), v)
    step = x + v / N
    torch.testing.assert_close(from_velocity("mean", v, x, tau, tau + 1 / N), step)
    for kind in ("velocity", "endpoint", "mean"):
        out = from_velocity(kind, v, x, tau, tau + 1 / N)
        torch.testing.assert_close(next_mean(kind, out, x, tau, tau + 1 / N), step)
    with pytest.raises(ValueError, match="output kind"):
        from_velocity("eps", v, x, tau, tau)


@pytest.mark.parametrize("process", [VPDiffusion(), VPDiffusion(steps=1000)], ids=["continuous", "ddpm-1000"])
@pytest.mark.parametrize("eps_skip", [False, True])
def test_vp_eps_of_gaussian_data_is_the_exact_fm_velocity(process, eps_skip):
    x, tau = points()
    eps = process.gaussian_eps(M, S)
    model = eps
    if eps_skip:  # a network trained with the skip outputs eps - b y
        def model(y, t):
            return eps(y, t) - process.coefficients(t)[1][:, None] * y
    x1_hat, z_hat = exact(x, tau)
    torch.testing.assert_close(velocity_from_eps(model, process, x, tau, eps_skip), x1_hat - z_hat,
                               atol=1e-9, rtol=1e-7)


def test_vp_time_inverts_alpha_bar_and_clamps():
    process = VPDiffusion(steps=100)
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    torch.testing.assert_close(vp_time(process, process.alpha_bar(t)), t, atol=1e-12, rtol=0)
    assert float(vp_time(process, torch.tensor([0.0], dtype=torch.float64))) == pytest.approx(1.0)
    assert float(vp_time(process, torch.tensor([1.0], dtype=torch.float64))) == pytest.approx(0.0, abs=1e-12)


# ---- end to end ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plugins():
    return create_plugins()


def sdsb_config(tmp_path, name, method, network, **top):
    return {
        "plugin": "sdsb", "name": name, "out": str(tmp_path / "runs"), "seed": 2,
        "data": {"x0": {"source": "gaussian", "dim": 2}, "x1": {"source": "toy2d", "name": "checkerboard:8"}},
        "method": {"gamma": "linear_1e-3_1e-2", "training_timesteps": N, "inference_timesteps": N, "epochs": 3,
                   "steps_per_epoch": 3, "cache_size": 32, "refresh_every": 2, "cache_chunk": 16, **method},
        "network": network,
        "train": {"batch_size": 8, "lr": 1e-3, "ema_decay": 0.0, "grad_clip": None, "log_every": 1, "eval_samples": 16,
                  "progress": False, "threads": 1},
        "log": {"console": False},
        "eval": {"metrics": ["w2"]},
        **top,
    }


def finished(run_dir) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert max(r.get("step", 0) for r in rows) == 6 and len(losses) == 6  # 2 epochs of 3 steps
    assert all(torch.isfinite(torch.tensor(losses)))
    return rows


RESMLP = {"kind": "resmlp", "hidden": 16, "blocks": 1, "steps": N}


@pytest.fixture(scope="module")
def fm_run(tmp_path_factory, plugins):
    """A tiny flow-matching run (`bm`, sigma 0, velocity) from the Gaussian prior to the checkerboard."""
    out = tmp_path_factory.mktemp("fm")
    fm = {"plugin": "bm", "name": "fm", "out": str(out), "seed": 1,
          "data": {"x0": {"source": "gaussian", "dim": 2}, "x1": {"source": "toy2d", "name": "checkerboard:8"}},
          "process": {"kind": "brownian", "sigma": 0.0}, "network": RESMLP,
          "method": {"directions": ["forward"], "predict": "velocity", "loss_reduction": "mean", "t_epsilon": 0.0},
          "train": {"steps": 5, "batch_size": 16, "progress": False, "threads": 1, "ema_decay": 0.0,
                    "eval_samples": 16},
          "sampler": {"kind": "euler", "steps": N}, "log": {"console": False}, "eval": {"metrics": ["w2"]}}
    run_local(structure_config(fm, plugins.registry), None, plugins)
    return out / "fm"


@pytest.mark.parametrize("reparam", ["term", None])
def test_tr_and_s_dsb_start_from_a_flow_matching_run(tmp_path, plugins, fm_run, reparam):
    """A `bm` velocity run loaded into TR-DSB (endpoint) or S-DSB (next mean) as x0_to_x1: before any S-DSB step
    its chain step is the FM network's Euler step, and training runs from there."""
    network = RESMLP
    fm_net = ckpt.load_networks(ckpt.list_checkpoints(fm_run / "checkpoints")[-1], plugins.registry)["forward_drift"]
    raw = sdsb_config(tmp_path, f"init-{reparam}", {"reparam": reparam, "network_output": "velocity"}, network)
    raw["train"].update(init_from=str(fm_run), init_map={"x0_to_x1": "forward_drift"})
    native = structure_config({**raw, "method": {**raw["method"], "network_output": "native"}}, plugins.registry)
    with pytest.raises(ValueError, match="is a bm run predicting velocity.*network_output: velocity"):
        SDSB(Run(config=native, dir=tmp_path, plugins=plugins, device=torch.device("cpu"))).setup()
    config = structure_config(raw, plugins.registry)
    assert config.method.skip_first_epoch and config.train.steps == 6
    trainer = SDSB(Run(config=config, dir=tmp_path, plugins=plugins, device=torch.device("cpu")))
    trainer.prepare()
    x, tau = torch.randn(5, 2), torch.full((5,), 0.25)
    velocity = trainer.networks["x0_to_x1"](x, tau)
    torch.testing.assert_close(velocity, fm_net(x, tau))
    estimate = trainer.predictor("forward")(x, tau)
    assert estimate.predictor.predict == "velocity"
    kind = "endpoint" if reparam == "term" else "mean"
    converted = from_velocity(kind, estimate.output, x, tau, tau + 1 / N)
    torch.testing.assert_close(next_mean(kind, converted, x, tau, tau + 1 / N), x + velocity / N)
    run_local(config, None, plugins)
    finished(tmp_path / "runs" / f"init-{reparam}")


def test_s_dsb_starts_from_a_pretrained_vp_model(tmp_path, plugins):
    """A `ddib` eps-model of the data (VP, data at t = 0) becomes TR-DSB's prior -> data network."""
    network = {"kind": "residual_mlp", "channels": 16, "blocks": 1, "groups": 4, "time_scale": 99}
    ddib = {"plugin": "ddib", "name": "vp", "out": str(tmp_path / "runs"), "seed": 1,
            "data": {"x0": {"source": "toy2d", "name": "checkerboard:8"}}, "process": {"kind": "vp", "steps": 100},
            "network": network, "method": {"eps_skip": True},
            "train": {"steps": 5, "batch_size": 16, "progress": False, "threads": 1, "ema_decay": 0.0,
                      "eval_samples": 16},
            "sampler": {"kind": "ddim", "steps": 5}, "log": {"console": False}}
    run_local(structure_config(ddib, plugins.registry), None, plugins)
    raw = sdsb_config(tmp_path, "from-vp", {"reparam": "term", "network_output": "vp_eps", "eps_skip": True},
                      network, process={"kind": "vp", "steps": 100})
    raw["train"].update(init_from=str(tmp_path / "runs" / "vp"), init_map={"x0_to_x1": "eps"})
    mismatch = structure_config({**raw, "method": {**raw["method"], "eps_skip": False}}, plugins.registry)
    with pytest.raises(ValueError, match="set method.eps_skip: True"):
        SDSB(Run(config=mismatch, dir=tmp_path, plugins=plugins, device=torch.device("cpu"))).setup()
    config = structure_config(raw, plugins.registry)
    trainer = SDSB(Run(config=config, dir=tmp_path, plugins=plugins, device=torch.device("cpu")))
    trainer.prepare()
    x, tau = torch.randn(5, 2), torch.full((5,), 0.5)
    expected = velocity_from_eps(trainer.networks["x0_to_x1"], trainer.process, x, tau, eps_skip=True)
    torch.testing.assert_close(trainer.predictor("forward")(x, tau).output, expected)
    run_local(config, None, plugins)
    rows = finished(tmp_path / "runs" / "from-vp")
    assert any("eval/forward/w2" in r for r in rows)


def test_vp_eps_needs_a_vp_process(tmp_path, plugins):
    raw = sdsb_config(tmp_path, "bad", {"reparam": "term", "network_output": "vp_eps"}, RESMLP)
    trainer = SDSB(Run(config=structure_config(raw, plugins.registry), dir=tmp_path, plugins=plugins,
                       device=torch.device("cpu")))
    with pytest.raises(ValueError, match="network_output: vp_eps reads x0_to_x1 as a VP diffusion model"):
        trainer.setup()


def test_the_vp_example_config_is_valid(plugins):
    from pathlib import Path

    from sbcore.config_text import read_yaml_file

    path = Path(__file__).resolve().parents[3] / "examples" / "sdsb" / "gaussian_checkerboard_from_vp.yaml"
    config = structure_config(read_yaml_file(path), plugins.registry)
    assert config.method.network_output == "vp_eps" and config.method.skip_first_epoch
    assert config.train.steps == 3 * 150
