"""Inception FID/KID stay optional and offline: clear messages, never a download."""

from __future__ import annotations

import pytest
import torch

from sbcore.config_text import ConfigError
from sbcore.metrics.evaluate import build_metrics
from sbcore.metrics.inception import WEIGHTS_FILE, inception_weights, to_uint8_rgb


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("SBCORE_INCEPTION_WEIGHTS", str(tmp_path / "missing.pth"))

    def refuse(*args, **kwargs):
        raise AssertionError(f"a download was attempted: {args}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    return tmp_path


def test_missing_weights_say_where_they_were_looked_for(no_weights):
    with pytest.raises(RuntimeError) as err:
        inception_weights()
    text = str(err.value)
    assert str(no_weights / "missing.pth") in text
    assert str(no_weights / "torch" / "hub" / "checkpoints" / WEIGHTS_FILE) in text
    assert "does not download" in text and "feature_distance" in text


def test_local_weights_are_found_in_order(no_weights):
    given = no_weights / "given.pth"
    given.write_bytes(b"x")
    cached = no_weights / "torch" / "hub" / "checkpoints" / WEIGHTS_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert inception_weights(str(given)) == given
    assert inception_weights() == cached


@pytest.mark.parametrize("name", ["fid", "kid"])
def test_fid_and_kid_fail_at_set_up_with_a_clear_message(no_weights, plugins, name):
    with pytest.raises(ConfigError, match=r"sbcore\[fid\]|Inception weights for FID/KID not found"):
        build_metrics([name], plugins.registry)


def test_images_become_uint8_rgb():
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0]).view(1, 1, 2, 2)
    out = to_uint8_rgb(x)
    assert out.shape == (1, 3, 2, 2) and out.dtype == torch.uint8
    assert out[0, 2].flatten().tolist() == [0, 128, 255, 255]
