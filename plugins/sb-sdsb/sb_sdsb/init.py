"""Starting S-DSB from a pretrained generative model (Tang et al. 2024, Sec. 4.4: "SGM/FM as the first
iteration"): the prior -> data network x0_to_x1 reads a flow-matching velocity or a VP diffusion model's
eps, converted in closed form to whatever the chain's target asks for (`SDSBConfig.network_output`).

Notation: z = x0 (prior side), x1 (data side), the chain's straight-line interpolant x_tau = (1 - tau) z + tau x1
on the clock tau in [0, 1] (tau = s / N at step s), and v = x1 - z its velocity. Given an estimate v_hat(x, tau)
of E[v | x_tau = x] (what flow matching on this interpolant learns), the estimates of both ends follow from
x = (1 - tau) z + tau x1 alone:

    x1_hat = x + (1 - tau) v_hat,          z_hat = x - tau v_hat.

So each S-DSB parameterisation of x0_to_x1 is a closed form of v_hat (`from_velocity`):

    FR-DSB   velocity        v_hat
    TR-DSB   endpoint        x1_hat = x + (1 - tau) v_hat
    S-DSB /  next mean       x + (tau' - tau) v_hat = x + v_hat / N on the uniform grid (tau' = tau + 1/N),
    DSB                      the Euler step of the same ODE, i.e. the noiseless chain's next mean

and every chain step then equals the velocity network's Euler step, whatever the target (`chain.next_mean`).
A loss on the converted output is the velocity loss reweighted: (1 - tau)^2 ||v_hat - v*||^2 for the endpoint,
||v_hat - v*||^2 / N^2 for the next mean, so training continues from the loaded weights with each target's own
regression.

A VP diffusion model (DDPM / a `ddib` run, Ho et al. 2020) gives eps_hat(y, t) with y = a x1 + b z,
a = sqrt(abar(t)), b = sqrt(1 - abar(t)), data at t = 0 (`sbcore.process.vp`). Its path is the same straight
line up to scale: y / (a + b) = (b z + a x1) / (a + b) is the interpolant at tau = a / (a + b). Hence for a chain
state x at clock tau, read the VP model where abar / (1 - abar) = (tau / (1 - tau))^2, i.e.

    abar(t) = tau^2 / (tau^2 + (1 - tau)^2),   y = (a + b) x,
    x1_hat = (y - b eps_hat) / a,   z_hat = eps_hat,   v_hat = x1_hat - z_hat   (`velocity_from_eps`),

t found by bisection on the process's abar (it is decreasing), clamped to [0, 1]: beyond the model's noisiest
level (tau -> 0) its last time is used, with that time's own a, b (the conversion stays exact for the model; the
x1 estimate is then 1/a-amplified, the error DDIM also has there). With exact eps of Gaussian data this is the
exact FM velocity of that data (a test checks it).
"""

from __future__ import annotations

import torch
from torch import Tensor

from sbcore.process.base import expand_t
from sbcore.process.vp import VPDiffusion


def from_velocity(output_kind: str, v: Tensor, x: Tensor, tau0: Tensor | float, tau1: Tensor | float) -> Tensor:
    """A velocity estimate at clock tau0 as the chain parameterisation `output_kind` (velocity, endpoint or mean
    for a step to tau1); module docstring."""
    tau0 = expand_t(torch.as_tensor(tau0, dtype=x.dtype, device=x.device), x)
    if output_kind == "velocity":
        return v
    if output_kind == "endpoint":
        return x + (1 - tau0) * v
    if output_kind == "mean":
        return x + (expand_t(torch.as_tensor(tau1, dtype=x.dtype, device=x.device), x) - tau0) * v
    raise ValueError(f"output kind must be velocity, endpoint or mean, got {output_kind!r}")


def vp_time(process: VPDiffusion, abar: Tensor, iterations: int = 60) -> Tensor:
    """The time t in [0, 1] with process.alpha_bar(t) = abar (bisection; abar is decreasing in t), clamped to [0, 1]."""
    lo, hi = torch.zeros_like(abar), torch.ones_like(abar)
    for _ in range(iterations):
        mid = (lo + hi) / 2
        later = process.alpha_bar(mid) > abar  # abar(mid) too large: t lies beyond mid
        lo, hi = torch.where(later, mid, lo), torch.where(later, hi, mid)
    return (lo + hi) / 2


class VelocityFromEps:
    """A VP eps-model (``eps(y, t)``, data at t = 0) seen as the FM velocity on the S-DSB clock tau (module
    docstring). ``eps_skip`` adds b(t) y to the model's output, as a `ddib` run with ``eps_skip: true`` does."""

    def __init__(self, eps: torch.nn.Module, process: VPDiffusion, eps_skip: bool) -> None:
        self.eps, self.process, self.eps_skip = eps, process, eps_skip

    def __call__(self, x: Tensor, tau: Tensor) -> Tensor:
        return velocity_from_eps(self.eps, self.process, x, tau, self.eps_skip)


def velocity_from_eps(eps, process: VPDiffusion, x: Tensor, tau: Tensor, eps_skip: bool = False) -> Tensor:
    """v_hat at chain states x (B, *D) and clocks tau (B,) from a VP eps-model (module docstring)."""
    tau = tau.to(torch.float64)
    abar = tau**2 / (tau**2 + (1 - tau) ** 2)
    t = vp_time(process, abar)
    a, b, _ = process.coefficients(t)
    t, a, b = (u.to(x.dtype) for u in (t, a, b))
    y = expand_t(a + b, x) * x
    eps_hat = eps(y, t)
    if eps_skip:
        eps_hat = eps_hat + expand_t(b, y) * y
    x1_hat = (y - expand_t(b, y) * eps_hat) / expand_t(a, y)
    return x1_hat - eps_hat
