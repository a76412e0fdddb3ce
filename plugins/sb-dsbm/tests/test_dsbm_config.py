"""The `dsbm` method section: variant checks against the run's process, derived steps, directions."""

from __future__ import annotations

import pytest
import torch
import yaml

from sbcore.config import make_converter, structure_config
from sbcore.config_text import ConfigError, merge
from sbcore.plugins import create_plugins
from sbcore.run import Run


@pytest.fixture(scope="module")
def plugins():
    return create_plugins()


def _raw(method, process=None):
    raw = {"plugin": "dsbm", "data": {"x0": {"source": "gaussian", "dim": 2}, "x1": {"source": "gaussian", "dim": 2}},
           "method": method}
    return raw if process is None else {**raw, "process": process}


@pytest.mark.parametrize("method, message", [
    ({"variant": "ipf", "first_stages": 2}, "first_stages: 1"),
    ({"variant": "dsb"}, "variant"),
    ({"fb_sequence": ["sideways"]}, "fb_sequence"),
    ({"variant": "sbcfm", "coupling": "exact_ot"}, "leave method.coupling unset"),
    ({"sigma": 1.0}, "method.sigma moved to the process section"),
])
def test_config_errors_name_the_problem(plugins, method, message):
    with pytest.raises(ConfigError, match=message):
        structure_config(_raw(method), plugins.registry)


def _setup(plugins, tmp_path, method, process):
    config = structure_config(_raw(method, process), plugins.registry)
    trainer = plugins.registry.get("method", "dsbm")(Run(config=config, dir=tmp_path, plugins=plugins,
                                                        device=torch.device("cpu")))
    trainer.setup()
    return trainer


@pytest.mark.parametrize("method, process, message", [
    ({"variant": "rf"}, {"kind": "brownian", "sigma": 1.0}, "sigma: 0"),
    ({"variant": "ipf"}, {"kind": "brownian", "sigma": 0.0}, "sigma > 0"),
    ({"variant": "sbcfm"}, {"kind": "scheduled", "schedule": "symmetric"}, "sigma > 0"),
    ({"variant": "imf", "loss_weight": "bridge_variance"}, {"kind": "brownian", "sigma": 0.0}, "bridge_variance"),
])
def test_variant_checks_ask_the_process(plugins, tmp_path, method, process, message):
    with pytest.raises(ValueError, match=message):
        _setup(plugins, tmp_path, method, process)


def test_sbcfm_regulariser_is_two_sigma_squared_of_the_process(plugins, tmp_path):
    trainer = _setup(plugins, tmp_path, {"variant": "sbcfm", "fb_sequence": ["backward"]},
                     {"kind": "brownian", "sigma": 0.5})
    assert trainer.coupling.reg == 0.5 and trainer.directions == ("backward",)
    explicit = _setup(plugins, tmp_path, {"variant": "sbcfm", "sinkhorn_reg": 0.3}, {"kind": "brownian", "sigma": 0.5})
    assert explicit.coupling.reg == 0.3
    # constant beta is the Brownian reference with sigma^2 = beta
    scheduled = _setup(plugins, tmp_path, {"variant": "sbcfm"},
                       {"kind": "scheduled", "schedule": "constant", "beta_max": 0.25})
    assert scheduled.coupling.reg == pytest.approx(0.5)
    imf = structure_config(_raw({"fb_sequence": ["forward", "backward", "forward"]}), plugins.registry)
    assert imf.method.coupling.kind == "independent" and imf.method.directions == ("forward", "backward")


def test_schedule_sets_train_steps_in_the_resolved_config(plugins, tmp_path):
    raw = _raw({"inner_iters": 30, "outer_iters": 3, "first_inner_iters": 50})
    config = structure_config(raw, plugins.registry)
    assert config.train.steps == 50 + 2 * 30
    with pytest.raises(ConfigError, match=r"train.steps=1000 disagrees .* make 110; give method.outer_iters=null"):
        structure_config(merge(raw, {"train": {"steps": 1000}}), plugins.registry)
    path = tmp_path / "config.yaml"  # what the run folder keeps reloads to the same steps
    path.write_text(yaml.safe_dump(make_converter(plugins.registry).unstructure(config)))
    assert structure_config(yaml.safe_load(path.read_text()), plugins.registry) == config
