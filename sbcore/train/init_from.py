"""`train.init_from`: start a run from the networks of another run.

Methods that begin from a pretrained model (S-DSB's flow-matching initialisation, Tang et al. 2024,
Sec. 4.4; DDIB composing two diffusion runs) load the EMA weights of the other run's newest readable
checkpoint into their own networks before training. `train.init_map` maps this run's network names
to the other run's (e.g. ``{x0_to_x1: forward_drift}``); without it every network of this run is
looked up under its own name. Names, parameter keys and shapes must match, and a mismatch is one
line naming the parameter and both shapes.

A weights file (`sbcore import-weights`, e.g. guided-diffusion's ADM 256x256 model) starts every network of
this run named in `train.init_map` (default: all) from its one state dict: I2SB's initialisation (Liu et al.
2023, Sec. 4: its networks start from the unconditional ADM checkpoint). A learned-variance model
(`learn_sigma`) outputs 2C channels, eps then the variance weights; a network without it takes the eps
half of the final layer, as I2SB's loader does. Any other parameter whose shape does not fit is one line
naming it and both shapes.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from sbcore.errors import UserError
from sbcore.io import checkpoint as ckpt
from sbcore.network.weights import read_info, read_weights


def checkpoint_of(source: str | Path) -> Path:
    """The checkpoint file named by `source`: itself, or the newest readable one of a run folder."""
    path = Path(source)
    if path.is_file():
        return path
    if not path.is_dir():
        raise UserError(f"train.init_from: {path} is neither a run folder nor a checkpoint file")
    folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    found = ckpt.last_good(folder)
    if found is None:
        raise UserError(f"train.init_from: no readable checkpoint in {folder}")
    return found


def init_networks(networks: nn.ModuleDict, source: str | Path, mapping: dict[str, str] | None = None) -> Path:
    """Load the mapped networks (default: all, by name) from `source`'s EMA weights; returns the checkpoint used.

    Parameters come from the EMA copy, buffers from the model copy, as `sbcore.io.checkpoint.load_networks`.
    """
    path = checkpoint_of(source)
    if path.suffix == ".safetensors" and read_info(path) is not None:
        init_from_weights(networks, path, list(mapping or networks))
        return path
    tensors, _ = ckpt.load_weights(path)
    there = sorted({key[len("model/"):].split(".", 1)[0] for key in tensors if key.startswith("model/")})
    for target, name in (mapping or {n: n for n in networks}).items():
        if target not in networks:
            raise UserError(f"train.init_map: this run has no network {target!r}; its networks: {', '.join(networks)}")
        if name not in there:
            raise UserError(f"train.init_from: {path} has no network {name!r} for this run's {target!r}; "
                            f"it has {', '.join(there)} (map names with train.init_map)")
        net = networks[target]
        state = {}
        for key, here in net.state_dict().items():
            value = tensors.get(f"ema/{name}.{key}", tensors.get(f"model/{name}.{key}"))
            if value is None:
                raise UserError(f"train.init_from: {path} has no parameter {name}.{key} (this run's {target}.{key})")
            if value.shape != here.shape:
                raise UserError(f"train.init_from: parameter {target}.{key} has shape {tuple(here.shape)} in this run "
                                f"but {tuple(value.shape)} in {path}")
            state[key] = value
        unused = sorted(k for k in tensors if k.startswith(f"model/{name}.") and k[len(f"model/{name}."):] not in state)
        if unused:
            raise UserError(f"train.init_from: {path} holds {unused[0][len('model/'):]} that this run's {target} lacks "
                            "(a different network architecture)")
        net.load_state_dict(state)
    return path


#: the final output layer of the ADM UNet, whose learn_sigma half is dropped.
OUTPUT_LAYER = ("out.2.weight", "out.2.bias")


def init_from_weights(networks: nn.ModuleDict, path: Path, names: list[str]) -> None:
    """Load a weights file into each of `names` (checked first, so a misfit loads nothing)."""
    tensors, info = read_weights(path)
    states = {}
    for name in names:
        if name not in networks:
            raise UserError(f"train.init_map: this run has no network {name!r}; its networks: {', '.join(networks)}")
        here = networks[name].state_dict()
        state = dict(tensors)
        if info.params.get("learn_sigma") and not getattr(networks[name], "hparams", {}).get("learn_sigma", True):
            for key in OUTPUT_LAYER:
                if key in state and key in here and state[key].shape[0] == 2 * here[key].shape[0]:
                    state[key] = state[key][: here[key].shape[0]]
        missing, extra = sorted(set(here) - set(state)), sorted(set(state) - set(here))
        if missing or extra:
            raise UserError(f"train.init_from: {path} ({info.kind}) does not fit this run's {name}: "
                            + (f"it lacks {missing[0]}" if missing else f"it holds {extra[0]} that {name} lacks")
                            + f" ({len(missing)} missing, {len(extra)} unexpected parameters)")
        for key, value in here.items():
            if state[key].shape != value.shape:
                raise UserError(f"train.init_from: parameter {name}.{key} has shape {tuple(value.shape)} in this run "
                                f"but {tuple(state[key].shape)} in {path}")
        states[name] = state
    for name, state in states.items():
        networks[name].load_state_dict(state)
