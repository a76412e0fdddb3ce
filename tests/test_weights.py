"""`sbcore import-weights` and weights files: official-style .pt state dicts in, safetensors out, nothing
unpickled beyond tensors; `train.init_from=FILE.safetensors` starts a run (I2SB's ADM initialisation)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import yaml

from sbcore.cli import main
from sbcore.config import structure_config
from sbcore.network.adm import ADMUNet
from sbcore.network.weights import load_network_file, read_weights
from sbcore.plugins import create_plugins
from sbcore.run import Run
from sbcore.testing.network import randomise

torch.set_num_threads(1)
TINY = {"shape": [1, 16, 16], "num_channels": 32, "channel_mult": [1, 1], "num_res_blocks": 1,
        "attention_resolutions": [8], "num_head_channels": 16, "resblock_updown": True}


@pytest.fixture(scope="module")
def plugins():
    return create_plugins()


def options(params: dict) -> list[str]:
    return [f"network.{k}={v}".replace(" ", "") for k, v in params.items()]


def official_checkpoint(path, **params) -> dict[str, torch.Tensor]:
    """An ADM state dict saved as guided-diffusion saves its models: torch.save of the state dict."""
    torch.manual_seed(0)
    state = randomise(ADMUNet(**{**TINY, **params})).state_dict()
    torch.save(state, path)
    return state


def test_import_round_trips_the_tensors_and_rebuilds_the_network(tmp_path, capsys):
    state = official_checkpoint(tmp_path / "model.pt", learn_sigma=True)
    out = tmp_path / "model.safetensors"
    assert main(["import-weights", str(tmp_path / "model.pt"), f"out={out}", "kind=adm_unet",
                 *options({**TINY, "learn_sigma": True})]) == 0
    assert "wrote" in capsys.readouterr().out
    tensors, info = read_weights(out)
    assert tensors.keys() == state.keys() and all(torch.equal(tensors[k], v) for k, v in state.items())
    assert (info.registry, info.kind, info.params["learn_sigma"]) == ("network", "adm_unet", True)
    net, _ = load_network_file(out, create_plugins().registry)
    reference = ADMUNet(**{**TINY, "learn_sigma": True})
    reference.load_state_dict(state)
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([0.1, 0.9])
    with torch.no_grad():
        assert torch.equal(net.forward_full(x, t), reference.eval().forward_full(x, t))
    # and out again: the weights file's tensors saved as a .pt import to the same file contents
    torch.save(tensors, tmp_path / "again.pt")
    assert main(["import-weights", str(tmp_path / "again.pt"), f"out={tmp_path / 'again.safetensors'}",
                 "kind=adm_unet", *options({**TINY, "learn_sigma": True})]) == 0
    again, _ = read_weights(tmp_path / "again.safetensors")
    assert all(torch.equal(again[k], v) for k, v in tensors.items())


class Marker:
    """Unpickling this would run os.system and create a file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_a_pickled_object_is_refused_in_one_line_and_nothing_runs(tmp_path, capsys):
    marker = tmp_path / "marker"
    torch.save({"input_blocks.0.0.weight": torch.zeros(1), "payload": Marker(str(marker))}, tmp_path / "evil.pt")
    out = tmp_path / "evil.safetensors"
    assert main(["import-weights", str(tmp_path / "evil.pt"), f"out={out}", "kind=adm_unet", *options(TINY)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "refused" in err and "system" in err and "nothing in it was run" in err
    assert not marker.exists() and not out.exists()


def test_a_checkpoint_that_does_not_fit_writes_nothing(tmp_path, capsys):
    official_checkpoint(tmp_path / "model.pt", learn_sigma=True)
    out = tmp_path / "model.safetensors"
    assert main(["import-weights", str(tmp_path / "model.pt"), f"out={out}", "kind=adm_unet", *options(TINY)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("parameter out.2.weight has shape (2, 32, 3, 3), the network's is (1, 32, 3, 3)")
    assert not out.exists()
    assert main(["import-weights", str(tmp_path / "model.pt"), f"out={out}", "preset=adm_256_uncond"]) == 2
    assert "the state dict does not fit the network" in capsys.readouterr().err
    assert main(["import-weights", str(tmp_path / "model.pt"), f"out={out}"]) == 2
    assert "give preset=NAME or kind=" in capsys.readouterr().err


def i2sb_config(tmp_path, init_from: str, **network) -> dict:
    g = torch.Generator().manual_seed(0)
    np.savez(tmp_path / "clean.npz", x=(torch.rand(16, 1, 16, 16, generator=g) * 2 - 1).numpy())
    return {
        "plugin": "i2sb", "name": "t", "out": str(tmp_path / "runs"), "seed": 1,
        "data": {"x0": {"source": "arrays", "path": str(tmp_path / "clean.npz")}},
        "method": {"corruption": "sr4x-pool"}, "process": {"kind": "i2sb", "beta_max": 0.3, "interval": 100},
        "network": {"kind": "adm_unet", **{k: v for k, v in TINY.items() if k != "shape"}, "time_scale": 100,
                    **network},
        "sampler": {"kind": "i2sb", "steps": 3},
        "train": {"steps": 1, "batch_size": 4, "eval_samples": 8, "progress": False, "threads": 1,
                  "init_from": init_from},
    }


def test_i2sb_started_from_an_imported_adm_file_holds_its_weights_at_step_0(tmp_path, plugins):
    from sb_i2sb.method import I2SB, NET

    state = official_checkpoint(tmp_path / "adm.pt", learn_sigma=True)
    weights = tmp_path / "adm.safetensors"
    assert main(["import-weights", str(tmp_path / "adm.pt"), f"out={weights}", "kind=adm_unet",
                 *options({**TINY, "learn_sigma": True})]) == 0
    config = structure_config(i2sb_config(tmp_path, str(weights)), plugins.registry)
    trainer = I2SB(Run(config=config, dir=tmp_path / "run", plugins=plugins, device=torch.device("cpu")))
    trainer.prepare()
    net = trainer.networks[NET]
    assert isinstance(net, ADMUNet) and not net.hparams["learn_sigma"]
    for key, value in net.state_dict().items():
        want = state[key][:1] if key.startswith("out.2.") else state[key]  # learn_sigma's variance half dropped
        assert torch.equal(value, want), key
    trainer._build_optimizer()  # the EMA copy starts from the same weights
    ema, model = trainer.ema.state_dict(), trainer.networks.state_dict()
    assert ema and all(torch.equal(value, model[key]) for key, value in ema.items())


def test_a_weights_file_that_does_not_fit_names_the_parameter(tmp_path, plugins, capsys):
    official_checkpoint(tmp_path / "adm.pt", learn_sigma=True)
    weights = tmp_path / "adm.safetensors"
    assert main(["import-weights", str(tmp_path / "adm.pt"), f"out={weights}", "kind=adm_unet",
                 *options({**TINY, "learn_sigma": True})]) == 0
    capsys.readouterr()
    config_path = tmp_path / "c.yaml"
    config_path.write_text(yaml.safe_dump(i2sb_config(tmp_path, str(weights), num_channels=64)))
    assert main(["run", str(config_path)]) != 0
    err = capsys.readouterr().err
    assert "train.init_from: parameter backward_drift.time_embed.0.weight has shape (256, 64) in this run but " \
           "(128, 32) in" in err
