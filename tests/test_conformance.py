"""Every network, process, sampler and coupling the registry holds passes its conformance suite, and
deliberately broken components registered here are caught by the check they break."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from sbcore import hookimpl
from sbcore.coupling.base import Coupling, Pair
from sbcore.network.base import Network
from sbcore.network.embedding import time_like
from sbcore.network.mlp import MLP
from sbcore.plugins import create_plugins, get_plugins
from sbcore.process.brownian import BrownianBridge
from sbcore.process.scheduled import ScheduledBridge
from sbcore.process.spectral import SpectralProcess
from sbcore.process.vp import VPDiffusion
from sbcore.registry import Registry
from sbcore.sampler.integrators import EulerODE, HeunODE
from sbcore.testing import ConformanceError, CouplingSuite, NetworkSuite, ProcessSuite, SamplerSuite, Suite
from sbcore.testing.diffusers import TINY_UNET

torch.set_num_threads(1)
REGISTRY = get_plugins().registry


#: test cases per registered name: each a dict of suite keyword arguments (`params` for the constructor,
#: the rest suite options). A name without an entry is checked with its constructor defaults and must
#: build from them; several cases cover a component's variants.
NETWORKS: dict[str, list[dict[str, Any]]] = {
    "mlp": [dict(params={"hidden": 16, "layers": 2, "time_dim": 8}, shapes=[(3,), (1, 5, 5)])],
    "unet": [dict(params={"channels": 8, "channel_mults": (1, 2), "groups": 4}, shapes=[(1, 8, 8), (3, 7, 7)],
                  inert={"num_heads": "no attention level in this case (the next case has one)"}),
             dict(params={"channels": 8, "channel_mults": (1, 2), "groups": 4, "attention_levels": (1,),
                          "num_heads": 2, "dropout": 0.1}, shapes=[(1, 8, 8)])],
    "resmlp": [dict(params={"hidden": 16, "blocks": 2, "steps": 8}, shapes=[(2,), (1, 3, 3)])],
    "uvit": [dict(params={"dim": 16, "depth": 3, "heads": 2, "patch": 4}, shapes=[(1, 8, 8)])],
    "diffusers_unet": [dict(params={**TINY_UNET, "timesteps": 100}, shapes=[(1, 8, 8), (2, 4, 4)])],
    "adm_unet": [dict(params={"num_channels": 32, "channel_mult": (1, 1), "num_res_blocks": 1,
                              "attention_resolutions": (4,), "num_head_channels": 16, "resblock_updown": True,
                              "learn_sigma": True, "dropout": 0.1}, shapes=[(1, 8, 8)],
                      inert={"num_heads": "num_head_channels sets the heads", "num_heads_upsample": "likewise",
                             "num_classes": "class_cond is off", "conv_resample": "resblock_updown resamples"}),
                 dict(params={"num_channels": 32, "channel_mult": (1, 2), "num_res_blocks": 1,
                              "attention_resolutions": (8,), "num_heads": 2, "use_scale_shift_norm": False},
                      shapes=[(2, 8, 8)], inert={"num_classes": "class_cond is off"})],
}
PROCESSES: dict[str, list[dict[str, Any]]] = {
    "brownian": [{}, dict(params={"sigma": 0.0}, predictions=("drift", "endpoint", "velocity"))],
    "scheduled": [{}, dict(params={"schedule": "linear"}), dict(params={"schedule": "constant", "beta_max": 2.0})],
    # VP reaches x1 = eps only in the limit; the discrete schedule puts index 0 at sqrt(1 - beta_1) x0 as DDPM
    "vp": [dict(ends=("x0",)), dict(params={"steps": 100}, ends=()),
           dict(params={"schedule": "scaled_linear"}, ends=("x0",)),
           dict(params={"steps": 100, "schedule": "scaled_linear", "beta_min": 0.085, "beta_max": 1.2}, ends=())],
    "spectral": [dict(shape=(1, 4, 4)), dict(params={"dims": 1, "spectrum": "physical", "reference_size": 8},
                                             shape=(2, 8))],
    # I2SB's tables are read at round(t (N - 1)); index 0 already carries the first beta
    "i2sb": [dict(params={"interval": 100}, ends=(), continuous=False),
             dict(params={"interval": 100, "ot_ode": True}, ends=(), continuous=False)],
}
STEEP_VP = dict(process=VPDiffusion(), landing_process=VPDiffusion(beta_max=60.0), landing_atol=1e-5)
SAMPLERS: dict[str, list[dict[str, Any]]] = {
    "euler": [dict(params={"steps": 4})],
    "euler_maruyama": [dict(params={"steps": 4}), dict(params={"steps": 4, "last_step_noise": False}),
                       dict(params={"steps": 4}, predict="drift")],
    "heun": [dict(params={"steps": 4}), dict(params={"steps": 4}, predict="velocity")],
    # DDIM needs a deterministic path (c = 0). eps needs a noisy end: landing on a VP with abar(1) = e^-30 (x1 = eps
    # up to 3e-7 x0); reference_compat lands on the predicted end itself, so any VP will do
    "ddim": [dict(params={"steps": 4}, process=BrownianBridge(0.0)),
             dict(params={"steps": 4}, predict="eps", **STEEP_VP),
             dict(params={"steps": 4, "grid": "respaced", "reference_compat": True}, process=VPDiffusion(steps=100),
                  landing_process=VPDiffusion(steps=100), predict="eps")],
    "ddim_heun": [dict(params={"steps": 4}, predict="eps", **STEEP_VP),
                  dict(params={"steps": 4}, process=BrownianBridge(0.0), predict="velocity")],
    "dpm_solver_pp": [dict(params={"steps": 4}, process=BrownianBridge(0.0)),
                      dict(params={"steps": 4}, predict="eps", **STEEP_VP),
                      dict(params={"steps": 4, "grid": "respaced", "reference_compat": True},
                           process=VPDiffusion(steps=100), landing_process=VPDiffusion(steps=100), predict="eps"),
                      dict(params={"steps": 4, "grid": "logsnr", "reference_compat": True},
                           process=VPDiffusion(steps=100, schedule="cosine"),
                           landing_process=VPDiffusion(steps=100, schedule="cosine"), predict="endpoint")],
    # adaptive steps: landing within the tolerance; the Dirac end's drift is linear in t on the sigma = 0 bridge
    "adaptive_ode": [dict(params={"steps": 3}, landing_atol=1e-5),
                     dict(params={"steps": 2, "method": "bosh3", "rtol": 1e-6, "atol": 1e-6}, predict="drift",
                          landing_atol=1e-5)],
    "probability_flow": [dict(params={"steps": 2}, reverse=True, landing_atol=1e-5),
                         dict(params={"steps": 4, "solver": "heun"}, reverse=True, predict="velocity")],
    "exponential": [dict(params={"steps": 4}, process=SpectralProcess(dims=1), landing_process=SpectralProcess(dims=1),
                         shape=(1, 8))],
    "sdsb_chain": [dict(params={"steps": 4, "gamma": "constant_0"}, callback=False)],
    # I2SB's posterior steps need std_fwd(t) (the scheduled bridge has it) and only go backward
    "i2sb": [dict(params={"steps": 4, "grid_size": 100}, process=ScheduledBridge(), landing_process=ScheduledBridge(),
                  directions=("backward",))],
}
COUPLINGS: dict[str, list[dict[str, Any]]] = {
    "sinkhorn": [dict(params={"reg": 1.0}), dict(params={"reg": 0.5, "normalize_cost": True})],
}
SUITES: dict[str, tuple[type[Suite], dict[str, list[dict[str, Any]]]]] = {
    "network": (NetworkSuite, NETWORKS), "process": (ProcessSuite, PROCESSES),
    "sampler": (SamplerSuite, SAMPLERS), "coupling": (CouplingSuite, COUPLINGS),
}


def registered_cases(kind: str) -> list[Any]:
    suite, table = SUITES[kind]
    return [pytest.param(name, options, check, id=f"{name}-{i}-{check}")
            for name in REGISTRY.names(kind)
            for i, options in enumerate(table.get(name, [{}]))
            for check in suite.checks()]


@pytest.mark.parametrize(("name", "options", "check"), registered_cases("network"))
def test_every_network_conforms(name: str, options: dict[str, Any], check: str) -> None:
    NetworkSuite(name, **options).run(check)


@pytest.mark.parametrize(("name", "options", "check"), registered_cases("process"))
def test_every_process_conforms(name: str, options: dict[str, Any], check: str) -> None:
    ProcessSuite(name, **options).run(check)


@pytest.mark.parametrize(("name", "options", "check"), registered_cases("sampler"))
def test_every_sampler_conforms(name: str, options: dict[str, Any], check: str) -> None:
    SamplerSuite(name, **options).run(check)


@pytest.mark.parametrize(("name", "options", "check"), registered_cases("coupling"))
def test_every_coupling_conforms(name: str, options: dict[str, Any], check: str) -> None:
    CouplingSuite(name, **options).run(check)


def test_every_kind_has_registered_components() -> None:
    for kind in SUITES:
        assert REGISTRY.names(kind), kind


# ------------------------------------------------------------------------------------------------
# Broken components, registered through a plugin like any other
# ------------------------------------------------------------------------------------------------


class TimeBlind(MLP):
    """Ignores t: it cannot represent a time-dependent drift."""

    def forward(self, x: Tensor, t: Tensor, **cond: Any) -> Tensor:
        return super().forward(x, torch.zeros_like(time_like(t, x)), **cond)


class CondSwallower(MLP):
    """Accepts conditioning and silently drops it."""

    def forward(self, x: Tensor, t: Tensor, **cond: Any) -> Tensor:
        return super().forward(x, t)


class BatchMixer(MLP):
    """Centres the batch: one sample's output depends on the others."""

    def forward(self, x: Tensor, t: Tensor, **cond: Any) -> Tensor:
        return super().forward(x - x.mean(0, keepdim=True), t, **cond)


