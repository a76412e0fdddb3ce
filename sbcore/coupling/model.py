"""The model-induced coupling of the IMF refresh (DSBM, Shi et al. 2023, Sec. 4 and Alg. 1).

Having trained one direction, simulate it from real data on its start side and keep only the
endpoints: forward gives (x0_data, x1_generated), backward gives (x0_generated, x1_data). The next
direction trains on these pairs (bridge matching = Markovian projection); intermediate states
come back from the analytic bridge (reciprocal projection), so only endpoint pairs are needed.
Alternating training (`sbcore.train.alternating`) keeps such pairs, or whole paths, in a
`SimulationCache` directly; this class offers the same pairs behind the `Coupling` interface.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from sbcore.coupling.base import Coupling, Pair
from sbcore.coupling.cache import SimulationCache
from sbcore.process.base import Direction


class ModelCoupling(Coupling):
    """Pairs made by simulating a trained drift from data.

    simulate: maps start samples (B, *D) to end samples (B, *D), e.g. Euler-Maruyama with the
        other direction's EMA network; it is run under `torch.no_grad()`.
    direction: "forward" starts from x0 and returns Pair(x0_data, x1_generated); "backward"
        starts from x1 and returns Pair(x0_generated, x1_data).
    cache_size: 0 simulates the given start batch on every call. Otherwise a `SimulationCache` of
        `cache_size` pairs made from `draw_start(n)` samples, rebuilt every `refresh_every` calls
        (refresh first, then draw), `chunk_size` simulated at a time; each call returns a batch drawn
        uniformly from it, without replacement inside the batch, sized like the given batch.
    generator: draws the batches from the cache; `state_dict` saves it with the cache and the call
        counter, so a resumed run draws the same batches.
    """

    def __init__(
        self,
        simulate: Callable[[Tensor], Tensor],
        direction: Direction = "forward",
        cache_size: int = 0,
        refresh_every: int = 1000,
        draw_start: Callable[[int], Tensor] | None = None,
        chunk_size: int = 1024,
        generator: torch.Generator | None = None,
    ) -> None:
        if direction not in ("forward", "backward"):
            raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        if cache_size > 0 and draw_start is None:
            raise ValueError("a cached ModelCoupling (cache_size > 0) needs draw_start to make its start samples")
        self.simulate = simulate
        self.direction = direction
        self.cache_size = cache_size
        self.draw_start = draw_start
        self._cache = (SimulationCache(self._simulate_rows, cache_size, refresh_every, chunk_size, generator)
                       if cache_size else None)

    def __repr__(self) -> str:
        return f"ModelCoupling(direction={self.direction!r}, cache={self._cache!r})"

    def _orient(self, start: Tensor, end: Tensor) -> Pair:
        return Pair(start, end) if self.direction == "forward" else Pair(end, start)

    def _run(self, start: Tensor) -> Tensor:
        with torch.no_grad():
            end = self.simulate(start)
        if end.shape[0] != start.shape[0]:
            raise ValueError(f"simulate returned {end.shape[0]} samples for {start.shape[0]} starts")
        return end

    def _simulate_rows(self, n: int) -> dict[str, Tensor]:
        assert self.draw_start is not None
        start = self.draw_start(n)
        pair = self._orient(start, self._run(start))
        return {"x0": pair.x0, "x1": pair.x1}

    @property
    def cache(self) -> Pair | None:
        rows = self._cache.rows if self._cache is not None else None
        return Pair(rows["x0"], rows["x1"]) if rows is not None else None

    def __call__(self, x0: Tensor | None = None, x1: Tensor | None = None) -> Pair:
        if self._cache is None:
            start = x0 if self.direction == "forward" else x1
            if start is None:
                side = "x0" if self.direction == "forward" else "x1"
                raise ValueError(f"ModelCoupling({self.direction!r}) without a cache simulates from {side}, got None")
            return self._orient(start, self._run(start))
        given = x0 if x0 is not None else x1
        if given is None:
            raise ValueError("ModelCoupling needs a batch (x0 or x1) to know the batch size")
        rows = self._cache.draw(given.shape[0])
        return Pair(rows["x0"], rows["x1"])

    def refresh(self) -> None:
        """Rebuild the cache now from fresh start samples (the refresh schedule restarts)."""
        if self._cache is None:
            raise RuntimeError("refresh() needs a cached ModelCoupling (cache_size > 0 with draw_start)")
        self._cache.refresh()

    def state_dict(self) -> dict[str, Tensor]:
        """Cache (when built), call counter and generator state: all a resumed run needs."""
        return self._cache.state_dict() if self._cache is not None else {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if self._cache is None:
            return
        if "cache_x0" in state and (state["cache_x0"].shape[0] != self.cache_size
                                    or state["cache_x1"].shape[0] != self.cache_size):
            raise ValueError(f"saved cache holds {state['cache_x0'].shape[0]} / {state['cache_x1'].shape[0]} pairs, "
                             f"this coupling's cache_size is {self.cache_size}")
        self._cache.load_state_dict(state)
