"""The ADM networks against numbers from the official guided-diffusion code (tests/fixtures/adm_*.safetensors,
made once outside this repository from tiny configurations of its UNetModel and EncoderUNetModel)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from sbcore.network.adm import ADMClassifier, ADMUNet
from sbcore.plugins import get_plugins

torch.set_num_threads(1)
FIXTURES = Path(__file__).parent / "fixtures"
CASES = ["adm_unet_cond", "adm_unet_plain", "adm_classifier_attention", "adm_classifier_adaptive"]


def read_fixture(name: str) -> tuple[dict, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    with safe_open(str(FIXTURES / f"{name}.safetensors"), "pt") as f:
        config = json.loads(f.metadata()["sbcore"])
        names = list(f.keys())
        tensors = {k: f.get_tensor(k) for k in names}
    state = {k[len("state/"):]: v for k, v in tensors.items() if k.startswith("state/")}
    return config, state, {k: v for k, v in tensors.items() if not k.startswith("state/")}


def build(config: dict) -> torch.nn.Module:
    registry = get_plugins().registry
    kind = "classifier" if config["kind"] == "adm_classifier" else "network"
    return registry.get(kind, config["kind"])(**config["params"])


@pytest.mark.parametrize("name", CASES)
def test_official_state_dict_matches_key_for_key_and_reproduces_the_outputs(name: str) -> None:
    config, state, io = read_fixture(name)
    net = build(config).double().eval()
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert ours == {k: tuple(v.shape) for k, v in state.items()}
    net.load_state_dict({k: v.double() for k, v in state.items()}, strict=True)
    # sbcore's t in [0, 1] maps onto the official timestep index by time_scale = 999 (sbcore.network.adm)
    t = io["timesteps"].double() / 999
    x = io["x"].double()
    with torch.no_grad():
        if isinstance(net, ADMUNet):
            label = io.get("y")
            out = net.forward_full(x, t, label)
            assert torch.equal(net(x, t, **({} if label is None else {"label": label})), out[:, : x.shape[1]])
        else:
            out = net(x, t)
    assert out.shape == io["out"].shape
    torch.testing.assert_close(out.float(), io["out"], rtol=1e-5, atol=1e-5)


def test_class_conditional_adm_needs_labels_in_range() -> None:
    net = ADMUNet((1, 8, 8), num_channels=32, channel_mult=(1,), attention_resolutions=(), class_cond=True,
                  num_classes=3)
    x, t = torch.zeros(2, 1, 8, 8), torch.rand(2)
    with pytest.raises(ValueError, match="pass label="):
        net(x, t)
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        net(x, t, label=torch.tensor([0, 3]))
    with pytest.raises(TypeError, match="but label"):
        net(x, t, label=torch.tensor([0, 1]), cond=x)


def test_adm_options_fail_at_construction() -> None:
    with pytest.raises(ValueError, match="no default for image size 20"):
        ADMUNet((3, 20, 20))
    with pytest.raises(ValueError, match="must divide the image size 16"):
        ADMUNet((3, 16, 16), num_channels=32, channel_mult=(1, 2), attention_resolutions=(3,))
    with pytest.raises(ValueError, match="pool 'attention' needs num_head_channels"):
        ADMClassifier((3, 16, 16), num_channels=32, channel_mult=(1, 2), attention_resolutions=(8,),
                      num_head_channels=-1)
    with pytest.raises(ValueError, match="num_head_channels \\(24\\) must divide"):
        ADMClassifier((3, 16, 16), num_channels=32, channel_mult=(1, 2), attention_resolutions=(8,),
                      num_head_channels=24)


def test_official_options_build_the_256_architectures() -> None:
    """guided-diffusion's 256x256 unconditional model (I2SB's initialisation) and 256x256 classifier, by their
    options (channel_mult by image size): the official constructors count 552,814,086 and 54,096,360 parameters."""
    with torch.device("meta"):  # the layout only: no memory, no initialisation cost
        net = ADMUNet((3, 256, 256), num_channels=256, num_res_blocks=2, attention_resolutions="32,16,8",
                      num_head_channels=64, resblock_updown=True, learn_sigma=True)
    state = net.state_dict()
    assert state["out.2.weight"].shape == (6, 256, 3, 3)
    assert state["input_blocks.0.0.weight"].shape == (256, 3, 3, 3)
    assert len(net.input_blocks) == 1 + 6 * 2 + 5 and len(net.output_blocks) == 6 * 3
    assert sum(p.numel() for p in net.parameters()) == 552_814_086
    with torch.device("meta"):
        classifier = ADMClassifier((3, 256, 256), num_channels=128, num_res_blocks=2, attention_resolutions="32,16,8",
                                   num_head_channels=64, pool="attention")
    assert sum(p.numel() for p in classifier.parameters()) == 54_096_360
    assert classifier.state_dict()["out.2.positional_embedding"].shape == (512, 8 * 8 + 1)
