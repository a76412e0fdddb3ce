"""The `i2sb` method: bridge matching on the I2SB bridge, backward only (Liu et al. 2023, Alg. 1).

Pairs (x0 clean, x1 degraded) come from any paired source (``data.pairs``) or are made on the fly
from clean images (``data.x0``) by a corruption operator (``method.corruption``). Per micro-batch:
k ~ Uniform{0..N-1}, x_k from the bridge (eq. (11)), and the network regresses the label
(x_k - x0) / std_fwd[k] (eq. (12), ``predict: eps``) with a plain mean over every element.

Inpainting (a masked operator): the network's start x1 has fresh Gaussian noise in the hole, the loss
counts hole pixels only (prediction and label multiplied by the mask, then averaged over all pixels),
and sampling re-imposes the known pixels after every step (x1 itself under OT-ODE, x1 + std_sb z
otherwise). ``cond_x1`` shows the network x1 as extra input channels (`UNet(cond_channels=C)`).

``objective: regression`` is the plain baseline of the same network: one evaluation at t = 1 trained
with MSE to output x0 from x1 (NFE 1 whatever `steps` says).
"""

from __future__ import annotations

from typing import Any, Literal

import attrs
import torch
from torch import Tensor

from sb_i2sb.corruption import Corruption, fill_noise
from sb_i2sb.corruption.inpaint import Inpaint
from sb_i2sb.process import I2SBBridge
from sbcore.config import Component
from sbcore.metrics.translation import Evaluation, evaluate_translation
from sbcore.process.base import Direction, expand_t
from sbcore.sampler.base import Callback, Estimate, Trajectory
from sbcore.train.bridge_matching import NETWORK_NAME, BridgeMatching

NET = NETWORK_NAME["backward"]


@attrs.frozen
class CorruptionSpec(Component):
    """``method.corruption``: an operator by name (sr4x-pool, jpeg-10, inpaint-center, ...) and its options."""

    registry_kind = "corruption"


@attrs.frozen
class I2SBConfig:
    """The `method:` section of `i2sb`.

    corruption: makes x1 from the clean data.x0 on the fly; null: data.pairs holds (x0, x1).
    cond_x1: the network also sees the (noise-filled) x1 (the paper's --cond-x1).
    predict: eps, the paper's (x_k - x0) / std_fwd label; x0 / endpoint regress x0 itself.
    objective: bridge (I2SB) or regression (the one-step MSE baseline).
    end_fraction: the share of each batch drawn at the last step k = N - 1 instead of uniformly: the one
        network call of an NFE-1 restoration reads that step, which uniform k visits once in N draws (0: the
        paper's uniform k).
    """

    corruption: CorruptionSpec | None = None
    cond_x1: bool = False
    predict: Literal["eps", "x0", "endpoint"] = "eps"
    objective: Literal["bridge", "regression"] = "bridge"
    end_fraction: float = attrs.field(default=0.0, validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)])


