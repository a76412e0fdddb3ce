"""The core UNet's `cond_channels` (I2SB's cond_x1): the condition reaches the output, shapes are checked."""

from __future__ import annotations

import pytest
import torch

from sbcore.network.base import build_network
from sbcore.network.unet import UNet


def test_unet_conditions_on_a_concatenated_image():
    torch.manual_seed(0)
    net = UNet((1, 8, 8), channels=8, channel_mults=(1, 2), cond_channels=1)
    torch.nn.init.normal_(net.out[-1].weight)  # the zero-initialised output would hide any dependence
    x, t = torch.randn(2, 1, 8, 8), torch.rand(2)
    a, b = net(x, t, cond=torch.zeros(2, 1, 8, 8)), net(x, t, cond=torch.ones(2, 1, 8, 8))
    assert a.shape == (2, 1, 8, 8) and not torch.allclose(a, b)
    assert net.inp.in_channels == 2
    again = build_network(UNet, net.hparams)
    assert again.cond_channels == 1 and again.inp.in_channels == 2


def test_unet_cond_errors():
    net = UNet((1, 8, 8), channels=8, channel_mults=(1, 2), cond_channels=1)
    with pytest.raises(ValueError, match=r"UNet cond must have shape \(2, 1, 8, 8\) \(cond_channels=1\), got None"):
        net(torch.randn(2, 1, 8, 8), torch.rand(2))
    with pytest.raises(TypeError, match="UNet takes no conditioning inputs, got"):
        UNet((1, 8, 8), channels=8, channel_mults=(1, 2))(torch.randn(2, 1, 8, 8), torch.rand(2), cond=torch.zeros(1))
    with pytest.raises(ValueError, match="cond_channels must be >= 0"):
        UNet((1, 8, 8), channels=8, cond_channels=-1)
