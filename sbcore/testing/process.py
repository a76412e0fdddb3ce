"""The `ReferenceProcess` conformance suite, in float64 through the data-level interface.

Every check goes through `mean`, `sample_bridge`, `target`/`endpoint`/`drift`/`eps`, `diffusion` and
`noise_like`, so a process whose coefficients act per mode (the spectral process) is checked like a
scalar one. Two identities tie the bridge marginal to the SDE a sampler integrates. For the linear
SDE dX = f(X, t) dt + g dW (W with `noise_like`'s covariance) pinned at the end, f = u end + W x:

    d/dt E[x_t] = f(E[x_t], t)                                   (mean; any c, forward time)
    2 < d/dt x_t(z) - f(x_t(z), t),  x_t(z) - E[x_t] > = g^2 |z|^2  (variance)

where x_t(z) = sample_bridge(x0, x1, t, noise=z) for a fixed draw z. The second is the covariance
equation C' C^T + C C'^T = W C C^T + C C^T W^T + g^2 I (the moment equations of a linear SDE, Särkkä &
Solin 2019, "Applied Stochastic Differential Equations", Ch. 6) read along z; it holds exactly for every
z when the coefficients are scalars or diagonal in one basis.
Backward, time is reversed (d/ds = -d/dt) as in the drift convention of `ReferenceProcess`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sbcore.process.base import ENDS, PREDICTIONS, ReferenceProcess
from sbcore.registry import Registry
from sbcore.testing.suite import Suite, conformance

DT = torch.float64
#: per-row times of the test batch: away from the ends (singular drifts), from t = 1/2 (the kink of
#: symmetric schedules) and from the nodes of discrete schedules (finite differences cross no kink).
TIMES = (0.13, 0.31, 0.47, 0.69, 0.88)


class ProcessSuite(Suite):
    """A process is built as cls(**params).

    shape: the data shape (B, *shape) it is checked on (a spectral process needs its grid axes).
    ends: the sides the bridge marginal lands on exactly at t=0 (x0) and t=1 (x1); a VP diffusion
        only reaches x1 = eps in the limit of its schedule.
    predictions: what it converts (`x0`/`x1` follow from `endpoint`).
    continuous: False for a process tabulated on discrete times (piecewise constant in t, I2SB's
        tables), whose marginals have no time derivative for the two identities to check.
    """

    kind = "process"
    base = ReferenceProcess

    def __init__(self, component: str | type, params: dict[str, Any] | None = None, *,
                 shape: tuple[int, ...] = (6,), ends: tuple[str, ...] = ("x0", "x1"),
                 predictions: tuple[str, ...] = ("drift", "endpoint", "eps", "velocity"),
                 continuous: bool = True, registry: Registry | None = None) -> None:
        super().__init__(component, params, registry=registry)
        bad = [p for p in predictions if p not in PREDICTIONS]
        if bad or any(e not in ("x0", "x1") for e in ends):
            raise ValueError(f"predictions must be among {PREDICTIONS} and ends among x0, x1; "
                             f"got {predictions}, {ends}")
        self.shape, self.ends, self.predictions = tuple(shape), tuple(ends), tuple(predictions)
        self.continuous = continuous

    def build(self) -> ReferenceProcess:
        return self.construct()

    def batch(self, process: ReferenceProcess, n: int = len(TIMES), seed: int = 0,
              dtype: torch.dtype = DT) -> tuple[Tensor, Tensor, Tensor]:
        """(x0, x1, z): endpoints and a fixed `noise_like` draw, each of shape (n, *shape)."""
        torch.manual_seed(seed)
        g = torch.Generator().manual_seed(seed)
        x0 = torch.randn(n, *self.shape, generator=g, dtype=DT)
        x1 = 2 + torch.randn(n, *self.shape, generator=g, dtype=DT)
        return x0.to(dtype), x1.to(dtype), process.noise_like(torch.zeros(n, *self.shape, dtype=dtype))

    def times(self, dtype: torch.dtype = DT) -> Tensor:
        return torch.tensor(TIMES, dtype=dtype)

    def draw(self, process: ReferenceProcess, dtype: torch.dtype = DT) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(x0, x1, x_t, t) with one time per row."""
        x0, x1, z = self.batch(process, dtype=dtype)
        t = self.times(dtype)
        return x0, x1, process.sample_bridge(x0, x1, t, noise=z), t

    # ---- checks ------------------------------------------------------------------------------

    def check_build(self) -> None:
        process = self.build()
        size = process.grid_size
        self.expect(size is None or (isinstance(size, int) and size >= 2),
                    f"grid_size must be None or an int >= 2, got {size}")
        self.expect(isinstance(repr(process), str), "repr failed")

    def check_ends(self) -> None:
        """At t=0 the bridge marginal is x0, at t=1 it is x1 (for the exact `ends`), and it is continuous there."""
        process = self.build()
        x0, x1, z = self.batch(process)
        for side in self.ends:
            end, t = (x0, 0.0) if side == "x0" else (x1, 1.0)
            near = 1e-8 if side == "x0" else 1 - 1e-8
            for at, tol in ((t, 1e-12), (near, 1e-3)):
                time = torch.full((x0.shape[0],), at, dtype=DT)
                self.close(process.mean(x0, x1, time), end, f"mean at t={at}", rtol=tol, atol=tol)
                self.close(process.sample_bridge(x0, x1, time, noise=z), end, f"bridge draw at t={at}",
                           rtol=tol, atol=tol)

    def check_bridge_noise(self) -> None:
        """sample_bridge is the mean plus a linear map of a `noise_like` draw."""
        process = self.build()
        x0, x1, z = self.batch(process)
        t = self.times()
        mean = process.mean(x0, x1, t)
        self.close(process.sample_bridge(x0, x1, t, noise=torch.zeros_like(z)), mean, "draw with zero noise")
        once = process.sample_bridge(x0, x1, t, noise=z) - mean
        self.close(process.sample_bridge(x0, x1, t, noise=2 * z) - mean, 2 * once, "draw with doubled noise")
        torch.manual_seed(11)
        drawn = process.sample_bridge(x0, x1, t)
        torch.manual_seed(11)
        self.close(drawn, process.sample_bridge(x0, x1, t, noise=process.noise_like(x0)),
                   "default draw vs an explicit noise_like draw under the same seed")

    def check_bridge_moments(self) -> None:
        """Monte Carlo: draws of one pair average to `mean`; with scalar coefficients their std is c(t)."""
        process = self.build()
        n = 8192
        x0, x1, _ = self.batch(process, 1)
        x0, x1 = x0.expand(n, *self.shape), x1.expand(n, *self.shape)
        torch.manual_seed(12)
        for t in (0.3, 0.7):
            time = torch.full((n,), t, dtype=DT)
            draws = process.sample_bridge(x0, x1, time)
            mean, spread = process.mean(x0[:1], x1[:1], time[:1])[0], draws.std(0)
            error = (draws.mean(0) - mean).abs()
            self.expect(bool((error <= 6 * spread / n**0.5 + 1e-12).all()),
                        f"t={t}: empirical mean misses mean() by up to {float(error.max()):.3g} "
                        f"(6 standard errors: {float(6 * spread.max() / n**0.5):.3g})")
            try:
                c = float(process.std(torch.tensor(t, dtype=DT)))
            except (TypeError, ValueError):  # per-mode coefficients (they need the data's grid): no scalar std
                continue
            self.close(spread.square().mean().sqrt(), torch.tensor(c, dtype=DT), f"t={t}: std of the draws vs c(t)",
                       rtol=0.03, atol=1e-12)

    def check_mean_follows_drift(self) -> None:
        """d/dt mean(t) is the drift at the mean, forward; -d/dt mean is the backward drift."""
        if not self.continuous:
            return
        process = self.build()
        x0, x1, _ = self.batch(process)
        t, h = self.times(), 1e-5
        mean = process.mean(x0, x1, t)
        slope = (process.mean(x0, x1, t + h) - process.mean(x0, x1, t - h)) / (2 * h)
        for direction, sign in (("forward", 1), ("backward", -1)):
            self.close(process.target("drift", x0, x1, mean, t, direction), sign * slope,
                       f"{direction} drift at the mean vs finite-difference d/dt of the mean", rtol=1e-6, atol=1e-8)

    def check_variance_follows_diffusion(self) -> None:
        """The bridge's spread grows as drift and diffusion say (module docstring, second identity)."""
        if not self.continuous:
            return
        process = self.build()
        n = 64
        x0, x1, z = self.batch(process, n, seed=1)
        h = 1e-5
        for t in TIMES:
            time = torch.full((n,), t, dtype=DT)
            x = process.sample_bridge(x0, x1, time, noise=z)
            spread = x - process.mean(x0, x1, time)
            slope = (process.sample_bridge(x0, x1, time + h, noise=z)
                     - process.sample_bridge(x0, x1, time - h, noise=z)) / (2 * h)
            g2 = process.diffusion(torch.tensor(t, dtype=DT)) ** 2
            want = float(g2 * z.square().sum())
            for direction, sign in (("forward", 1), ("backward", -1)):
                rest = sign * slope - process.target("drift", x0, x1, x, time, direction)
                got = float(2 * (rest * spread).sum())
                self.expect(abs(got - want) <= 1e-5 * max(abs(want), float(spread.square().sum()), 1e-12),
                            f"{direction}, t={t}: 2<dx/dt - drift, x - mean> = {got:.6g} but g^2 |z|^2 = {want:.6g}")

    def check_conversions_round_trip(self) -> None:
        """For each prediction and direction: target -> endpoint gives the end, an output -> endpoint ->
        target gives the output back, and drift/eps of a target are the drift/eps targets."""
        process = self.build()
        x0, x1, x_t, t = self.draw(process)
        g = torch.Generator().manual_seed(5)
        for direction in ENDS:
            end = x1 if direction == "forward" else x0
            drift = process.target("drift", x0, x1, x_t, t, direction)
            eps = process.target("eps", x0, x1, x_t, t, direction) if "eps" in self.predictions else None
            for predict in self.predictions:
                what = f"{direction} {predict}"
                y = process.target(predict, x0, x1, x_t, t, direction)
                self.close(process.endpoint(predict, y, x_t, t, direction), end, f"{what}: endpoint(target)")
                self.close(process.drift(predict, y, x_t, t, direction), drift, f"{what}: drift(target)")
                if eps is not None:
                    self.close(process.eps(predict, y, x_t, t, direction), eps, f"{what}: eps(target)")
                out = torch.randn(x_t.shape, generator=g, dtype=DT)
                guess = process.endpoint(predict, out, x_t, t, direction)
                self.close(process.target(predict, guess, guess, x_t, t, direction), out,
                           f"{what}: target(endpoint(output))")

    def check_named_ends(self) -> None:
        """`x1` is the forward end, `x0` the backward end; the other side and unknown names raise ValueError."""
        process = self.build()
        x0, x1, x_t, t = self.draw(process)
        self.close(process.target("x1", x0, x1, x_t, t, "forward"), x1, "forward target x1")
        self.close(process.target("x0", x0, x1, x_t, t, "backward"), x0, "backward target x0")
        self.close(process.drift_target(x0, x1, x_t, t, "forward"), process.target("drift", x0, x1, x_t, t, "forward"),
                   "drift_target vs target('drift')")
        for predict, direction in (("x0", "forward"), ("x1", "backward"), ("score_of_nothing", "forward")):
            try:
                process.target(predict, x0, x1, x_t, t, direction)
            except ValueError as exc:
                self.expect("\n" not in str(exc), f"the error for predict={predict!r} spans lines: {exc}")
                continue
            self.expect(False, f"predict={predict!r} {direction} was accepted")

    def check_coefficients(self) -> None:
        """The drift target is u * end + w * x_t and the end is p * x_t + q * eps (for scalar coefficients;
        per-mode ones need the data's grid and are checked through the conversions alone)."""
        process = self.build()
        x0, x1, x_t, t = self.draw(process)
        for direction in ENDS:
            end = x1 if direction == "forward" else x0
            try:
                u, w = process.drift_coefficients(t, direction)
            except (TypeError, ValueError):
                return
            view = (-1, *[1] * len(self.shape))
            self.close(process.drift_target(x0, x1, x_t, t, direction), u.reshape(view) * end + w.reshape(view) * x_t,
                       f"{direction} drift_target vs u * end + w * x_t")
            if "eps" in self.predictions:
                p, q = process.eps_coefficients(t, direction)
                eps = process.target("eps", x0, x1, x_t, t, direction)
                self.close(p.reshape(view) * x_t + q.reshape(view) * eps, end,
                           f"{direction} p * x_t + q * eps vs the end")

    def check_noise_like(self) -> None:
        """noise_like(x): x's shape, dtype and device, reproducible under a seed, fresh on each call."""
        process = self.build()
        for dtype in (torch.float32, DT):
            x = torch.zeros(3, *self.shape, dtype=dtype)
            torch.manual_seed(4)
            a, b = process.noise_like(x), process.noise_like(x)
            torch.manual_seed(4)
            again = process.noise_like(x)
            self.expect(a.shape == x.shape and a.dtype == dtype and a.device == x.device,
                        f"noise_like of {tuple(x.shape)} {dtype} gave {tuple(a.shape)} {a.dtype} on {a.device}")
            self.expect(torch.equal(a, again) and not torch.equal(a, b), "noise_like is not seeded, or repeats")
            self.expect(bool(torch.isfinite(a).all()), "noise_like is not finite")

    def check_dtype(self) -> None:
        """float32 in, float32 out (no silent float64 tables leaking into a float32 run)."""
        process = self.build()
        x0, x1, x_t, t = self.draw(process, torch.float32)
        outputs = {"mean": process.mean(x0, x1, t), "sample_bridge": process.sample_bridge(x0, x1, t)}
        for predict in self.predictions:
            y = process.target(predict, x0, x1, x_t, t, "forward")
            outputs[f"target {predict}"] = y
            outputs[f"endpoint {predict}"] = process.endpoint(predict, y, x_t, t, "forward")
            outputs[f"drift {predict}"] = process.drift(predict, y, x_t, t, "forward")
        wrong = {k: v.dtype for k, v in outputs.items() if v.dtype != torch.float32 or v.shape != x0.shape}
        self.expect(not wrong, f"float32 inputs gave {wrong}")

    def check_time_broadcast(self) -> None:
        """A 0-d t equals the same t per row, and a batch with one t per row equals row-wise calls."""
        process = self.build()
        x0, x1, x_t, t = self.draw(process)
        for predict in self.predictions:
            for direction in ENDS:
                batched = process.target(predict, x0, x1, x_t, t, direction)
                for i, ti in enumerate(TIMES):
                    row = process.target(predict, x0[i:i + 1], x1[i:i + 1], x_t[i:i + 1], torch.tensor(ti, dtype=DT),
                                         direction)
                    self.close(row[0], batched[i], f"{direction} target {predict}, row {i} alone with a 0-d t")
        x0, x1, z = self.batch(process)
        rows = torch.cat([process.sample_bridge(x0[i:i + 1], x1[i:i + 1], torch.tensor(ti, dtype=DT), noise=z[i:i + 1])
                          for i, ti in enumerate(TIMES)])
        self.close(process.sample_bridge(x0, x1, self.times(), noise=z), rows, "bridge draws, per row vs batched")

    def check_diffusion(self) -> None:
        process = self.build()
        g = process.diffusion(self.times())
        self.expect(g.shape == (len(TIMES),) and bool((g >= 0).all()) and bool(torch.isfinite(g).all()),
                    f"diffusion(t) must be finite, >= 0 and of t's shape {(len(TIMES),)}; got {g}")


def process_conformance(component: str | type, params: dict[str, Any] | None = None, **options: Any):
    """A pytest test running the process suite: ``test_vp = process_conformance("vp", ends=("x0",))``."""
    return conformance(ProcessSuite(component, params, **options))
