"""Exponential moving average of parameters; EMA weights are the ones used for sampling."""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """ema <- decay * ema + (1 - decay) * param after every optimiser step.

    `active`: when set to a network name, only that network's shadow moves; the others keep the
    EMA weights they had (methods that train one of several networks per stage, e.g. DSBM).
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = module
        self.active: str | None = None
        self.shadow = {k: p.detach().clone() for k, p in module.named_parameters()}
        # the parameter tensors keep their identity (optimisers update them in place), so each
        # network's pairing is built once rather than on every step
        self._params = {k: p.detach() for k, p in module.named_parameters()}
        self._pairs: dict[str | None, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}

    def _pairs_of(self, active: str | None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        if active not in self._pairs:
            names = [k for k in self.shadow if active is None or k.startswith(f"{active}.")]
            self._pairs[active] = ([self.shadow[k] for k in names], [self._params[k] for k in names])
        return self._pairs[active]

    @torch.no_grad()
    def update(self) -> None:
        targets, sources = self._pairs_of(self.active)
        torch._foreach_lerp_(targets, sources, 1.0 - self.decay)

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
