"""The `Sampler` conformance suite, run with the exact network of a known case.

The known case is a Dirac end: when every path must end at y, the exact prediction at (x, t) is the
process's target for the end y (`DiracEnd`), for any process and any prediction type. A sampler must
land on y on a deterministic path, record y as every step's predicted end, count the evaluations it
makes, hand every step to the callback, and be reproducible under a seed, in both directions.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sbcore.process.base import ENDS, ReferenceProcess
from sbcore.process.brownian import BrownianBridge
from sbcore.registry import Registry
from sbcore.sampler.base import Predictor, Sampler, Trajectory
from sbcore.testing.suite import Suite, conformance

DT = torch.float64


class DiracEnd:
    """The exact network output when every path ends at `end`; counts its calls and keeps their `cond`.

    t is kept sqrt(machine epsilon) inside (0, 1): a drift towards a pinned end is singular at the end
    itself, where a sampler that evaluates there (Heun's last corrector) gets about the limit, 0 at x = end.
    """

    def __init__(self, process: ReferenceProcess, end: Tensor, predict: str, direction: str) -> None:
        self.process, self.end, self.predict, self.direction = process, end, predict, direction
        self.calls = 0
        self.conds: list[Any] = []

    def __call__(self, x: Tensor, t: Tensor, **cond: Any) -> Tensor:
        self.calls += 1
        self.conds.append(cond.get("cond"))
        margin = torch.finfo(x.dtype).eps ** 0.5
        t = torch.as_tensor(t, dtype=x.dtype).clamp(margin, 1 - margin)
        return self.process.target(self.predict, self.end, self.end, x, t, self.direction)


class SamplerSuite(Suite):
    """A sampler is built as cls(**params) (keep `steps` small in the params).

    process: the reference the structural checks sample on (default: Brownian, sigma = 1, so noise is drawn).
    landing_process: a reference on which the sampler must land on the Dirac end within `landing_atol`
        (default: the sigma = 0 bridge, a straight line every integrator follows exactly).
    predict: what the exact network outputs (any prediction the processes convert); `endpoint` makes the
        sampler convert through the process at every time it evaluates, the ends included.
    callback, record: False for a sampler that does not support them; it must then raise ValueError
        when asked, never ignore the request.
    directions: the directions it samples (I2SB's posterior sampler only goes backward); asked for
        another it must raise ValueError.
    reverse: the sampler needs the other direction's network (`Predictor.reverse`, e.g. probability_flow):
        the suite gives it minus the Dirac end's drift, evaluated by the same counting network, which is the
        exact time reversal on the landing process (the sigma = 0 bridge), and without which it must raise
        ValueError.
    """

    kind = "sampler"
    base = Sampler

    def __init__(self, component: str | type, params: dict[str, Any] | None = None, *,
                 process: ReferenceProcess | None = None, landing_process: ReferenceProcess | None = None,
                 predict: str = "endpoint", shape: tuple[int, ...] = (3,), landing_atol: float = 1e-6,
                 callback: bool = True, record: bool = True, directions: tuple[str, ...] = tuple(ENDS),
                 reverse: bool = False, registry: Registry | None = None) -> None:
        super().__init__(component, params, registry=registry)
        self.process = process if process is not None else BrownianBridge(1.0)
        self.landing_process = landing_process if landing_process is not None else BrownianBridge(0.0)
        self.predict, self.shape, self.landing_atol = predict, tuple(shape), landing_atol
        self.callback, self.record = callback, record
        if not directions or any(d not in ENDS for d in directions):
            raise ValueError(f"directions must be a non-empty subset of {tuple(ENDS)}, got {directions}")
        self.directions = tuple(directions)
        self.reverse = reverse

    def build(self) -> Sampler:
        return self.construct()

    def states(self, direction: str, n: int = 5, dtype: torch.dtype = DT) -> tuple[Tensor, Tensor]:
        """(x_start, end): the start batch and the Dirac end every path must reach."""
        g = torch.Generator().manual_seed(0 if direction == "forward" else 1)
        start = torch.randn(n, *self.shape, generator=g, dtype=DT)
        end = 3 + torch.randn(n, *self.shape, generator=g, dtype=DT)
        return start.to(dtype), end.to(dtype)

    def integrate(self, sampler: Sampler, direction: str, *, process: ReferenceProcess | None = None,
                  steps: int | None = None, dtype: torch.dtype = DT, seed: int = 0, cond: Tensor | None = None,
                  reverse: bool | None = None, **options: Any) -> tuple[Trajectory, DiracEnd, Tensor, Tensor, Tensor]:
        """One run on the sampler's own grid; returns (trajectory, network, x_start, end, grid)."""
        process = process or self.process
        start, end = self.states(direction, dtype=dtype)
        network = DiracEnd(process, end, self.predict, direction)
        grid = sampler.time_grid(process, direction, steps, dtype=dtype)
        torch.manual_seed(seed)
        model = Predictor(network, process, direction, self.predict, cond)
        if self.reverse if reverse is None else reverse:
            def reversed_drift(x: Tensor, t: Tensor, **kw: Any) -> Tensor:
                return -process.drift(self.predict, network(x, t, **kw), x, t, direction)

            other = "backward" if direction == "forward" else "forward"
            model.reverse = Predictor(reversed_drift, process, other, "drift", cond)
        return sampler.sample(model, start, grid, **options), network, start, end, grid

    def refuses(self, sampler: Sampler, what: str, direction: str | None = None, **options: Any) -> None:
        try:
            self.integrate(sampler, direction or self.directions[0], **options)
        except ValueError:
            return
        self.expect(False, f"{what} is declared unsupported, but was accepted instead of raising ValueError")

    # ---- checks ------------------------------------------------------------------------------

    def check_build(self) -> None:
        sampler = self.build()
        self.expect(isinstance(sampler.steps, int) and sampler.steps >= 1, f"steps must be >= 1, got {sampler.steps}")
        self.expect(sampler.evals_per_step >= 1, f"evals_per_step must be >= 1, got {sampler.evals_per_step}")
        self.expect(isinstance(repr(sampler), str), "repr failed")

    def check_directions(self) -> None:
        """A direction the sampler does not support is refused with ValueError."""
        sampler = self.build()
        for direction in ENDS:
            if direction not in self.directions:
                self.refuses(sampler, f"the {direction} direction", direction)
        if self.reverse:
            self.refuses(sampler, "a model without the other direction (Predictor.reverse)", reverse=False)

    def check_time_grid(self) -> None:
        """steps + 1 times from the direction's start to its end, monotone; `steps=` overrides the count."""
        sampler = self.build()
        for direction in self.directions:
            start, stop = (0.0, 1.0) if direction == "forward" else (1.0, 0.0)
            for steps in (None, 2):
                grid = sampler.time_grid(self.process, direction, steps, dtype=DT)
                want = (steps or sampler.steps) + 1
                self.expect(grid.shape == (want,) and grid.dtype == DT,
                            f"{direction} grid for steps={steps}: shape {tuple(grid.shape)} {grid.dtype}, "
                            f"expected ({want},) float64")
                self.expect(float(grid[0]) == start and float(grid[-1]) == stop,
                            f"{direction} grid runs {float(grid[0])} -> {float(grid[-1])}, expected {start} -> {stop}")
                moves = grid.diff() * (1 if direction == "forward" else -1)
                self.expect(bool((moves >= 0).all()), f"{direction} grid is not monotone: {grid.tolist()}")

    def check_nfe(self) -> None:
        """Trajectory.nfe = the network calls made, for its own and a given step count; sampler.nfe(steps)
        is their budget (evals_per_step * steps unless a sampler says otherwise, e.g. a landing step), which a
        run may undercut only where it says so (a second-order step falling back to first order); None where
        the cost is known only after integrating (adaptive step sizes)."""
        sampler = self.build()
        generic = type(sampler).nfe is Sampler.nfe
        for direction in self.directions:
            for steps in (None, 2):
                out, network, *_ = self.integrate(sampler, direction, steps=steps)
                budget = sampler.nfe(steps)
                within = out.nfe == budget if generic else budget is None or out.nfe <= budget
                self.expect(out.nfe == network.calls and out.nfe > 0 and within,
                            f"{direction}, steps={steps}: Trajectory.nfe {out.nfe}, network calls {network.calls}, "
                            f"sampler.nfe() {budget}")
        if generic:
            self.expect(sampler.nfe() == sampler.evals_per_step * sampler.steps, "nfe != evals_per_step * steps")

    def check_path(self) -> None:
        """return_path: (len(grid), B, *D), starting at x_start and ending at x; None otherwise."""
        sampler = self.build()
        for direction in self.directions:
            out, _, start, _, grid = self.integrate(sampler, direction, return_path=True)
            path = out.path
            self.expect(path is not None and path.shape == (len(grid), *start.shape),
                        f"{direction} path shape {None if path is None else tuple(path.shape)}, "
                        f"expected {(len(grid), *start.shape)}")
            self.close(path[0], start, f"{direction} path[0] vs x_start", rtol=0)
            self.close(path[-1], out.x, f"{direction} path[-1] vs x", rtol=0)
            self.expect(self.integrate(sampler, direction)[0].path is None, "path returned without return_path")

    def check_landing(self) -> None:
        """With the exact network of a Dirac end, a deterministic path lands on that end."""
        sampler = self.build()
        for direction in self.directions:
            out, _, _, end, _ = self.integrate(sampler, direction, process=self.landing_process)
            self.close(out.x, end, f"{direction} final state vs the Dirac end", rtol=0, atol=self.landing_atol)

    def check_record(self) -> None:
        """record=True keeps every step's predicted end, shape (len(grid) - 1, B, *D): here the Dirac end."""
        sampler = self.build()
        if not self.record:
            return self.refuses(sampler, "record", record=True)
        for direction in self.directions:
            out, _, start, end, grid = self.integrate(sampler, direction, record=True)
            want = (len(grid) - 1, *start.shape)
            got = out.predictions
            self.expect(got is not None and got.shape == want,
                        f"{direction} predictions shape {None if got is None else tuple(got.shape)}, expected {want}")
            self.close(got, end.expand(want), f"{direction} recorded predicted ends vs the Dirac end", rtol=1e-6)
            self.expect(self.integrate(sampler, direction)[0].predictions is None,
                        "predictions returned without record")

    def check_callback(self) -> None:
        """callback(k, x, t, estimate) runs once per step with k = 0..n-1 and t = grid[k + 1]; a returned
        tensor replaces the state (it is in the path and carries on), None keeps it."""
        sampler = self.build()
        if not self.callback:
            return self.refuses(sampler, "a callback", callback=lambda k, x, t, e: None)
        for direction in self.directions:
            self.callback_in(sampler, direction)

    def callback_in(self, sampler: Sampler, direction: str) -> None:
        start = self.states(direction)[0]
        seen: list[tuple[int, Tensor]] = []

        def watch(k: int, x: Tensor, t: Tensor, estimate: Any) -> None:
            seen.append((k, t.clone()))
            self.expect(x.shape == start.shape, f"callback got x of shape {tuple(x.shape)}")

        plain, _, _, _, grid = self.integrate(sampler, direction)
        watched = self.integrate(sampler, direction, callback=watch)[0]
        n = len(grid) - 1
        self.expect([k for k, _ in seen] == list(range(n)), f"{direction}: callback steps {[k for k, _ in seen]}, "
                    f"expected 0..{n - 1}")
        for k, t in seen:
            self.close(t.reshape(-1)[:1], grid[k + 1:k + 2], f"{direction} callback time at step {k}", rtol=0)
        self.close(watched.x, plain.x, f"{direction}: a callback returning None changed the result", rtol=0)
        marker = torch.full_like(start, 7.0)
        first = self.integrate(sampler, direction, return_path=True,
                               callback=lambda k, x, t, e: marker if k == 0 else None)[0]
        self.close(first.path[1], marker, f"{direction}: state after step 0 replaced by the callback", rtol=0)
        last = self.integrate(sampler, direction, callback=lambda k, x, t, e: marker if k == n - 1 else None)[0]
        self.close(last.x, marker, f"{direction}: final state replaced by the callback", rtol=0)

    def check_seeded(self) -> None:
        """The same seed gives the same samples (noise comes from the seeded global generator)."""
        sampler = self.build()
        for direction in self.directions:
            a = self.integrate(sampler, direction, seed=3)[0].x
            b = self.integrate(sampler, direction, seed=3)[0].x
            self.close(a, b, f"{direction} samples under the same seed", rtol=0)

    def check_conditioning(self) -> None:
        """The Predictor's `cond` reaches every network call."""
        sampler = self.build()
        for direction in self.directions:
            cond = torch.ones(5, 2, dtype=DT)
            _, network, *_ = self.integrate(sampler, direction, cond=cond)
            self.expect(network.calls > 0 and all(c is cond for c in network.conds),
                        f"{direction}: cond missing from {sum(c is not cond for c in network.conds)} of "
                        f"{network.calls} network calls")

    def check_dtype(self) -> None:
        sampler = self.build()
        for dtype in (torch.float32, DT):
            out = self.integrate(sampler, self.directions[0], dtype=dtype)[0]
            self.expect(out.x.dtype == dtype, f"x_start {dtype} gave samples {out.x.dtype}")
            self.expect(bool(torch.isfinite(out.x).all()), f"{dtype} samples are not finite")


def sampler_conformance(component: str | type, params: dict[str, Any] | None = None, **options: Any):
    """A pytest test running the sampler suite: ``test_ddim = sampler_conformance("ddim", {"steps": 4})``."""
    return conformance(SamplerSuite(component, params, **options))