class I2SB(BridgeMatching):
    """Restoration bridge from degraded x1 to clean x0."""

    Config = I2SBConfig
    default_example = "mnist-sr4x-pool.yaml"
    directions: tuple[Direction, ...] = ("backward",)

    def open_data(self, data: Any) -> dict[str, Any]:
        """``clean`` images that the operator degrades, or ``pairs`` (x0 clean, x1 degraded)."""
        registry = self.run.registry
        if self.method.corruption is not None:
            if data.x0 is None or data.x1 is not None:
                raise ValueError("method.corruption makes x1 from data.x0: give data.x0 (clean images) alone")
            return {"pairs": None, "clean": data.x0.build(registry)}
        if data.pairs is not None:
            return {"pairs": data.pairs.build(registry), "clean": None}
        raise ValueError("i2sb needs data.pairs (x0 clean, x1 degraded), or data.x0 with method.corruption")

    def setup(self) -> None:
        registry, config, m = self.run.registry, self.run.config, self.method
        self.corruption: Corruption | None = m.corruption.build(registry) if m.corruption else None
        self.sources = None
        opened = self.open_data(config.data)
        self.pairs, self.clean = opened["pairs"], opened["clean"]
        shape = tuple((self.clean or self.pairs).shape)
        if self.corruption is not None:
            self.corruption.check(torch.zeros(1, *shape))
        #: evaluation compares every restoration with its clean partner
        self.paired = True
        self.shape = shape
        self.process = config.process.build(registry)
        if not isinstance(self.process, I2SBBridge):
            raise ValueError(f"process: i2sb trains on the I2SB bridge; write process: {{kind: i2sb, beta_max: 0.3}}, "
                             f"got kind {config.process.kind!r}")
        self.sampler = config.sampler.build(registry)
        extra = {}
        if m.cond_x1:
            if "cond_channels" in config.network.params:
                raise ValueError("network.cond_channels is set by method.cond_x1; remove it from the network section")
            extra = {"cond_channels": shape[0]}
        try:
            network = config.network.build(registry, shape=shape, **extra)
        except TypeError as exc:
            raise ValueError(f"network {config.network.kind!r} cannot take method.cond_x1 ({exc})") from None
        self.add_network(NET, network)

    @property
    def masked(self) -> bool:
        return isinstance(self.corruption, Inpaint)

    # ---- data ----------------------------------------------------------------------------------

    def draw(self, side: str, n: int, generator: torch.Generator) -> Tensor:
        """Two draws with equally seeded generators give the two sides of the same pairs."""
        if self.pairs is not None:
            return super().draw(side, n, generator)
        clean = self.clean.sample(n, generator)
        return clean if side == "x0" else self.corruption(clean, generator).x1

    def draw_batch(self, n: int) -> tuple[Tensor, Tensor, Tensor | None]:
        """(x0, x1, mask or None) on the device."""
        if self.pairs is not None:
            x0, x1 = self.pairs.sample_pairs(n, self.data_generator)
            mask = None
        else:
            x0 = self.clean.sample(n, self.data_generator)
            corrupted = self.corruption(x0, self.data_generator)
            x1, mask = corrupted.x1, corrupted.mask
        return x0.to(self.device), x1.to(self.device), None if mask is None else mask.to(self.device)

    def network_input(self, x1: Tensor, mask: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
        """The start of the chain (hole filled with noise) and the network's conditioning."""
        start = x1 if mask is None else fill_noise(x1, mask, torch.randn_like(x1))
        return start, ({"cond": start} if self.method.cond_x1 else {})

    # ---- training ------------------------------------------------------------------------------

    def training_loss(self, batch_size: int) -> Tensor:
        x0, x1, mask = self.draw_batch(batch_size)
        x1, cond = self.network_input(x1, mask)
        net = self.networks[NET]
        if self.method.objective == "regression":
            pred, label = net(x1, torch.ones(batch_size, device=self.device), **cond), x0
        else:
            t = self.process.sample_time(batch_size, device=self.device)
            t[: round(self.method.end_fraction * batch_size)] = 1.0
            x_t = self.process.sample_bridge(x0, x1, t)
            label = self.process.target(self.method.predict, x0, x1, x_t, t, "backward")
            pred = net(x_t, t, **cond)
        if mask is not None:
            pred, label = pred * mask, label * mask
        return (pred - label).float().pow(2).mean()

    # ---- sampling ------------------------------------------------------------------------------

    def projection(self, x1: Tensor, mask: Tensor, process: I2SBBridge) -> Callback:
        """Re-impose the known pixels of x1 at the step's time (noised by std_sb unless OT-ODE)."""

        def project(k: int, x: Tensor, t: Tensor, estimate: Estimate | None) -> Tensor:
            known = x1 if process.ot_ode else x1 + expand_t(process.std_sb(t), x1) * torch.randn_like(x1)
            return (1 - mask) * known + mask * x

        return project

    def sample(
        self, direction: Direction, x_start: Tensor, steps: int | None = None, return_path: bool = False,
        record: bool = False, cond: Tensor | None = None, callback: Callback | None = None,
        ot_ode: bool | None = None,
    ) -> Trajectory:
        """Restore degraded images x_start (inpainting: holes white, or any mask the operator reads off).

        ot_ode: sample with the OT-ODE chain (true: the posterior mean only, deterministic given the start) or
        the stochastic one (false), whatever the run trained with; None follows the sampler's ``ot_ode``, then
        the process's. (Inpainting still fills the hole of the start with fresh noise, as the reference does.)"""
        if direction != "backward":
            raise ValueError(f"i2sb restores x1 -> x0: sample direction 'backward', got {direction!r}")
        if ot_ode is None:
            ot_ode = getattr(self.sampler, "ot_ode", None)
        if ot_ode is not None and ot_ode != self.process.ot_ode:
            trained = self.process
            self.process = trained.with_ot_ode(ot_ode)
            try:
                return self.sample(direction, x_start, steps, return_path, record, cond, callback)
            finally:
                self.process = trained
        x1 = x_start.to(self.device)
        mask = self.corruption.mask_of(x1) if self.masked else None
        start, own = self.network_input(x1, mask)
        cond = cond.to(self.device) if cond is not None else own.get("cond")
        steps_callback = callback
        if mask is not None:
            project = self.projection(x1, mask, self.process)

            def steps_callback(k: int, x: Tensor, t: Tensor, estimate: Estimate | None) -> Tensor:
                x = project(k, x, t, estimate)
                replaced = callback(k, x, t, estimate) if callback is not None else None
                return x if replaced is None else replaced

        if self.method.objective == "regression":
            return self._regress(start, cond, return_path, record, steps_callback)
        return super().sample(direction, start, steps, return_path, record, cond, steps_callback)

    @torch.no_grad()
    def _regress(self, start: Tensor, cond: Tensor | None, return_path: bool, record: bool,
                 callback: Callback | None) -> Trajectory:
        t = torch.ones(start.shape[0], device=self.device)
        net = self.networks[NET]
        x = net(start, t) if cond is None else net(start, t, cond=cond)
        prediction = x
        if callback is not None:
            replaced = callback(0, x, torch.zeros_like(t), None)
            x = x if replaced is None else replaced
        return Trajectory(x, torch.stack([start, x]) if return_path else None, nfe=1,
                          predictions=prediction[None] if record else None)

    def evaluate(self) -> Evaluation:
        return evaluate_translation(self)
