"""Data-parallel helpers: process-group set-up from the launcher's environment, and the
global-batch bookkeeping that makes a run give the same optimisation on 1 or N processes.

The config holds the *global* batch B, cut into M micro-batches of B/M samples (M =
``train.grad_accum``, raised to a multiple of the world size W when needed). Rank r runs the
micro-batches r*M/W ... (r+1)*M/W - 1, each drawn with random streams seeded by (seed, step,
micro-batch index), so the set of micro-batches of a step, and therefore the averaged gradient,
does not depend on W. Gradients are summed across ranks with one all-reduce per step.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import attrs
import torch
import torch.distributed as dist

from sbcore.seeding import derive_seeds


@attrs.frozen
class BatchPlan:
    world_size: int
    rank: int
    global_batch: int
    micro_batches: int

    @property
    def micro_batch(self) -> int:
        return self.global_batch // self.micro_batches

    @property
    def per_rank_accum(self) -> int:
        return self.micro_batches // self.world_size

    @property
    def per_rank_batch(self) -> int:
        return self.micro_batch * self.per_rank_accum

    def indices(self) -> range:
        """Global indices of the micro-batches this rank computes."""
        return range(self.rank * self.per_rank_accum, (self.rank + 1) * self.per_rank_accum)

    def record(self) -> dict[str, Any]:
        return {"world_size": self.world_size, "global_batch": self.global_batch,
                "micro_batches": self.micro_batches, "micro_batch": self.micro_batch,
                "per_rank_batch": self.per_rank_batch, "per_rank_accum": self.per_rank_accum,
                "backend": dist.get_backend() if dist.is_initialized() else None}


def plan_batches(global_batch: int, grad_accum: int) -> BatchPlan:
    """Derive per-rank batch and accumulation; raises when the global batch cannot be cut evenly."""
    world, rank = world_size(), rank_of()
    micro_batches = grad_accum if grad_accum % world == 0 else math.lcm(grad_accum, world)
    if global_batch % micro_batches:
        raise ValueError(
            f"train.batch_size ({global_batch}) must be divisible by the number of micro-batches ({micro_batches}: "
            f"train.grad_accum={grad_accum} on {world} process(es))"
        )
    return BatchPlan(world, rank, global_batch, micro_batches)


def write_plan(plan: BatchPlan, run_dir: Path) -> Path:
    """Record the world size and the derived batch split next to the config."""
    path = run_dir / "distributed.json"
    path.write_text(json.dumps(plan.record(), indent=1) + "\n")
    return path


def read_plan(run_dir: Path) -> dict:
    """The recorded plan of `write_plan` ({} when absent; a torn or edited file is skipped with a warning)."""
    path = Path(run_dir) / "distributed.json"
    if not path.is_file():
        return {}
    try:
        plan = json.loads(path.read_text(errors="replace"))
    except ValueError:
        plan = None
    if not isinstance(plan, dict):
        warnings.warn(f"{path}: not a JSON object (torn or edited); the batch plan is left out", stacklevel=2)
        return {}
    return plan


def micro_seeds(seed: int, step: int, index: int) -> tuple[int, int]:
    """(torch seed, data seed) of micro-batch `index` of `step`: independent of the world size."""
    torch_seed, data_seed = derive_seeds(seed, step, index)
    return torch_seed, data_seed


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank_of() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def all_reduce_grads(parameters: list[torch.nn.Parameter], loss: torch.Tensor) -> torch.Tensor:
    """Sum gradients over ranks in one flat buffer, with the step's (scalar) loss in the same buffer, so a
    step costs one collective and no host read; returns the summed loss. Parameters without a gradient are
    skipped (every rank takes the same code path, so the set is the same everywhere)."""
    if world_size() == 1:
        return loss
    grads = [p.grad for p in parameters if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads] + [loss.reshape(1).to(grads[0].dtype if grads else loss.dtype)])
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()
    return flat[-1].to(loss.dtype)


def max_over_ranks(value: int, device: torch.device) -> int:
    """The largest `value` of all ranks, on every rank (agreement on a stop request)."""
    if world_size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def broadcast_module(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank, so all ranks start identical."""
    if world_size() == 1:
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def shard(n: int) -> int:
    """This rank's share of n items split over the ranks (the first n % world ranks take one more)."""
    world, rank = world_size(), rank_of()
    return n // world + (rank < n % world)


def gather_to_main(tensor: torch.Tensor, dim: int = 0) -> torch.Tensor | None:
    """Concatenate every rank's `tensor` along `dim` (in rank order) on rank 0; None elsewhere.

    Shards may differ in size, so tensors travel as objects (on the CPU), which both gloo and nccl
    support; evaluation batches are small next to a training step's traffic."""
    if world_size() == 1:
        return tensor
    parts: list[Any] = [None] * world_size()
    dist.all_gather_object(parts, tensor.detach().cpu())
    return torch.cat(parts, dim=dim) if rank_of() == 0 else None


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def init_from_env() -> torch.device | None:
    """Join the process group described by RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT (torchrun,
    or submitit's exported SLURM environment). Returns this rank's CUDA device when there is one."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return None
    cuda = torch.cuda.is_available()
    device = None
    if cuda:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if cuda else "gloo", init_method="env://")
    return device


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
