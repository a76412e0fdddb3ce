"""Train the digits/letters/fashion CNN of `sbcore.metrics.digits` and write its weights.

    SBCORE_DATA_DIR=/path/to/data python -m sbcore.metrics.train_digits [--out FILE] [--epochs 4]

Trains on MNIST train, Fashion-MNIST train and the training part of the offline EMNIST letters file
(A-M, 80% of each class). An epoch shows each domain PASSES[domain] times (half of MNIST, which is
easy; all of Fashion-MNIST, which is hardest; the small letters set four times), with random shifts of
up to 2 pixels and, for clothes only, random horizontal flips. Everything runs on the CPU with one seed
and a fixed thread count, so the same torch version reproduces the shipped file byte for byte; the
script prints the test accuracy per domain and the SHA-256 to put in `digits.WEIGHTS_SHA256`.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from sbcore.metrics.digits import DOMAINS, OFFSETS, WEIGHTS, DigitsCNN, load_domain, sha256_of

#: passes over each domain's training images per epoch (fractions draw a fresh random subset).
PASSES = {"digits": 0.5, "letters": 4.0, "fashion": 1.0}


def shift(x: torch.Tensor, generator: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Translate each image by an integer offset in [-max_shift, max_shift]^2 (zero fill)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, n), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None].expand(n, 1, h, w + 2 * max_shift)
    cropped = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :].expand(n, 1, h, w)
    return cropped.gather(3, cols)


@torch.no_grad()
def accuracy(net: DigitsCNN, images: torch.Tensor, labels: torch.Tensor) -> float:
    net.eval()
    pred = torch.cat([net(chunk)[1].argmax(-1) for chunk in images.split(1000)])
    return float((pred == labels).double().mean())


def train(epochs: int, batch_size: int, lr: float, seed: int) -> DigitsCNN:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    parts = {d: load_domain(d, "train") for d in DOMAINS}
    images = torch.cat([parts[d][0] for d in DOMAINS])
    labels = torch.cat([parts[d][1] for d in DOMAINS])
    sizes = [len(parts[d][1]) for d in DOMAINS]
    starts = {d: sum(sizes[:i]) for i, d in enumerate(DOMAINS)}
    fashion = labels >= OFFSETS["fashion"]

    def epoch_order() -> torch.Tensor:
        chosen = []
        for d in DOMAINS:
            n = len(parts[d][1])
            passes = torch.cat([torch.randperm(n, generator=generator) for _ in range(math.ceil(PASSES[d]))])
            chosen.append(starts[d] + passes[: round(PASSES[d] * n)])
        order = torch.cat(chosen)
        return order[torch.randperm(len(order), generator=generator)]

    net = DigitsCNN()
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = sum(round(PASSES[d] * len(parts[d][1])) for d in DOMAINS) // batch_size
    total = epochs * steps_per_epoch
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total)
    started = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        order = epoch_order()
        running = 0.0
        for i in range(steps_per_epoch):
            idx = order[i * batch_size:(i + 1) * batch_size]
            x = images[idx]
            flip = fashion[idx] & (torch.rand(len(idx), generator=generator) < 0.5)
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            _, logits = net(shift(x, generator))
            loss = F.cross_entropy(logits, labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            running += float(loss.detach())
            if (i + 1) % 200 == 0:
                print(f"epoch {epoch + 1} step {i + 1}/{steps_per_epoch} loss {running / 200:.4f} "
                      f"({time.perf_counter() - started:.0f} s)", flush=True)
                running = 0.0
    return net.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    net = train(args.epochs, args.batch_size, args.lr, args.seed)
    for domain in DOMAINS:
        x, y = load_domain(domain, "test")
        print(f"test accuracy {domain}: {accuracy(net, x, y):.4f} ({len(y)} images)")
    x, y = load_domain("letters", "test")
    a_to_e = y < OFFSETS["letters"] + 5
    print(f"test accuracy letters A-E: {accuracy(net, x[a_to_e], y[a_to_e]):.4f} ({int(a_to_e.sum())} images)")
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(args.out), metadata={"format": "pt", "classes": "digits0-9,letters A-M,fashion0-9"})
    print(f"wrote {args.out}  sha256 {sha256_of(args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
