"""Weights files: one network's state dict as safetensors, with what rebuilds it, and `sbcore import-weights`.

Weights from outside sbcore enter once, through `import_weights`: an official checkpoint (a ``.pt`` of
tensors, guided-diffusion's ADM models and classifiers) is read with ``torch.load(weights_only=True)``
-- the restricted unpickler that builds tensors and plain containers and refuses every other object, so
nothing in the file runs -- checked key for key and shape for shape against the network its options
describe, and written as safetensors. The file's metadata ``sbcore_network`` (JSON: the registry kind,
the component name and its constructor arguments) rebuilds the network: `train.init_from=FILE` starts
a run from it and `guidance.classifier=FILE` guides with it, with nothing unpickled at run time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from sbcore.errors import UserError
from sbcore.io.files import atomic_write
from sbcore.io.torch_files import load_pt
from sbcore.options import existing_path, option, suffix
from sbcore.registry import Registry

META_KEY = "sbcore_network"

#: guided-diffusion's released models by their README flags (MODEL_FLAGS / CLASSIFIER_FLAGS), as our options.
_ADM = dict(num_channels=256, num_res_blocks=2, attention_resolutions=[32, 16, 8], num_head_channels=64,
            resblock_updown=True, use_scale_shift_norm=True, learn_sigma=True)
_CLASSIFIER = dict(num_channels=128, num_res_blocks=2, attention_resolutions=[32, 16, 8], num_head_channels=64,
                   resblock_updown=True, use_scale_shift_norm=True, pool="attention")
PRESETS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "adm_256_uncond": ("network", "adm_unet", {**_ADM, "shape": [3, 256, 256]}),
    "adm_256_cond": ("network", "adm_unet", {**_ADM, "shape": [3, 256, 256], "class_cond": True}),
    "adm_512_cond": ("network", "adm_unet", {**_ADM, "shape": [3, 512, 512], "class_cond": True}),
    "adm_128_cond": ("network", "adm_unet", {**_ADM, "shape": [3, 128, 128], "class_cond": True,
                                             "num_head_channels": -1, "num_heads": 4}),
    "adm_64_cond": ("network", "adm_unet", {**_ADM, "shape": [3, 64, 64], "class_cond": True, "num_channels": 192,
                                            "num_res_blocks": 3, "use_new_attention_order": True}),
    "adm_256_classifier": ("classifier", "adm_classifier", {**_CLASSIFIER, "shape": [3, 256, 256]}),
    "adm_128_classifier": ("classifier", "adm_classifier", {**_CLASSIFIER, "shape": [3, 128, 128]}),
}
#: the registry kind of each network name a weights file can hold.
KINDS = {"adm_unet": "network", "adm_classifier": "classifier"}


@attrs.frozen
class WeightsInfo:
    """What rebuilds a weights file's network: `registry` kind ("network" or "classifier"), `kind`, `params`."""

    registry: str
    kind: str
    params: dict[str, Any]
    source: str = ""

    def build(self, registry: Registry) -> nn.Module:
        return registry.get(self.registry, self.kind)(**self.params)


def read_info(path: Path) -> WeightsInfo | None:
    """The rebuild information of a weights file, or None for a safetensors file without it (a checkpoint)."""
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise UserError(f"{path}: not a readable safetensors file ({str(exc).splitlines()[0]})") from None
    if META_KEY not in meta:
        return None
    info = json.loads(meta[META_KEY])
    return WeightsInfo(info["registry"], info["kind"], info["params"], meta.get("source", ""))


def read_weights(path: Path) -> tuple[dict[str, Tensor], WeightsInfo]:
    """A weights file's tensors and rebuild information; a file without it is refused in one line."""
    info = read_info(path)
    if info is None:
        raise UserError(f"{path}: a safetensors file without {META_KEY} metadata; weights files come from "
                        "sbcore import-weights")
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in list(f.keys())}, info


