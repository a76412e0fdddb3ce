"""Latent bridges: ``data.latent`` turns both sides into the latent codes of an autoencoder (a data-layer
transform, as S-DSB's AFHQ bridges between VAE latents; Rombach et al. 2022, Sec. 3).

``data.latent: {kind: diffusers_vae, pretrained: FOLDER_OR_HUB_ID, scale: ...}`` is diffusers'
``AutoencoderKL``: a code is ``scale * mean of q(z | x)`` (the posterior mean, so encoding is deterministic
and cacheable; ``scale`` defaults to the VAE's ``scaling_factor``), a picture is ``decode(z / scale)``.
Every finite (in-memory) source is encoded once and cached beside the runs (``OUT/.latents/KEY.safetensors``,
the key hashing the source's config, the codec's config and the VAE weights file's size and time), so
the training, test split and a second run of the same data read the cache. The bridge trains and samples
in latent space (networks are built on the latent shape); evaluation decodes inputs, outputs, data and
partners to pixels, so pictures and image metrics see pixels (`sbcore.metrics.translation`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sbcore.data.memory import MemorySource
from sbcore.errors import UserError, require
from sbcore.io.files import atomic_write

#: images encoded or decoded at once.
BATCH = 64


class DiffusersVAE:
    """diffusers' ``AutoencoderKL`` from a model folder (config.json), a pipeline folder (``vae/``) or a hub id."""

    def __init__(self, pretrained: str, scale: float | None = None) -> None:
        from sbcore.network.diffusers_unet import model_folder

        diffusers = require("diffusers", "diffusers", "data.latent kind diffusers_vae")
        where, subfolder = model_folder(pretrained, "vae")
        local = Path(where).is_dir()
        try:
            self.vae = diffusers.AutoencoderKL.from_pretrained(
                where, subfolder=subfolder, use_safetensors=True, low_cpu_mem_usage=False, local_files_only=local)
        except (OSError, ValueError) as exc:
            raise UserError(f"data.latent.pretrained={pretrained}: diffusers could not load an AutoencoderKL with "
                            f"safetensors weights: {str(exc).splitlines()[0]}") from None
        self.vae.eval().requires_grad_(False)
        self.pretrained = pretrained
        self.scale = float(scale if scale is not None else self.vae.config.scaling_factor)
        if not self.scale > 0:
            raise ValueError(f"data.latent.scale must be > 0, got {self.scale}")
        weights = next(iter(sorted((Path(where) / (subfolder or "")).glob("*.safetensors"))), None) if local else None
        stamp = [weights.stat().st_size, weights.stat().st_mtime_ns] if weights is not None else None
        self.identity = {"kind": "diffusers_vae", "pretrained": pretrained, "scale": self.scale,
                         "config": {k: v for k, v in dict(self.vae.config).items() if not k.startswith("_")},
                         "weights": stamp}

    def __repr__(self) -> str:
        return f"DiffusersVAE({self.pretrained!r}, scale={self.scale})"

    @property
    def channels(self) -> int:
        return int(self.vae.config.in_channels)

    def to(self, device: torch.device) -> DiffusersVAE:
        self.vae.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Pixels (N, C, H, W) in [-1, 1] -> codes (N, C', H/f, W/f), on x's device."""
        out = [self.vae.encode(part.to(self.device)).latent_dist.mean * self.scale for part in x.split(BATCH)]
        return torch.cat(out).to(x.device) if out else x

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        """Codes -> pixels, on z's device and in z's dtype."""
        out = [self.vae.decode(part.to(self.device, torch.float32) / self.scale).sample for part in z.split(BATCH)]
        return torch.cat(out).to(z.device, z.dtype) if out else z


def cache_key(spec: Any, codec: DiffusersVAE) -> str:
    text = json.dumps({"source": {"kind": spec.kind, **spec.params}, "codec": codec.identity}, sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def encode_source(source: Any, spec: Any, codec: DiffusersVAE, cache: Path, where: str) -> MemorySource:
    """The latent codes of every item of a finite source (and its pairs), its labels kept; read from `cache`
    when this source and codec were encoded before."""
    from safetensors.torch import load_file, save_file

    if not isinstance(source, MemorySource):
        raise UserError(f"{where}: data.latent encodes a finite source held in memory (arrays, image_folder, mnist, "
                        f"...); {type(source).__name__} draws afresh or streams")
    if len(source.shape) != 3 or source.shape[0] != codec.channels:
        raise UserError(f"{where}: data.latent's VAE takes {codec.channels}-channel images (C, H, W); the data has "
                        f"samples of shape {tuple(source.shape)}")
    file = cache / f"{cache_key(spec, codec)}.safetensors"
    if file.is_file():
        stored = load_file(str(file))
    else:
        stored = {"data": _encode_rows(source, source.data, codec)}
        if source.pair is not None:
            stored["pair"] = _encode_rows(source, source.pair, codec)
        atomic_write(file, lambda tmp: save_file({k: v.contiguous() for k, v in stored.items()}, tmp))
    return MemorySource(stored["data"], name=f"{source.name} in {codec!r}", labels=source.labels,
                        pair=stored.get("pair"))


def _encode_rows(source: MemorySource, rows: Tensor, codec: DiffusersVAE) -> Tensor:
    return torch.cat([codec.encode(source.decode(part)) for part in rows.split(BATCH)]).float().cpu()
