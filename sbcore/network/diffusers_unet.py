"""diffusers' ``UNet2DModel`` as an sbcore network (optional extra ``diffusers``).

Time convention. sbcore networks take t in [0, 1]; ``UNet2DModel`` takes DDPM timestep indices
0..N-1. A discrete process (``vp`` with ``steps: N``) puts index i at t_i = i / (N - 1), so the
network calls the UNet at timestep t (N - 1), N = `timesteps`: a diffusers model trained on N
timesteps sees exactly the indices it was trained on, and a continuous t gets the same sinusoidal
embedding at a fractional index. `timesteps` defaults to the ``num_train_timesteps`` of a pretrained
folder's scheduler config, else diffusers' 1000.

A network is built from scratch from UNet2DModel's own config keys (``block_out_channels``,
``down_block_types``, ``layers_per_block``, ``norm_num_groups``, ...), or from ``pretrained:`` a
folder written by ``save_pretrained`` (a model folder, or a pipeline folder holding ``unet/``) or a
hub id (downloaded by diffusers where a network exists). Weights are read from safetensors only.
``in_channels``, ``out_channels`` and ``sample_size`` come from the data shape (C, H, W).

The recorded hparams are the full architecture (every UNet2DModel config key) and not the folder, so
a checkpoint re-creates the network without the folder (or the hub) and loads its own weights.
"""

from __future__ import annotations

import difflib
import inspect
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sbcore.errors import UserError, require
from sbcore.network.base import Network

#: the scheduler config beside a model folder (`sbcore export` writes it) or in a pipeline's scheduler/.
SCHEDULER_FILES = ("scheduler/scheduler_config.json", "scheduler_config.json")
#: config keys the data shape decides.
SHAPE_KEYS = ("in_channels", "out_channels", "sample_size")


def _diffusers() -> Any:
    return require("diffusers", "diffusers", "network kind diffusers_unet")


def model_folder(pretrained: str, sub: str) -> tuple[str, str | None]:
    """(path or hub id, subfolder) of one model of a pipeline: its folder `sub` (``unet``, ``vae``) or the
    folder itself when that is a model folder."""
    path = Path(pretrained)
    if path.is_dir():
        if (path / sub / "config.json").is_file():
            return str(path), sub
        if (path / "config.json").is_file():
            return str(path), None
        raise UserError(f"pretrained={pretrained}: neither a diffusers model folder (config.json) nor a pipeline "
                        f"folder ({sub}/config.json)")
    if path.exists() or pretrained.startswith((".", "/", "~")) or pretrained.count("/") != 1:
        raise UserError(f"pretrained={pretrained}: no such folder (and not a hub id of the form owner/name)")
    return pretrained, sub


def scheduler_config(pretrained: str) -> dict[str, Any] | None:
    """The scheduler config of a local model or pipeline folder, or None where it has none."""
    path = Path(pretrained)
    for name in SCHEDULER_FILES:
        if (path / name).is_file():
            return json.loads((path / name).read_text())
    return None


def load_unet(pretrained: str) -> Any:
    """UNet2DModel.from_pretrained from safetensors only (nothing unpickles); a hub id may download."""
    diffusers = _diffusers()
    where, subfolder = model_folder(pretrained, "unet")
    local = Path(where).is_dir()
    options = {"use_safetensors": True, "low_cpu_mem_usage": False, "local_files_only": local}
    tries = [subfolder] if local else [subfolder, None]  # a hub id: a pipeline's unet/, else a model repository
    problems = []
    for sub in tries:
        try:
            return diffusers.UNet2DModel.from_pretrained(where, subfolder=sub, **options)
        except (OSError, ValueError) as exc:
            problems.append(str(exc).splitlines()[0])
    raise UserError(f"pretrained={pretrained}: diffusers could not load a UNet2DModel with safetensors weights: "
                    f"{'; '.join(problems)}")


def architecture(config: dict[str, Any]) -> dict[str, Any]:
    """The constructor keys of a UNet2DModel config (diffusers' private ``_name`` keys dropped), JSON-ready."""
    return json.loads(json.dumps({k: v for k, v in dict(config).items() if not k.startswith("_")}))


class DiffusersUNet(Network):
    """``UNet2DModel`` on data of shape (C, H, W), called at timestep t (timesteps - 1); see the module doc.

    pretrained: a diffusers model or pipeline folder (or hub id) whose config and weights to start from.
    timesteps: N of the time convention (default: the pretrained scheduler's num_train_timesteps, or 1000).
    config: UNet2DModel's constructor keys (for ``pretrained``: only to check they agree with the folder's).
    """

    def __init__(self, shape: tuple[int, ...], pretrained: str | None = None, timesteps: int | None = None,
                 **config: Any) -> None:
        super().__init__()
        diffusers = _diffusers()
        shape = tuple(int(s) for s in shape)
        if len(shape) != 3:
            raise ValueError(f"diffusers_unet needs image data of shape (C, H, W), got {shape}")
        allowed = [p for p in inspect.signature(diffusers.UNet2DModel.__init__).parameters if p != "self"]
        for key in config:
            if key not in allowed or key in SHAPE_KEYS:
                close = difflib.get_close_matches(key, allowed, n=1)
                why = "is set from the data shape" if key in SHAPE_KEYS else \
                    f"is not a UNet2DModel key{f' (did you mean {close[0]!r}?)' if close else ''}"
                raise ValueError(f"diffusers_unet: {key!r} {why}")
        if pretrained is not None:
            self.unet = load_unet(pretrained)
            found = self.unet.config
            for key, value in config.items():
                if json.loads(json.dumps(value)) != json.loads(json.dumps(found[key])):
                    raise ValueError(f"diffusers_unet: {key}={value!r} but {pretrained} has {key}={found[key]!r}")
            if timesteps is None:
                timesteps = (scheduler_config(pretrained) or {}).get("num_train_timesteps")
        else:
            self.unet = diffusers.UNet2DModel(sample_size=list(shape[1:]), in_channels=shape[0],
                                              out_channels=shape[0], **config)
        got = (self.unet.config.in_channels, self.unet.config.out_channels)
        if got != (shape[0], shape[0]):
            raise ValueError(f"diffusers_unet: the UNet maps {got[0]} to {got[1]} channels but the data has {shape[0]}")
        self.timesteps = int(timesteps or 1000)
        if self.timesteps < 2:
            raise ValueError(f"timesteps must be >= 2, got {self.timesteps}")
        keys = {k: v for k, v in architecture(self.unet.config).items() if k not in SHAPE_KEYS}
        object.__setattr__(self, "_hparams", {"shape": list(shape), "timesteps": self.timesteps, **keys})

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        t = torch.as_tensor(t, device=x.device)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must be a scalar or of shape ({x.shape[0]},) for a batch of {x.shape[0]}, "
                             f"got {tuple(t.shape)}")
        return self.unet(x, t * (self.timesteps - 1), return_dict=False)[0]
