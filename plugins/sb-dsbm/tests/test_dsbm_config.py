"""The half-iteration schedule as a function of the global step, and the method's config checks."""

from __future__ import annotations

import pytest
import yaml
from sb_dsbm.schedule import Schedule

from sbcore.config import ConfigError, make_converter, merge, structure_config
from sbcore.plugins import create_plugins


@pytest.fixture(scope="module")
def plugins():
    return create_plugins()


def test_stages_follow_the_step():
    s = Schedule(("backward", "forward"), inner_iters=3, outer_iters=5, first_inner_iters=5, first_stages=2)
    # stages: 0 b [0,5) first, 1 f [5,10) first, 2 b [10,13), 3 f [13,16), 4 b [16,19)
    assert s.total_steps == 19
    expected = [(0, "backward", True)] * 5 + [(1, "forward", True)] * 5 + [(2, "backward", False)] * 3 \
        + [(3, "forward", False)] * 3 + [(4, "backward", False)] * 3
    got = [(st.index, st.direction, st.first) for st in map(s.stage_at, range(19))]
    assert got == expected
    assert (s.stage_at(13).start, s.stage_at(13).stop) == (13, 16)
    assert s.stage_at(19).index == 4 and s.stage_at(10**6).index == 4  # past the end: the last stage


def test_open_ended_schedule_and_single_direction():
    s = Schedule(("backward",), inner_iters=4)
    assert s.total_steps is None
    assert [s.stage_at(k).index for k in (0, 3, 4, 39, 40)] == [0, 0, 1, 9, 10]
    assert {s.stage_at(k).direction for k in range(40)} == {"backward"}


@pytest.mark.parametrize("kwargs, message", [
    ({"fb_sequence": ()}, "fb_sequence"),
    ({"fb_sequence": ("b",)}, "fb_sequence"),
    ({"inner_iters": 0}, "inner_iters"),
    ({"outer_iters": 0}, "outer_iters"),
    ({"first_stages": 0}, "first_stages"),
])
def test_schedule_rejects_bad_values(kwargs, message):
    args = {"fb_sequence": ("backward", "forward"), "inner_iters": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        Schedule(**args)


def _raw(method):
    return {"plugin": "dsbm", "data": {"x0": {"source": "gaussian", "dim": 2}, "x1": {"source": "gaussian", "dim": 2}},
            "method": method}


@pytest.mark.parametrize("method, message", [
    ({"variant": "rf", "sigma": 1.0}, "sigma: 0"),
    ({"variant": "ipf", "first_stages": 2}, "first_stages: 1"),
    ({"variant": "imf", "sigma": 0.0, "loss_weight": "bridge_variance"}, "bridge_variance"),
    ({"variant": "dsb"}, "variant"),
    ({"fb_sequence": ["sideways"]}, "fb_sequence"),
])
def test_config_errors_name_the_problem(plugins, method, message):
    with pytest.raises(ConfigError, match=message):
        structure_config(_raw(method), plugins.registry)


def test_config_derives_first_coupling_and_networks(plugins):
    sbcfm = structure_config(_raw({"variant": "sbcfm", "sigma": 0.5, "fb_sequence": ["backward"]}), plugins.registry)
    assert sbcfm.method.coupling.kind == "sinkhorn" and sbcfm.method.coupling.params == {"reg": 0.5}
    assert sbcfm.method.directions == ("backward",)
    imf = structure_config(_raw({"fb_sequence": ["forward", "backward", "forward"]}), plugins.registry)
    assert imf.method.coupling.kind == "independent" and imf.method.directions == ("forward", "backward")


def test_schedule_sets_train_steps_in_the_resolved_config(plugins, tmp_path):
    raw = _raw({"inner_iters": 30, "outer_iters": 3, "first_inner_iters": 50})
    config = structure_config(merge(raw, {"train": {"steps": 1000}}), plugins.registry)
    assert config.train.steps == 50 + 2 * 30
    path = tmp_path / "config.yaml"  # what the run folder keeps reloads to the same steps
    path.write_text(yaml.safe_dump(make_converter(plugins.registry).unstructure(config)))
    assert structure_config(yaml.safe_load(path.read_text()), plugins.registry) == config
