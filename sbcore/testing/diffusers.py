"""Tiny diffusers folders made on the spot, for tests that use diffusers as the oracle (nothing downloaded)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sbcore.errors import require
from sbcore.testing.network import randomise

#: a UNet2DModel of two resolution levels and ~10k parameters: seconds on a CPU at 8x8.
TINY_UNET: dict[str, Any] = {
    "block_out_channels": [8, 16], "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
    "up_block_types": ["AttnUpBlock2D", "UpBlock2D"], "layers_per_block": 1, "norm_num_groups": 4,
    "attention_head_dim": 4,
}


def tiny_unet(channels: int = 1, size: int = 8, seed: int = 0, **config: Any) -> Any:
    """A seeded UNet2DModel of `TINY_UNET`'s architecture with weights spread by `randomise`
    (so every layer, and the time embedding, changes the output)."""
    diffusers = require("diffusers", "diffusers", "tiny diffusers models")
    torch.manual_seed(seed)
    unet = diffusers.UNet2DModel(sample_size=size, in_channels=channels, out_channels=channels,
                                 **{**TINY_UNET, **config})
    return randomise(unet, seed=seed).eval()


def ddpm_folder(folder: Path, channels: int = 1, size: int = 8, seed: int = 0, scale: float = 1.0,
                **scheduler: Any) -> Path:
    """A DDPM pipeline folder (``unet/``, ``scheduler/``, ``model_index.json``) written by diffusers'
    ``save_pretrained``: a tiny UNet whose output is scaled by `scale`, and a DDPMScheduler(**scheduler)."""
    diffusers = require("diffusers", "diffusers", "tiny diffusers models")
    unet = tiny_unet(channels, size, seed)
    with torch.no_grad():
        unet.conv_out.weight.mul_(scale)
        unet.conv_out.bias.mul_(scale)
    diffusers.DDPMPipeline(unet=unet, scheduler=diffusers.DDPMScheduler(**scheduler)).save_pretrained(folder)
    return folder


def vae_folder(folder: Path, channels: int = 1, latent_channels: int = 2, seed: int = 0) -> Path:
    """A tiny AutoencoderKL (one downsampling: H x W -> H/2 x W/2 codes) saved by ``save_pretrained``."""
    diffusers = require("diffusers", "diffusers", "tiny diffusers models")
    torch.manual_seed(seed)
    vae = diffusers.AutoencoderKL(
        in_channels=channels, out_channels=channels, latent_channels=latent_channels, block_out_channels=[8, 16],
        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2, layers_per_block=1,
        norm_num_groups=4, sample_size=16)
    vae.save_pretrained(folder)
    return folder
