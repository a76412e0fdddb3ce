"""I2SB's bridge on its discrete time grid (Liu et al. 2023, "I2SB: Image-to-Image Schrödinger Bridge").

The reference SDE dX = sqrt(beta_t) dW between a clean x0 (t = 0) and a degraded x1 (t = 1) has the
Gaussian bridge marginal of the paper's eq. (11),

    x_k = mu_x0[k] x0 + mu_x1[k] x1 + std_sb[k] z,
    mu_x0 = std_bwd^2 / (std_fwd^2 + std_bwd^2),  mu_x1 = std_fwd^2 / (...),  std_sb^2 = std_fwd^2 std_bwd^2 / (...),

tabulated on `interval` discrete steps k = 0..N-1 (time t_k = k / (N-1)) with

    std_fwd[k]^2 = sum_{j <= k} beta_j,   std_bwd[k]^2 = sum_{j >= k} beta_j     (both sums include k).

Including step k on both sides is the reference code's choice; it keeps std_fwd[0] = std_bwd[N-1] > 0,
so the network label (x_k - x0) / std_fwd[k] (eq. (12)) is finite at every k, k = 0 included.

Per-step betas:

* ``reference_compat: true`` (default) reproduces the released code exactly: sqrt(beta) on
  linspace(sqrt(beta_min / 1000), sqrt(beta_max / N), N), of which only the first half is kept and
  mirrored. The peak per-step beta is therefore not beta_max / N (1.865e-4 for beta_max 0.3, N = 1000)
  and the start beta_min / 1000 = 1e-4 is not rescaled when N != 1000 (NVlabs/I2SB issue #11).
* ``reference_compat: false`` integrates the core's continuous symmetric schedule
  (`sbcore.process.ScheduledBridge`, schedule ``symmetric``) over N equal cells, so the same beta_min and
  beta_max give the same process for any N. At N = 1000 both modes agree to about 1e-3.

``ot_ode: true`` is the beta -> 0 limit of the paper (Sec. 3.3): x_k = mu_x0 x0 + mu_x1 x1 without noise,
and the posterior sampler keeps only the mean.

A continuous time t is read at its nearest step, k = round(t (N - 1)); networks see t = k / (N - 1)
(the reference feeds its ADM the noise level 1000 * linspace(1e-4, 1, N)[k], an affine map of k).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor

from sbcore.process.scheduled import GaussianBridge, ScheduledBridge


def reference_betas(interval: int, beta_min: float, beta_max: float) -> Tensor:
    """The released code's per-step betas (float64): half a squared linspace, mirrored."""
    if interval % 2:
        raise ValueError(f"interval must be even with reference_compat: true (the schedule mirrors its halves), "
                         f"got {interval}")
    full = torch.linspace((beta_min / 1000) ** 0.5, (beta_max / interval) ** 0.5, interval, dtype=torch.float64) ** 2
    half = full[: interval // 2]
    return torch.cat([half, half.flip(0)])


def integrated_betas(interval: int, beta_min: float, beta_max: float) -> Tensor:
    """Per-step betas of the continuous symmetric schedule integrated over N equal cells (float64)."""
    edges = torch.linspace(0.0, 1.0, interval + 1, dtype=torch.float64)
    return ScheduledBridge("symmetric", beta_min, beta_max).sigma2(edges).diff()


class I2SBBridge(GaussianBridge):
    """I2SB's bridge: tables std_fwd, std_bwd, mu_x0, mu_x1, std_sb over `interval` steps.

    beta_max: 0.3 for the paper's JPEG and super-resolution runs, 1.0 (with ot_ode) for blur and
    inpainting. beta_min: continuous start rate (0.1 = the code's 1e-4 per step at N = 1000).
    """

    def __init__(self, beta_max: float = 0.3, interval: int = 1000, reference_compat: bool = True,
                 ot_ode: bool = False, beta_min: float = 0.1) -> None:
        if interval < 2:
            raise ValueError(f"interval must be >= 2, got {interval}")
        if not (beta_max > 0 and 0 < beta_min <= beta_max):
            raise ValueError(f"need 0 < beta_min <= beta_max, got beta_min={beta_min}, beta_max={beta_max}")
        self.beta_max, self.beta_min, self.interval = float(beta_max), float(beta_min), int(interval)
        self.reference_compat, self.ot_ode = bool(reference_compat), bool(ot_ode)
        self.grid_size = self.interval
        make = reference_betas if reference_compat else integrated_betas
        self.betas = make(self.interval, self.beta_min, self.beta_max)
        fwd2 = self.betas.cumsum(0)
        bwd2 = self.betas.flip(0).cumsum(0).flip(0)
        total = fwd2 + bwd2
        self.tables = {
            "std_fwd": fwd2.sqrt(), "std_bwd": bwd2.sqrt(), "mu_x0": bwd2 / total, "mu_x1": fwd2 / total,
            "std_sb": (fwd2 * bwd2 / total).sqrt(), "rate": self.betas * (self.interval - 1),
        }

    def with_ot_ode(self, ot_ode: bool) -> I2SBBridge:
        """The same tables with the OT-ODE switch set: the posterior chain keeps only its mean when true.

        The network's label (x_k - x0) / std_fwd[k] and its inverse do not depend on the switch, so a network
        trained either way can be sampled either way (`I2SB.sample(..., ot_ode=...)`)."""
        twin = copy.copy(self)
        twin.ot_ode = bool(ot_ode)
        return twin

    def __repr__(self) -> str:
        return (f"I2SBBridge(beta_max={self.beta_max}, interval={self.interval}, reference_compat="
                f"{self.reference_compat}, ot_ode={self.ot_ode}, beta_min={self.beta_min})")

    # ---- discrete time -----------------------------------------------------------------------

    def index(self, t: Tensor | float) -> Tensor:
        """The step k = round(t (N - 1)) a time is read at."""
        t = torch.as_tensor(t)
        return (t.double() * (self.interval - 1)).round().long().clamp(0, self.interval - 1)

    def sample_time(self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
                    ) -> Tensor:
        """n training times k / (N - 1) with k uniform on {0, ..., N-1} (the reference draws k = 0 too)."""
        k = torch.randint(self.interval, (n,), generator=generator)
        return (k.double() / (self.interval - 1)).float().to(device)

    def table(self, name: str, t: Tensor | float) -> Tensor:
        """A tabulated quantity (std_fwd, std_bwd, mu_x0, mu_x1, std_sb, rate) at t, in t's dtype."""
        t = torch.as_tensor(t)
        values = self.tables[name].to(t.device)[self.index(t).to(t.device)]
        return values.to(t.dtype) if t.is_floating_point() else values

    def var_fwd(self, t: Tensor | float) -> Tensor:
        return self.table("std_fwd", t) ** 2

    def var_bwd(self, t: Tensor | float) -> Tensor:
        return self.table("std_bwd", t) ** 2

    def beta(self, t: Tensor | float) -> Tensor:
        """The per-step beta over the step length 1 / (N - 1): the drift rate of the generic samplers
        (the same for OT-ODE, whose mean path has this drift; `I2SBPosterior` uses the tables directly)."""
        return self.table("rate", t)

    def std_fwd(self, t: Tensor | float) -> Tensor:
        return self.table("std_fwd", t)

    def std_bwd(self, t: Tensor | float) -> Tensor:
        return self.table("std_bwd", t)

    def std_sb(self, t: Tensor | float) -> Tensor:
        return self.table("std_sb", t)

    # ---- the interface -----------------------------------------------------------------------

    def coefficients(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        c = torch.zeros_like(self.std_sb(t)) if self.ot_ode else self.std_sb(t)
        return self.table("mu_x0", t), self.table("mu_x1", t), c

    def diffusion(self, t: Tensor) -> Tensor:
        rate = self.table("rate", t)
        return torch.zeros_like(rate) if self.ot_ode else rate.sqrt()
