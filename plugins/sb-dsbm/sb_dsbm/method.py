"""Diffusion Schrödinger Bridge Matching (Shi, De Bortoli, Campbell, Doucet, NeurIPS 2023) and its baselines.

DSBM is bridge matching applied over and over with alternating directions (Alg. 1). Half-iteration n
trains one drift network by bridge matching (the Markovian projection, eq. (8)) on endpoint pairs
produced by simulating the network of half-iteration n - 1 from real data (the reciprocal projection:
only endpoints are kept and the process's bridge refills the path). One method, `dsbm`, covers:

* ``imf``   DSBM-IMF: the first coupling is independent, pi_0 x pi_1 (iteration 1 = bridge matching);
* ``ipf``   DSBM-IPF: the first coupling is the reference Q_01 started at the data of the first
            network's target side, which reproduces the IPF / DSB iterates (Prop. 10);
* ``bm``    bridge matching alone: every half-iteration trains on the independent coupling;
* ``rf``    rectified flow with reflow (Liu et al. 2023): process sigma = 0, later couplings come from
            the previous network's ODE (`fb_sequence: [backward]` as in DSBM's Gaussian script);
* ``sbcfm`` SB-CFM / [SF]²M (Tong et al. 2024): every batch is re-paired by a minibatch Sinkhorn plan
            at reg 2 sigma^2 (the static SB of the minibatch); the drift is learned by bridge
            matching, i.e. the SDE form u_t + sigma^2/2 grad log p_t of SB-CFM's flow and score.

The half-iterations, the frozen teacher and the endpoint cache are the core's alternating training
(`sbcore.train.alternating`); this module only says which stages use a teacher and what the first
coupling is. The reference is the run's `process:` (dX = sigma dW for every variant but rf).
"""

from __future__ import annotations

from typing import Literal

import attrs
from torch import Tensor

from sb_dsbm.metrics import path_metrics
from sbcore.config import CouplingSpec
from sbcore.coupling.base import Coupling, Pair
from sbcore.metrics.gaussian_plan import gaussian_sb
from sbcore.metrics.translation import Evaluation, evaluate_translation
from sbcore.process.base import ENDS, ReferenceProcess
from sbcore.train.alternating import AlternatingBridgeMatching, AlternatingConfig, Stage

Variant = Literal["imf", "ipf", "bm", "rf", "sbcfm"]
#: variants whose later half-iterations train on pairs simulated by the previous network.
ITERATIVE = ("imf", "ipf", "rf")


class ReferenceCoupling(Coupling):
    """Pairs of the reference dX = sigma dW started at data: anchor "x0" gives (x0, x0 + sigma xi), "x1" gives
    (x1 + sigma xi, x1), with sigma the process's.

    DSBM-IPF starts from Q_01 (Shi et al. 2023, Sec. 4): the first backward network then learns the time
    reversal of Q started at pi_0, a denoising-diffusion-like model, and DSBM reproduces the IPF iterates
    (Prop. 10). Anchoring at x1 is the mirror image, for a schedule that starts with the forward network.
    """

    def __init__(self, process: ReferenceProcess, anchor: Literal["x0", "x1"] = "x0") -> None:
        scale = process.brownian_sigma
        if not (scale is not None and scale > 0):
            raise ValueError(f"a reference coupling needs the process dX = sigma dW with sigma > 0, got {process!r}")
        if anchor not in ("x0", "x1"):
            raise ValueError(f"anchor must be 'x0' or 'x1', got {anchor!r}")
        self.process, self.scale, self.anchor = process, float(scale), anchor

    def __repr__(self) -> str:
        return f"ReferenceCoupling({self.process!r}, anchor={self.anchor!r})"

    def __call__(self, x0: Tensor | None = None, x1: Tensor | None = None) -> Pair:
        data = x0 if self.anchor == "x0" else x1
        if data is None:
            raise ValueError(f"ReferenceCoupling(anchor={self.anchor!r}) needs the {self.anchor} batch, got None")
        moved = data + self.scale * self.process.noise_like(data)
        return Pair(data, moved) if self.anchor == "x0" else Pair(moved, data)


