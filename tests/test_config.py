"""Config: YAML + overrides, strict types, error messages with key paths and suggestions."""

from __future__ import annotations

import pytest
import yaml

from sbcore.config import structure_config
from sbcore.config_text import ConfigError, merge, parse_overrides, read_yaml_file
from sbcore.run import Run


def structure(raw, plugins):
    return structure_config(raw, plugins.registry)


def errors_of(raw, plugins) -> str:
    with pytest.raises(ConfigError) as info:
        structure(raw, plugins)
    return "\n".join(info.value.lines)


def test_defaults_and_overrides(tiny_gaussian, plugins):
    raw = merge(tiny_gaussian, parse_overrides(["train.steps=500", "process.sigma=0.5", "train.lr=3e-4",
                                                 "network={kind: mlp, hidden: 16}"]))
    cfg = structure(raw, plugins)
    assert cfg.train.steps == 500
    assert cfg.process.params["sigma"] == 0.5
    assert cfg.train.lr == pytest.approx(3e-4)  # YAML 1.1 would read "3e-4" as a string
    assert cfg.network.kind == "mlp" and cfg.network.params == {"hidden": 16}
    assert cfg.data.x0.kind == "gaussian" and cfg.data.x0.params["mean"] == -1.0


def test_unknown_key_suggests_closest(tiny_gaussian, plugins):
    raw = merge(tiny_gaussian, parse_overrides(["train.lrr=0.1"]))
    assert "unknown key 'lrr' (did you mean 'lr'?) @ config.train" in errors_of(raw, plugins)


def test_optional_data_side_reports_the_sources_own_error(tiny_gaussian, plugins):
    raw = merge(tiny_gaussian, parse_overrides(["data.x0.meen=1.0", "data.x1=3"]))
    text = errors_of(raw, plugins)
    assert "unknown key 'meen' (did you mean 'mean'?) @ config.data.x0" in text
    assert "expected a mapping with a 'source' key, got int 3 @ config.data.x1" in text


def test_eval_metrics_are_validated_against_the_registry(tiny_gaussian, plugins):
    cfg = structure(merge(tiny_gaussian, {"eval": {"metrics": ["w2", {"kind": "mmd"}]}}), plugins)
    assert [m.kind for m in cfg.eval.metrics] == ["w2", "mmd"]
    text = errors_of(merge(tiny_gaussian, {"eval": {"metrics": ["w3"]}}), plugins)
    assert "unknown metric 'w3'" in text and "w2" in text


def test_unknown_top_level_and_method_key(tiny_gaussian, plugins):
    raw = merge(tiny_gaussian, {"epochs": 3, "method": {"predcit": "x1"}})
    text = errors_of(raw, plugins)
    assert "unknown key 'epochs'" in text and "@ config" in text
    assert "unknown key 'predcit' (did you mean 'predict'?) @ config.method" in text


def test_wrong_type_names_expected_and_given(tiny_gaussian, plugins):
    text = errors_of(merge(tiny_gaussian, parse_overrides(["train.batch_size=big"])), plugins)
    assert "expected an integer, got str 'big' @ config.train.batch_size" in text
    text = errors_of(merge(tiny_gaussian, parse_overrides(["train.steps=true"])), plugins)
    assert "expected an integer, got bool True @ config.train.steps" in text


def test_validator_message_is_kept(tiny_gaussian, plugins):
    text = errors_of(merge(tiny_gaussian, parse_overrides(["train.lr=-1.0"])), plugins)
    assert "'lr' must be > 0, got -1.0" in text


def test_component_params_are_validated(tiny_gaussian, plugins):
    text = errors_of(merge(tiny_gaussian, parse_overrides(["network.hiden=8"])), plugins)
    assert "unknown key 'hiden' (did you mean 'hidden'?) @ config.network" in text
    text = errors_of(merge(tiny_gaussian, parse_overrides(["network.kind=mpl"])), plugins)
    assert "unknown network 'mpl'" in text and "Did you mean 'mlp'?" in text


def test_unknown_plugin_lists_available(tiny_gaussian, plugins):
    text = errors_of({**tiny_gaussian, "plugin": "dsbn"}, plugins)
    assert "unknown plugin 'dsbn'" in text and "available: " in text and "bm" in text


def test_several_errors_reported_together(tiny_gaussian, plugins):
    raw = merge(tiny_gaussian, parse_overrides(["train.batch_size=big", "train.lrr=1.0", "process.sigma=x"]))
    text = errors_of(raw, plugins)
    assert "batch_size" in text and "lrr" in text and "config.process.sigma" in text


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
        read_yaml_file(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        read_yaml_file(bad)
    with pytest.raises(ConfigError, match="not of the form key.sub=value"):
        parse_overrides(["train.steps"])


def test_resolved_config_round_trips(tiny_gaussian, plugins, tmp_path):
    cfg = structure(tiny_gaussian, plugins)
    run = Run(config=cfg, dir=tmp_path, plugins=plugins, device=None)
    path = run.write_config()
    again = structure(yaml.safe_load(path.read_text()), plugins)
    assert again == cfg
