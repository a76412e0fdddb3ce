"""A diffusers DDPM model folder as one DDIB domain: the pretrained UNet is the domain's eps-model.

A DDPM checkpoint trained with a linear-beta scheduler *is* a DDIB domain model (Su et al. 2023, Sec. 3:
any pretrained diffusion model of the domain encodes and decodes). The folder (``save_pretrained`` of a
``DDPMPipeline``: ``unet/`` + ``scheduler/``, or a model folder with ``scheduler_config.json`` beside its
``config.json``, as ``sbcore export format=diffusers`` writes) becomes an in-memory ``ddib`` run:
``process: vp`` from the scheduler config (`sbcore.process.diffusers_schedule`), ``network:
diffusers_unet`` with ``pretrained:`` the folder, ``method.predict`` from ``prediction_type``. The folder
holds no data, so the domain's samples are the model's own: noise decoded by the run's sampler.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor

from sb_ddib.method import DDIB, DDIBConfig
from sbcore.config import Config, DataConfig, DataSource, NetworkSpec, ProcessSpec, SamplerSpec
from sbcore.data.base import Source
from sbcore.errors import UserError
from sbcore.network.diffusers_unet import scheduler_config
from sbcore.plugins import get_plugins
from sbcore.process.diffusers_schedule import process_from_scheduler
from sbcore.run import Run, choose_device

#: steps of a diffusers domain's sampler: DDIM on training times from t = 1 to t = 0 (diffusers' DDIMScheduler
#: with set_alpha_to_one=False), an ODE solve that encoding inverts; ``steps=`` of translate overrides it.
STEPS = 50


def is_diffusers_folder(path: Path) -> bool:
    """A diffusers pipeline or model folder (not an sbcore run folder, which holds config.yaml)."""
    return not (path / "config.yaml").is_file() and (
        (path / "model_index.json").is_file() or (path / "unet" / "config.json").is_file()
        or (path / "config.json").is_file())


def unet_config(folder: Path) -> dict:
    for file in (folder / "unet" / "config.json", folder / "config.json"):
        if file.is_file():
            return json.loads(file.read_text())
    raise UserError(f"{folder}: no unet/config.json or config.json")


class ModelSamples(Source):
    """The domain's samples when only its model is known: N(0, I) decoded by the trainer's sampler."""

    def __init__(self, trainer: DDIB) -> None:
        self.trainer, self.shape = trainer, trainer.shape

    def __repr__(self) -> str:
        return f"ModelSamples({self.trainer.run.dir})"

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        from sbcore.metrics.translation import sample_in_chunks

        noise = torch.randn((n, *self.shape), generator=generator)
        return sample_in_chunks(self.trainer, "backward", noise, progress=False).x


def load_diffusers_domain(folder: Path, device: str = "auto") -> DDIB:
    """The ddib trainer of a diffusers folder, ready to encode (forward) and decode (backward)."""
    scheduler = scheduler_config(str(folder))
    if scheduler is None:
        raise UserError(f"{folder}: no scheduler config (scheduler/scheduler_config.json or scheduler_config.json); "
                        "DDIB needs the model's noise schedule")
    process, predict = process_from_scheduler(scheduler, f"{folder}: scheduler")
    unet = unet_config(folder)
    size = unet.get("sample_size")
    if not size:
        raise UserError(f"{folder}: the UNet config has no sample_size; the image size is unknown")
    size = list(size) if isinstance(size, (list, tuple)) else [size, size]
    shape = [int(unet.get("in_channels", 3)), *size]
    plugins = get_plugins()
    config = Config(
        plugin="ddib", name=folder.name, method=DDIBConfig(eps_skip=False, predict=predict),
        data=DataConfig(x0=DataSource("noise", {"shape": shape})),
        process=ProcessSpec("vp", {k: v for k, v in process.items() if k != "kind"}),
        network=NetworkSpec("diffusers_unet", {"pretrained": str(folder), "timesteps": process["steps"]}),
        sampler=SamplerSpec("ddim", {"steps": min(STEPS, process["steps"] - 1), "grid": "respaced"}),
    )
    run = Run(config=config, dir=folder, plugins=plugins, device=choose_device(device))
    trainer = DDIB(run)
    trainer.setup()
    trainer.networks.eval()
    trainer.sources["x0"] = ModelSamples(trainer)
    return trainer

