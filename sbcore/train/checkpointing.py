"""The checkpoint half of `sbcore.train.trainer.Trainer`: what a checkpoint holds and exact resume from it.

A checkpoint (`sbcore.io.checkpoint`: safetensors weights, a JSON training state, written atomically) holds
the ``model/`` and ``ema/`` weights, what rebuilds each network (its registered kind and hyper-parameters),
the config, and the training state that makes resume exact: step, optimiser, grad scaler, every random
stream (torch, the data generator, Python, NumPy, CUDA) and the method's own state (`extra_state`).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sbcore import __version__
from sbcore.errors import UserError
from sbcore.io import checkpoint as ckpt
from sbcore.log.plugin import truncate_metrics
from sbcore.run import Run


class Checkpointing:
    """Saving and resuming, mixed into `Trainer`, whose attributes (run, networks, ema, optimizer, scaler,
    data_generator, step) and hooks (prepare, extra_state, load_extra_state) it uses."""

    def _state(self) -> dict[str, Any]:
        rng: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "data": self.data_generator.get_state(),
            "python": _to_json(random.getstate()),
            "numpy": _to_json(np.random.get_state()),
        }
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {"step": self.step, "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                "rng": rng, "method": self.extra_state()}

    def save_checkpoint(self) -> Path | None:
        if not self.run.is_main:
            return None
        weights = {f"model/{k}": p for k, p in self.networks.state_dict().items()}
        weights.update({f"ema/{k}": p for k, p in self.ema.state_dict().items()})
        networks = {name: {"kind": registered_name(self.run, type(net)), "hparams": net.hparams}
                    for name, net in self.networks.items()}
        metadata = {"config": self.run.config_dict(), "step": self.step, "sbcore_version": __version__,
                    "plugin": self.run.config.plugin, "plugin_version": _plugin_version(self.run),
                    "networks": networks}
        folder = self.run.dir / "checkpoints"
        path = ckpt.save_checkpoint(folder, self.step, weights, metadata, self._state())
        ckpt.prune(folder, self.cfg.keep_checkpoints)
        self.run.call_hook("sbcore_checkpoint_saved", path=path)
        return path

    def check_resume(self) -> None:
        """Read the newest readable checkpoint and load its weights into the networks, writing nothing:
        the launcher calls it before the run folder is touched, so a checkpoint that does not fit the
        configured networks refuses the resume with config.yaml and metrics.jsonl as they were."""
        self.prepare()
        loaded = ckpt.load_latest(self.run.dir / "checkpoints")
        if loaded is not None:
            path, tensors, _, state, _ = loaded
            self._load_model_weights(path, tensors)
            missing = [k for k in ("step", "optimizer", "scaler", "rng", "method") if k not in (state or {})]
            if missing or not isinstance(state.get("step"), int):
                raise ckpt.CheckpointError(f"{ckpt.state_path(path)}: training state lacks {missing or ['step']}; "
                                           "resume from another checkpoint (delete this one) or start a new run")
        self._checked_resume = (loaded,)

    def _load_model_weights(self, path: Path, tensors: dict[str, Tensor]) -> None:
        """The ``model/`` weights into the networks; every ``ema/`` tensor has the shape of its parameter."""
        model = {k[6:]: t for k, t in tensors.items() if k.startswith("model/")}
        shapes = {k: tuple(t.shape) for k, t in self.networks.state_dict().items()}
        wrong = [k[4:] for k, t in tensors.items() if k.startswith("ema/") and shapes.get(k[4:]) != tuple(t.shape)]
        try:
            if wrong:
                raise KeyError(f"EMA weights {', '.join(wrong[:3])} have no parameter of their shape")
            self.networks.load_state_dict(model)
        except (RuntimeError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise ckpt.CheckpointError(f"{path}: its weights do not fit the configured networks ({first}); "
                                       "resume with the network section it was saved with") from None

    def _resume(self) -> None:
        folder = self.run.dir / "checkpoints"
        loaded = self._checked_resume[0] if self._checked_resume is not None else ckpt.load_latest(folder)
        if loaded is None:
            self.run.echo(f"resume: no checkpoint in {folder}; starting from step 0")
            if self.run.is_main:
                truncate_metrics(self.run.dir / "metrics.jsonl", 0)
            return
        path, tensors, _, state, problems = loaded
        for problem in problems:
            self.run.echo(f"resume: skipping a damaged checkpoint: {problem}")
        self._load_model_weights(path, tensors)
        self.ema.load_state_dict({k[4:]: t.to(self.device) for k, t in tensors.items() if k.startswith("ema/")})
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        self.data_generator.set_state(rng["data"])
        random.setstate(_from_json_python(rng["python"]))
        np.random.set_state(_from_json_numpy(rng["numpy"]))
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.load_extra_state(state["method"])
        self.step = int(state["step"])
        if self.run.is_main:
            truncate_metrics(self.run.dir / "metrics.jsonl", self.step)  # curves never run backwards
        self.run.echo(f"resumed from {path} at step {self.step}")


def registered_name(run: Run, cls: type) -> str:
    """The registry name of a network class, which a checkpoint records to rebuild it; refused when unregistered."""
    for name in run.registry.names("network"):
        if run.registry.get("network", name) is cls:
            return name
    raise UserError(f"network class {cls.__module__}.{cls.__name__} is not registered; add it in a plugin's "
                    "sbcore_register (registry.add('network', NAME, cls)) so checkpoints can rebuild it")


def _plugin_version(run: Run) -> str:
    for info in run.plugins.infos.values():
        owned = run.registry.owned_by(info.name).get("method", [])
        if run.config.plugin in owned:
            return info.version
    return "?"


def _to_json(state: Any) -> Any:
    if isinstance(state, np.ndarray):
        return {"__ndarray__": state.tolist(), "dtype": str(state.dtype)}
    if isinstance(state, (tuple, list)):
        return [_to_json(s) for s in state]
    return state


def _from_json_python(state: list) -> tuple:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


def _from_json_numpy(state: list) -> tuple:
    name, keys, pos, has_gauss, cached = state
    return (name, np.array(keys["__ndarray__"], dtype=keys["dtype"]), pos, has_gauss, cached)
