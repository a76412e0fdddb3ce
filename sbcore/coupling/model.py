"""The model-induced coupling of the IMF refresh (DSBM, Shi et al. 2023, Sec. 4 and Alg. 1).

Having trained one direction, simulate it from real data on its start side and keep only the
endpoints: forward gives (x0_data, x1_generated), backward gives (x0_generated, x1_data). The next
direction trains on these pairs (bridge matching = Markovian projection); intermediate states
come back from the analytic bridge (reciprocal projection), so only endpoint pairs are needed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from sbcore.coupling.base import Coupling, Pair
from sbcore.process.base import Direction


class ModelCoupling(Coupling):
    """Pairs made by simulating a trained drift from data.

    simulate: maps start samples (B, *D) to end samples (B, *D), e.g. Euler-Maruyama with the
        other direction's EMA network; it is run under `torch.no_grad()`.
    direction: "forward" starts from x0 and returns Pair(x0_data, x1_generated); "backward"
        starts from x1 and returns Pair(x0_generated, x1_data).
    cache_size: 0 simulates the given start batch on every call. Otherwise a cache of
        `cache_size` pairs is built on the first call and rebuilt every `refresh_every` calls
        (refresh first, then draw), from `draw_start(n)` samples simulated `chunk_size` at a
        time; each call returns a batch drawn uniformly from the cache, without replacement
        inside the batch, sized like the given batch. Both cached sides live on the device of
        `simulate`'s output.
    generator: draws the batches from the cache (a private one seeded from the global RNG if
        None). `state_dict` saves it with the cache and the call counter, so a resumed run draws
        the same batches; `draw_start` and `simulate` keep their own randomness.
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
        if refresh_every < 1:
            raise ValueError(f"refresh_every must be >= 1, got {refresh_every}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        if cache_size > 0 and draw_start is None:
            raise ValueError("a cached ModelCoupling (cache_size > 0) needs draw_start to make its start samples")
        if generator is None:
            generator = torch.Generator().manual_seed(int(torch.randint(2**62, ()).item()))
        self.simulate = simulate
        self.direction = direction
        self.cache_size = cache_size
        self.refresh_every = refresh_every
        self.draw_start = draw_start
        self.chunk_size = chunk_size
        self.generator = generator
        self.cache: Pair | None = None
        #: batches drawn from the current cache; a rebuild is due when it reaches refresh_every.
        self.calls_since_refresh = 0

    def __repr__(self) -> str:
        return (
            f"ModelCoupling(direction={self.direction!r}, cache_size={self.cache_size}, "
            f"refresh_every={self.refresh_every}, chunk_size={self.chunk_size})"
        )

    def _orient(self, start: Tensor, end: Tensor) -> Pair:
        return Pair(start, end) if self.direction == "forward" else Pair(end, start)

    def _run(self, start: Tensor) -> Tensor:
        with torch.no_grad():
            end = self.simulate(start)
        if end.shape[0] != start.shape[0]:
            raise ValueError(f"simulate returned {end.shape[0]} samples for {start.shape[0]} starts")
        return end

    def __call__(self, x0: Tensor | None = None, x1: Tensor | None = None) -> Pair:
        start = x0 if self.direction == "forward" else x1
        if self.cache_size == 0:
            if start is None:
                side = "x0" if self.direction == "forward" else "x1"
                raise ValueError(f"ModelCoupling({self.direction!r}) without a cache simulates from {side}, got None")
            return self._orient(start, self._run(start))
        given = x0 if x0 is not None else x1
        if given is None:
            raise ValueError("ModelCoupling needs a batch (x0 or x1) to know the batch size")
        n = given.shape[0]
        if n > self.cache_size:
            raise ValueError(f"batch size {n} exceeds cache_size {self.cache_size}")
        if self.cache is None or self.calls_since_refresh >= self.refresh_every:
            self.refresh()
        assert self.cache is not None
        self.calls_since_refresh += 1
        idx = torch.randperm(self.cache_size, generator=self.generator, device=self.generator.device)[:n]
        idx = idx.to(self.cache.x0.device)
        return Pair(self.cache.x0[idx], self.cache.x1[idx])

    def refresh(self) -> None:
        """Rebuild the cache now from fresh start samples (the refresh schedule restarts)."""
        if self.cache_size == 0 or self.draw_start is None:
            raise RuntimeError("refresh() needs a cached ModelCoupling (cache_size > 0 with draw_start)")
        starts = ends = None
        for lo in range(0, self.cache_size, self.chunk_size):
            start = self.draw_start(min(self.chunk_size, self.cache_size - lo))
            end = self._run(start)
            if starts is None or ends is None:
                starts = end.new_empty((self.cache_size, *start.shape[1:]), dtype=start.dtype)
                ends = end.new_empty((self.cache_size, *end.shape[1:]))
            starts[lo : lo + start.shape[0]] = start
            ends[lo : lo + end.shape[0]] = end
        assert starts is not None and ends is not None
        self.cache = self._orient(starts, ends)
        self.calls_since_refresh = 0

    def state_dict(self) -> dict[str, Tensor]:
        """Cache (when built), call counter and generator state: all a resumed run needs."""
        state = {
            "calls_since_refresh": torch.tensor(self.calls_since_refresh, dtype=torch.int64),
            "generator_state": self.generator.get_state(),
        }
        if self.cache is not None:
            state["cache_x0"] = self.cache.x0
            state["cache_x1"] = self.cache.x1
        return state

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if ("cache_x0" in state) != ("cache_x1" in state):
            raise ValueError("ModelCoupling state needs both cache_x0 and cache_x1, or neither")
        if "cache_x0" in state:
            x0, x1 = state["cache_x0"], state["cache_x1"]
            if x0.shape[0] != self.cache_size or x1.shape[0] != self.cache_size:
                raise ValueError(
                    f"saved cache holds {x0.shape[0]} / {x1.shape[0]} pairs, this coupling's cache_size is "
                    f"{self.cache_size}"
                )
            self.cache = Pair(x0, x1)
        else:
            self.cache = None
        self.calls_since_refresh = int(state["calls_since_refresh"])
        self.generator.set_state(state["generator_state"])
