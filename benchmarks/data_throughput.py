"""Data throughput: MNIST 60k streamed from webdataset shards against the in-memory source.

Writes the MNIST train split (60,000 digits, padded to 32 x 32, uint8) to pre-batched shards, then
measures samples/s at batch 128 for

* ``memory``: the `mnist` source's own `sample` (uint8 in memory, gather + decode per batch);
* ``memory+loader``: a `TensorDataset` through `DataLoader(shuffle=True)`, decoded in the main process;
* ``shards``: the `shards` source with a 10k-sample shuffle buffer;

with 0, 1 and 2 DataLoader workers, one epoch each after a warm-up batch (worker start-up and the
shuffle buffer's first fill are excluded). It then times one training step of the MNIST UNet (`bm`,
both directions, the `unet` defaults at batch 128) and reports how many times faster than the step
consumes data each pipeline delivers.

    python benchmarks/data_throughput.py [--threads 1] [--epoch 60000] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from sbcore.data.images import MNIST
from sbcore.data.memory import decode_affine
from sbcore.data.shards import ShardSource, write_shards
from sbcore.network.unet import UNet
from sbcore.process.brownian import BrownianBridge
from sbcore.train.bridge_matching import bridge_matching_loss

BATCH = 128


def _rate(draw, epoch: int) -> float:
    draw()  # warm-up: workers start, the shuffle buffer fills
    start, n = time.perf_counter(), 0
    while n < epoch:
        n += len(draw())
    return n / (time.perf_counter() - start)


def memory_rate(source: MNIST, epoch: int) -> float:
    generator = torch.Generator().manual_seed(0)
    return _rate(lambda: source.sample(BATCH, generator), epoch)


def loader_rate(source: MNIST, workers: int, epoch: int) -> float:
    dataset = torch.utils.data.TensorDataset(source.data)
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=workers,
                                         persistent_workers=workers > 0, drop_last=True)
    state = {"it": iter(loader)}

    def draw() -> torch.Tensor:
        try:
            (raw,) = next(state["it"])
        except StopIteration:
            state["it"] = iter(loader)
            (raw,) = next(state["it"])
        return decode_affine(raw, source.scale, source.offset)

    return _rate(draw, epoch)


def shard_rate(urls: str, workers: int, epoch: int, batch: int) -> float:
    source = ShardSource(urls=urls, workers=workers, seed=0, batch=batch)
    generator = torch.Generator().manual_seed(0)
    rate = _rate(lambda: source.sample(BATCH, generator), epoch)
    source.close()
    return rate


def unet_step_seconds(steps: int = 3) -> float:
    """Seconds per `bm` training step of two default UNets on (1, 32, 32) at batch 128."""
    torch.manual_seed(0)
    nets = {d: UNet((1, 32, 32)) for d in ("forward", "backward")}
    params = [p for net in nets.values() for p in net.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-4)
    process = BrownianBridge(1.0)
    x0, x1 = torch.rand(BATCH, 1, 32, 32) * 2 - 1, torch.rand(BATCH, 1, 32, 32) * 2 - 1
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        t = 1e-3 + (1 - 2e-3) * torch.rand(BATCH)
        loss = sum(bridge_matching_loss(net, process, x0, x1, t, d, "mean") for d, net in nets.items())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[len(times[1:]) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epoch", type=int, default=60_000, help="samples timed per configuration")
    parser.add_argument("--out", type=str, default=None, help="shard folder (default: a temporary one)")
    parser.add_argument("--unet-steps", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    mnist = MNIST()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.out or tmp)
        start = time.perf_counter()
        index = write_shards(mnist, str(folder / "mnist-%06d.tar"), maxcount=10_000, progress=False)
        written = time.perf_counter() - start
        size = sum(s["bytes"] for s in index["shards"]) / 2**20
        print(f"wrote {index['count']} samples, {len(index['shards'])} shards, {size:.1f} MiB in {written:.2f} s "
              f"({index['count'] / written:,.0f} samples/s)")
        rows: list[tuple[str, int, float]] = [("memory (mnist source .sample)", 0, memory_rate(mnist, args.epoch))]
        for workers in (0, 1, 2):
            rows.append(("memory (TensorDataset + DataLoader)", workers, loader_rate(mnist, workers, args.epoch)))
        for workers in (0, 1, 2):
            rows.append(("shards (blocks of 256, shuffle 10k)", workers,
                         shard_rate(index["urls"], workers, args.epoch, batch=1024)))
        for workers in (1, 2):
            rows.append(("shards, worker batch 256", workers, shard_rate(index["urls"], workers, args.epoch, 256)))
    step = unet_step_seconds(args.unet_steps)
    need = BATCH / step
    print(f"\nMNIST UNet bm step (2 x UNet defaults, batch {BATCH}, {args.threads} thread(s)): {step:.3f} s "
          f"-> consumes {need:,.0f} samples/s per side\n")
    print("| pipeline | workers | samples/s | x UNet step demand |\n| --- | ---: | ---: | ---: |")
    for name, workers, rate in rows:
        print(f"| {name} | {workers} | {rate:,.0f} | {rate / need:,.0f}x |")


if __name__ == "__main__":
    main()
