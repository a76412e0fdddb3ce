"""Write an .npz of (x0 clean, x1 degraded) pairs for examples/i2sb/paired-npz.yaml.

    python examples/i2sb/make_pairs.py --corruption blur-uni --n 10000 --out pairs.npz

Clean images: MNIST 32x32 (``$SBCORE_DATA_DIR/mnist.npz``) in [-1, 1]; x1 = the named corruption operator.
Any arrays of this layout (x0, x1: (N, C, H, W) float in [-1, 1]) train the same way.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from sb_i2sb.corruption import OPERATORS

from sbcore.data.images import MNIST


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corruption", default="blur-uni", choices=sorted(OPERATORS))
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="pairs.npz")
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(args.seed)
    x0 = MNIST(split="train", size=32).sample(args.n, generator)
    x1 = OPERATORS[args.corruption]()(x0, generator).x1
    np.savez_compressed(args.out, x0=x0.numpy(), x1=x1.numpy())
    print(f"wrote {args.out}: x0 {tuple(x0.shape)}, x1 {tuple(x1.shape)} ({args.corruption})")


if __name__ == "__main__":
    main()