class NeedsWidth(Network):
    """A required constructor argument and no test parameters: the suite must say so."""

    def __init__(self, shape: tuple[int, ...], width: int) -> None:
        super().__init__()
        self.net = nn.Linear(math.prod(shape), width)


class WrongVelocity(BrownianBridge):
    """Inverts the velocity with the time elapsed instead of the time left."""

    def endpoint(self, predict: str, output: Tensor, x_t: Tensor, t: Tensor, direction: Any) -> Tensor:
        if predict == "velocity":
            return x_t + (1 - self.time_left(torch.as_tensor(t, dtype=x_t.dtype), direction)).reshape(-1, 1) * output
        return super().endpoint(predict, output, x_t, t, direction)


class LoudNoise(BrownianBridge):
    """Claims twice the diffusion its bridge marginals have."""

    def diffusion(self, t: Tensor) -> Tensor:
        return 2 * super().diffusion(t)


class BentMean(BrownianBridge):
    """Bends the mean path (a = 1 - t^2, b = t^2) but keeps the straight bridge's drift."""

    def coefficients(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        _, _, c = super().coefficients(t)
        t = torch.as_tensor(t)
        return 1 - t**2, t**2, c


class HeunCountingOne(HeunODE):
    """Two evaluations per step reported as one."""

    evals_per_step = 1


class IgnoresReplacement(EulerODE):
    """Calls the callback but keeps its own state."""

    def sample(self, model, x_start, grid, *, callback=None, return_path=False, record=False):
        def watch(k: int, x: Tensor, t: Tensor, estimate: Any) -> None:
            callback(k, x, t, estimate)

        return super().sample(model, x_start, grid, callback=watch if callback else None, return_path=return_path,
                              record=record)


class Jitter(Coupling):
    """Moves the x1 rows it was given."""

    def __call__(self, x0: Tensor, x1: Tensor | None = None) -> Pair:
        return Pair(x0, x1 + 1e-3)


class Unpaired(Coupling):
    """Claims to keep the dataset's pairs but shuffles x1."""

    needs_pairs = True

    def __call__(self, x0: Tensor, x1: Tensor | None = None) -> Pair:
        return Pair(x0, x1.flip(0))


BROKEN = [
    ("network", "time_blind", TimeBlind, NetworkSuite, dict(params={"hidden": 8}, shapes=[(3,)]), "time_dependence"),
    ("network", "cond_swallower", CondSwallower, NetworkSuite, dict(shapes=[(3,)]), "conditioning"),
    ("network", "batch_mixer", BatchMixer, NetworkSuite, dict(shapes=[(3,)]), "batch_independence"),
    ("process", "wrong_velocity", WrongVelocity, ProcessSuite, {}, "conversions_round_trip"),
    ("process", "loud_noise", LoudNoise, ProcessSuite, {}, "variance_follows_diffusion"),
    ("process", "bent_mean", BentMean, ProcessSuite, {}, "mean_follows_drift"),
    ("sampler", "heun_counting_one", HeunCountingOne, SamplerSuite, dict(params={"steps": 4}), "nfe"),
    ("sampler", "ignores_replacement", IgnoresReplacement, SamplerSuite, dict(params={"steps": 4}), "callback"),
    ("coupling", "jitter", Jitter, CouplingSuite, {}, "rows_from_inputs"),
    ("coupling", "unpaired", Unpaired, CouplingSuite, {}, "rows_from_inputs"),
]


class BrokenPlugin:
    @hookimpl
    def sbcore_register(self, registry: Registry) -> None:
        for kind, name, component, *_ in BROKEN:
            registry.add(kind, name, component)
        registry.add("network", "needs_width", NeedsWidth)


@pytest.fixture(scope="module")
def broken_registry() -> Registry:
    return create_plugins(extra=[BrokenPlugin()]).registry


@pytest.mark.parametrize(("kind", "name", "suite", "options", "check"),
                         [pytest.param(k, n, s, o, c, id=n) for k, n, _, s, o, c in BROKEN])
def test_a_broken_component_fails_the_check_it_breaks(broken_registry: Registry, kind: str, name: str,
                                                      suite: type[Suite], options: dict[str, Any], check: str) -> None:
    assert name in broken_registry.names(kind)
    instance = suite(name, registry=broken_registry, **options)
    instance.run("build")
    with pytest.raises(ConformanceError, match=rf"^{kind} '{name}', check {check}: "):
        instance.run(check)


def test_a_component_without_test_parameters_must_build_from_its_defaults(broken_registry: Registry) -> None:
    suite = NetworkSuite("needs_width", registry=broken_registry)
    message = (r"^network 'needs_width', check output_shape: NeedsWidth cannot be built with its constructor "
               r"defaults for any default shape \(\(3,\): TypeError: .*'width'; \(1, 8, 8\): .*\) - give it test "
               r"parameters \(network_conformance\('needs_width', params=...\) in a plugin's tests, the NETWORKS "
               r"table of the core's tests/test_conformance.py\)$")
    with pytest.raises(ConformanceError, match=message):
        suite.run("output_shape")


def test_a_plugin_suite_is_one_line_of_pytest() -> None:
    from sbcore.testing import process_conformance

    test = process_conformance(VPDiffusion, {"beta_max": 10.0}, ends=("x0",))
    marks = [m for m in test.pytestmark if m.name == "parametrize"]
    assert marks[0].args == ("check", ProcessSuite.checks())
    test("conversions_round_trip")
    assert TimeBlind((3,), hidden=8).hparams["hidden"] == 8  # an inherited constructor records its arguments
    with pytest.raises(ValueError, match="unknown process check 'nope'; available: build, ends"):
        test("nope")