def load_network_file(path: Path, registry: Registry) -> tuple[nn.Module, WeightsInfo]:
    """The network of a weights file, built from its metadata and loaded (strict), in eval mode."""
    tensors, info = read_weights(path)
    net = info.build(registry)
    check_state(net.state_dict(), tensors, str(path))
    net.load_state_dict(tensors)
    return net.eval(), info


def check_state(want: dict[str, Tensor], got: dict[str, Any], where: str) -> None:
    """Key for key and shape for shape; the first differences, named, in one line."""
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing or extra:
        parts = ([f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''} ({len(missing)})"]
                 if missing else []) + ([f"unexpected {', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''} "
                                         f"({len(extra)})"] if extra else [])
        raise UserError(f"{where}: the state dict does not fit the network: {'; '.join(parts)}")
    for key, value in want.items():
        if tuple(got[key].shape) != tuple(value.shape):
            raise UserError(f"{where}: parameter {key} has shape {tuple(got[key].shape)}, the network's is "
                            f"{tuple(value.shape)}")


def write_weights(path: Path, tensors: dict[str, Tensor], info: WeightsInfo) -> None:
    """Write a weights file atomically (nothing half-written on failure)."""
    meta = {META_KEY: json.dumps({"registry": info.registry, "kind": info.kind, "params": info.params}),
            "source": info.source}
    data = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(data, str(tmp), metadata=meta))


def read_checkpoint(path: Path) -> dict[str, Tensor]:
    """A ``.pt`` state dict through the restricted unpickler; anything but named tensors is refused in one line."""
    try:
        loaded = load_pt(path)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if not isinstance(loaded, dict) or not loaded:
        raise UserError(f"{path}: expected a state dict (a mapping of names to tensors), got {type(loaded).__name__}")
    bad = [k for k, v in loaded.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise UserError(f"{path}: expected a state dict of tensors; entry {bad[0]!r} is "
                        f"{type(loaded[bad[0]]).__name__}")
    return loaded


@attrs.frozen(kw_only=True)
class ImportOptions:
    file: Path = option(help="the official checkpoint (.pt), read with torch.load(weights_only=True)",
                        validator=existing_path)
    out: Path = option(help="the weights file to write", validator=suffix(".safetensors"))
    preset: str | None = option(None, help=f"a released model's options: {', '.join(PRESETS)}",
                                validator=lambda _, __, v: _check_preset(v))
    kind: str | None = option(None, help=f"the network without a preset: {', '.join(KINDS)}",
                              validator=lambda _, __, v: _check_kind(v))
    network: dict[str, Any] = option(factory=dict, help="network options over the preset's: network.num_channels=64")

    def __attrs_post_init__(self) -> None:
        if (self.preset is None) == (self.kind is None):
            raise ValueError("give preset=NAME or kind=adm_unet|adm_classifier (with network.KEY=VALUE), one of them")


def _check_preset(value: str | None) -> None:
    if value is not None and value not in PRESETS:
        raise ValueError(f"expected one of {', '.join(PRESETS)}, got {value!r}")


def _check_kind(value: str | None) -> None:
    if value is not None and value not in KINDS:
        raise ValueError(f"expected one of {', '.join(KINDS)}, got {value!r}")


def import_weights(opts: ImportOptions, registry: Registry) -> WeightsInfo:
    """Convert `opts.file` into a weights file at `opts.out`; the network is built first, so bad options fail
    before the checkpoint is read, and a checkpoint that does not fit writes nothing."""
    if opts.preset is not None:
        kind_registry, kind, params = PRESETS[opts.preset]
    else:
        kind_registry, kind, params = KINDS[opts.kind], opts.kind, {}
    params = {**params, **opts.network}
    info = WeightsInfo(kind_registry, kind, params, Path(opts.file).name)
    try:
        with torch.device("meta"):  # the layout only: no memory for a 550M-parameter model
            net = info.build(registry)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{kind} with {params}: {exc}") from None
    tensors = read_checkpoint(Path(opts.file))
    check_state(net.state_dict(), tensors, str(opts.file))
    write_weights(Path(opts.out), tensors, info)
    return info
