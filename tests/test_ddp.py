"""Data parallelism: the global batch gives the same optimisation on 1 or 2 processes; batch
planning; mixed precision (fp16 with GradScaler, bf16 autocast) on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from sbcore.config import structure_config
from sbcore.config_text import merge, parse_overrides
from sbcore.io import checkpoint as ckpt
from sbcore.launch.distributed import micro_seeds, plan_batches
from sbcore.launch.local import run_local
from sbcore.log.plugin import read_metrics


def _run(raw, plugins, *overrides):
    config = structure_config(merge(raw, parse_overrides(list(overrides))), plugins.registry)
    return run_local(config, None, plugins)


def _ddp_config(tiny_gaussian):
    raw = merge(tiny_gaussian, {"train": {"steps": 12, "batch_size": 32, "grad_accum": 2, "log_every": 1,
                                          "checkpoint_every": 0, "eval_samples": 64, "threads": 1},
                                "sampler": {"kind": "euler_maruyama", "steps": 4}})
    return raw


def test_torchrun_two_processes_match_one_process(tiny_gaussian, plugins, tmp_path):
    raw = _ddp_config(tiny_gaussian)
    _run(raw, plugins, "name=one")
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({**raw, "name": "two"}))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "sbcore", "run", str(path), "launcher.kind=torchrun",
                           "launcher.nproc=2"], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = tmp_path / "runs"
    one, two = read_metrics(runs / "one" / "metrics.jsonl"), read_metrics(runs / "two" / "metrics.jsonl")
    steps = lambda records: [r["step"] for r in records if "loss" in r]  # noqa: E731
    losses = lambda records: [r["loss"] for r in records if "loss" in r]  # noqa: E731
    assert steps(two) == steps(one) == list(range(1, 13))
    assert losses(two) == pytest.approx(losses(one), rel=1e-6, abs=1e-7)
    plan = json.loads((runs / "two" / "distributed.json").read_text())
    assert plan == {"world_size": 2, "global_batch": 32, "micro_batches": 2, "micro_batch": 16,
                    "per_rank_batch": 16, "per_rank_accum": 1, "backend": "gloo"}
    assert json.loads((runs / "one" / "distributed.json").read_text())["per_rank_accum"] == 2
    a = load_file(str(ckpt.list_checkpoints(runs / "one" / "checkpoints")[-1]))
    b = load_file(str(ckpt.list_checkpoints(runs / "two" / "checkpoints")[-1]))
    assert a.keys() == b.keys()
    for key in a:  # weights and the EMA written by rank 0 agree with the single process
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6)
    # the final evaluation: both ranks sampled 32 of the 64 samples, rank 0 scored and drew them
    final = {name: [json.loads(line)["summary"] for line in (runs / name / "metrics.jsonl").read_text().splitlines()
                    if "summary" in line][-1] for name in ("one", "two")}
    assert {"forward/mean_error", "backward/var_error", "forward/cov_x0_x1_diag"} <= final["two"].keys()
    for key in ("forward/mean_error", "backward/mean_error"):  # same weights, other draws: close, not equal
        assert final["two"][key] == pytest.approx(final["one"][key], abs=0.3)
    assert (runs / "two" / "pictures" / "forward_step000012.png").is_file()


def test_batch_plan_splits_the_global_batch():
    plan = plan_batches(64, 4)
    assert (plan.world_size, plan.micro_batch, plan.per_rank_accum, list(plan.indices())) == (1, 16, 4, [0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"batch_size \(30\) must be divisible by the number of micro-batches \(4"):
        plan_batches(30, 4)


def test_micro_batch_seeds_depend_on_step_and_index_only():
    seeds = {micro_seeds(0, step, index) for step in range(3) for index in range(3)}
    assert len(seeds) == 9 and micro_seeds(0, 1, 2) == micro_seeds(0, 1, 2) != micro_seeds(1, 1, 2)


def test_fp16_uses_a_grad_scaler_and_bf16_stays_close_to_fp32(tiny_gaussian, plugins, tmp_path):
    common = ["train.steps=3", "train.log_every=1", "train.checkpoint_every=0", "train.eval_samples=32",
              "sampler.steps=2"]
    _run(tiny_gaussian, plugins, "name=fp32", *common)
    _run(tiny_gaussian, plugins, "name=bf16", "train.precision=bf16", *common)
    _run(tiny_gaussian, plugins, "name=fp16", "train.precision=fp16", *common)
    runs = tmp_path / "runs"
    loss = {p: [r["loss"] for r in read_metrics(runs / p / "metrics.jsonl") if "loss" in r]
            for p in ("fp32", "bf16", "fp16")}
    assert loss["bf16"][0] != loss["fp32"][0]  # autocast really changed the arithmetic
    for precision in ("bf16", "fp16"):
        assert loss[precision][0] == pytest.approx(loss["fp32"][0], rel=0.03)
        assert all(torch.isfinite(torch.tensor(loss[precision])))
    state = ckpt.load_state(ckpt.list_checkpoints(runs / "fp16" / "checkpoints")[-1])
    # the scaled fp16 gradients overflow at the initial scale 2**16: each step is skipped and the scale halved
    assert state["scaler"]["scale"] == 2.0**13 and state["scaler"]["_growth_tracker"] == 0
    assert ckpt.load_state(ckpt.list_checkpoints(runs / "fp32" / "checkpoints")[-1])["scaler"] == {}


def _gather_worker(rank: int, init_file: str, results: str) -> None:
    import torch.distributed as dist

    from sbcore.launch.distributed import gather_to_main, shard

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        local = shard(5)  # 3 on rank 0, 2 on rank 1
        x = torch.full((local, 2), float(rank))
        path = torch.full((4, local, 2), float(rank))
        got, got_path = gather_to_main(x), gather_to_main(path, dim=1)
        if rank == 0:
            save_file({"x": got, "path": got_path}, results)
        else:
            assert got is None and got_path is None
    finally:
        dist.destroy_process_group()


def test_evaluation_shards_are_gathered_on_rank_zero(tmp_path):
    results = tmp_path / "gathered.safetensors"
    torch.multiprocessing.spawn(_gather_worker, args=(str(tmp_path / "init"), str(results)), nprocs=2)
    out = load_file(str(results))
    assert out["x"][:, 0].tolist() == [0, 0, 0, 1, 1]
    assert out["path"].shape == (4, 5, 2) and out["path"][0, :, 0].tolist() == [0, 0, 0, 1, 1]


def _whole_split_worker(rank: int, init_file: str, results: str) -> None:
    import torch.distributed as dist

    from sbcore.data.memory import MemorySource
    from sbcore.launch.distributed import gather_to_main
    from sbcore.metrics.eval_data import WholeSplit

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        source = MemorySource(torch.arange(7.0).view(7, 1), name="seven", labels=torch.arange(7) * 10)
        whole = WholeSplit(source)
        got = gather_to_main(whole.sample(0, torch.Generator()))
        labels = gather_to_main(whole.labels_of_draw(0, torch.Generator()))
        if rank == 0:
            save_file({"x": got, "labels": labels}, results)
    finally:
        dist.destroy_process_group()


def test_a_whole_split_is_sharded_and_gathered_back_in_order(tmp_path):
    """n=all under DDP: each rank evaluates its contiguous share; rank 0 gets every item once, in order."""
    results = tmp_path / "whole.safetensors"
    torch.multiprocessing.spawn(_whole_split_worker, args=(str(tmp_path / "init"), str(results)), nprocs=2)
    out = load_file(str(results))
    assert out["x"][:, 0].tolist() == list(range(7)) and out["labels"].tolist() == [10 * i for i in range(7)]
