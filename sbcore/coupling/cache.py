"""A cache of simulated samples, rebuilt every K draws: the data of alternating training.

Alternating methods train one network on samples simulated by another (DSBM's endpoint pairs, Shi et
al. 2023, Alg. 1; (S-)DSB's whole chains, De Bortoli et al. 2021, Alg. 1). Simulating is expensive, so
`size` rows are simulated at once and training batches are drawn from them until the next refresh. A
row is whatever `simulate` returns, batch-first: endpoint pairs {"x0", "x1"}, or a path (B, T, *D) with
its times (B, T). Everything that decides the next batch (rows, draw counter, generator) is in
`state_dict`, so a resumed run draws the same batches.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

#: simulate(n) -> n fresh rows: a name -> tensor dict, every tensor with leading dimension n.
Simulate = Callable[[int], dict[str, Tensor]]


class SimulationCache:
    """`size` simulated rows; `draw(n)` returns n of them, refreshing first when `refresh_every` draws
    have been served since the last rebuild (so the first draw builds it).

    simulate: makes n rows from fresh start samples (its own randomness); run under `torch.no_grad()`,
        `chunk_size` rows at a time.
    generator: picks the rows of each batch, uniformly without replacement inside a batch (a private one
        seeded from the global RNG if None).
    """

    def __init__(self, simulate: Simulate, size: int, refresh_every: int, chunk_size: int = 1024,
                 generator: torch.Generator | None = None) -> None:
        if size < 1:
            raise ValueError(f"cache size must be >= 1, got {size}")
        if refresh_every < 1:
            raise ValueError(f"refresh_every must be >= 1, got {refresh_every}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        if generator is None:
            generator = torch.Generator().manual_seed(int(torch.randint(2**62, ()).item()))
        self.simulate, self.size, self.refresh_every, self.chunk_size = simulate, size, refresh_every, chunk_size
        self.generator = generator
        self.rows: dict[str, Tensor] | None = None
        #: draws served from the current rows; a rebuild is due when it reaches refresh_every.
        self.calls_since_refresh = 0

    def __repr__(self) -> str:
        return f"SimulationCache(size={self.size}, refresh_every={self.refresh_every}, chunk_size={self.chunk_size})"

    def refresh(self) -> None:
        """Simulate `size` fresh rows now (the refresh schedule restarts)."""
        rows: dict[str, Tensor] = {}
        for lo in range(0, self.size, self.chunk_size):
            n = min(self.chunk_size, self.size - lo)
            with torch.no_grad():
                chunk = self.simulate(n)
            for name, value in chunk.items():
                if value.shape[0] != n:
                    raise ValueError(f"simulate({n}) returned {value.shape[0]} rows of {name!r}")
                if name not in rows:
                    rows[name] = value.new_empty((self.size, *value.shape[1:]))
                rows[name][lo : lo + n] = value
        self.rows = rows
        self.calls_since_refresh = 0

    def draw(self, n: int) -> dict[str, Tensor]:
        """n rows of the cache (refreshed first when due), the same rows of every entry."""
        if n > self.size:
            raise ValueError(f"batch size {n} exceeds cache_size {self.size}")
        if self.rows is None or self.calls_since_refresh >= self.refresh_every:
            self.refresh()
        assert self.rows is not None
        self.calls_since_refresh += 1
        idx = torch.randperm(self.size, generator=self.generator, device=self.generator.device)[:n]
        return {name: value[idx.to(value.device)] for name, value in self.rows.items()}

    def state_dict(self) -> dict[str, Tensor]:
        """Rows (as ``cache_<name>``, once built), draw counter and generator state."""
        state = {"calls_since_refresh": torch.tensor(self.calls_since_refresh, dtype=torch.int64),
                 "generator_state": self.generator.get_state()}
        state.update({f"cache_{name}": value for name, value in (self.rows or {}).items()})
        return state

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        rows = {k[len("cache_"):]: v for k, v in state.items() if k.startswith("cache_")}
        sizes = {name: value.shape[0] for name, value in rows.items()}
        if any(size != self.size for size in sizes.values()):
            raise ValueError(f"saved cache holds {sizes} rows, this cache's size is {self.size}")
        self.rows = rows or None
        self.calls_since_refresh = int(state["calls_since_refresh"])
        self.generator.set_state(state["generator_state"])