@attrs.frozen
class DSBMConfig(AlternatingConfig):
    """The `method:` section of `dsbm` (the alternating-training keys of `AlternatingConfig`, and):

    variant: imf | ipf | bm | rf | sbcfm (module docstring); rf needs process sigma 0, ipf and sbcfm sigma > 0.
    first_stages: 1 as DSBM's Gaussian script; 2 with imf trains both directions on independent pairs
        first, as DSBM's image trainer does.
    reset_optimizer: DSBM's Gaussian script builds a fresh Adam per half-iteration; the image trainer keeps it.
    loss_weight: uniform (the paper's eq. (10), Gaussian script) or bridge_variance (image code).
    sinkhorn_reg: Sinkhorn regulariser of sbcfm on the cost ||x0 - x1||^2; null means 2 sigma^2.
    """

    variant: Variant = "imf"
    sinkhorn_reg: float | None = None

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if self.variant == "ipf" and self.first_stages != 1:
            raise ValueError("variant ipf trains only its first half-iteration on the reference coupling: "
                             "first_stages: 1")
        if self.sinkhorn_reg is not None and not self.sinkhorn_reg > 0:
            raise ValueError(f"sinkhorn_reg must be > 0 or null, got {self.sinkhorn_reg}")
        if self.variant in ("ipf", "sbcfm") and self.coupling.kind != "independent":
            raise ValueError(f"variant {self.variant} makes its own first coupling; leave method.coupling unset")


#: path-metric keys that `evaluate_translation` already reports (as mean_error, var_error,
#: cov_x0_x1_diag and closed_form/cov_x0_x1_diag); the bench keeps them, the run log need not repeat them.
REPORTED_BY_CORE = frozenset({"mean_error", "var_error", "cov_diag", "cov_diag_closed_form", "cov_rel_error"})


class DSBM(AlternatingBridgeMatching):
    """Alternating bridge matching on couplings refreshed by the previous half-iteration's EMA network."""

    Config = DSBMConfig
    default_example = "moons.yaml"

    def setup(self) -> None:
        super().setup()
        m, sigma = self.method, self.process.brownian_sigma
        if m.variant == "rf" and sigma != 0:
            raise ValueError(f"variant rf is the sigma = 0 bridge (rectified flow): set process: {{kind: brownian, "
                             f"sigma: 0}}, got {self.process!r}")
        noisy = sigma is not None and sigma > 0
        if (m.variant == "ipf" and not noisy) or (m.variant == "sbcfm" and not noisy and m.sinkhorn_reg is None):
            raise ValueError(f"variant {m.variant} needs the reference dX = sigma dW with sigma > 0 "
                             f"(process: {{kind: brownian, sigma: 1.0}}), got {self.process!r}")
        if m.variant == "sbcfm":
            reg = m.sinkhorn_reg or 2 * sigma**2
            self.coupling = CouplingSpec("sinkhorn", {"reg": reg}).build(self.run.registry)
        # IPF's first network learns to undo Q started at the data of its own target side.
        first = self.schedule.stage(0).direction
        self.reference = (ReferenceCoupling(self.process, anchor=ENDS[first][1])
                          if m.variant == "ipf" else None)

    def uses_teacher(self, stage: Stage) -> bool:
        return self.method.variant in ITERATIVE and not stage.first

    def first_pairs(self, stage: Stage, n: int) -> tuple[Tensor, Tensor]:
        if self.reference is None:
            return self.draw_pairs(n)
        side = self.reference.anchor
        pair = self.reference(**{side: self.draw(side, n, self.data_generator).to(self.device)})
        return pair.x0, pair.x1

    def evaluate(self) -> Evaluation:
        result = evaluate_translation(self)
        if not result.translations:  # under DDP this rank's samples went to rank 0
            return result
        result.metrics["half_iteration"] = self.schedule.stage_at(max(self.step - 1, 0)).index + 1
        sb = gaussian_sb(self.run)
        if sb is None:
            return result
        for direction, tr in result.translations.items():
            path = tr.outputs.path
            times = self.sampler.time_grid(self.process, direction, path.shape[0] - 1)
            scores = path_metrics(sb, direction, tr.inputs, tr.outputs.x, path, times)
            result.metrics.update({f"{direction}/{k}": v for k, v in scores.items() if k not in REPORTED_BY_CORE})
        return result
