"""Exponential moving average of parameters; EMA weights are the ones used for sampling."""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """ema <- decay * ema + (1 - decay) * param after every optimiser step."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = module
        self.shadow = {k: p.detach().clone() for k, p in module.named_parameters()}
        # the parameter tensors keep their identity (optimisers update them in place), so the
        # pairing is built once rather than on every step
        params = dict(module.named_parameters())
        self._targets = list(self.shadow.values())
        self._sources = [params[k].detach() for k in self.shadow]

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_lerp_(self._targets, self._sources, 1.0 - self.decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.shadow) ^ set(state)
        if missing:
            raise KeyError(f"EMA state does not match the network: differing keys {sorted(missing)[:5]}")
        for k, t in state.items():
            self.shadow[k].copy_(t)

    def copy_to(self, target: nn.Module) -> None:
        """Load EMA weights into `target` (a module with the same parameter names)."""
        with torch.no_grad():
            for name, p in target.named_parameters():
                p.copy_(self.shadow[name])
