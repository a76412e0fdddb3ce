"""How far the released I2SB blur (`reference_channel_order: true`) is from the intended one, on colour images.

    python plugins/sb-i2sb/benchmarks/blur_channel_order.py --n 256 --sizes 32 64

The offline data are grayscale, where both agree, so colour test images are made from three different
Fashion-MNIST test images as the R, G and B channels (zero-padded to 32 px, bilinear up to larger sizes).
For each blur and size: PSNR and MSE of the shipped degraded image against the intended one (images in
[0, 1]), the largest pixel difference, and the mean brightness of both.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sb_i2sb.corruption import GaussianBlur, UniformBlur


def colour_images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    data = np.load(Path(os.environ.get("SBCORE_DATA_DIR", "/work/shared/data")) / "fashion_mnist.npz")["x_test"]
    index = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[: 3 * n]
    x = torch.as_tensor(np.pad(data[index.numpy()], ((0, 0), (2, 2), (2, 2))), dtype=torch.float64) / 127.5 - 1
    x = x.view(n, 3, 32, 32)
    return x if size == 32 else F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for size in args.sizes:
        x = colour_images(args.n, size)
        for name, op in (("blur-uni", UniformBlur), ("blur-gauss", GaussianBlur)):
            intended = (op()(x).x1 + 1) / 2
            shipped = (op(reference_channel_order=True)(x).x1 + 1) / 2
            mse = float((shipped - intended).pow(2).mean())
            rows.append({"operator": name, "size": size, "n": args.n, "psnr": 10 * np.log10(1 / mse), "mse": mse,
                         "max_abs": float((shipped - intended).abs().max()),
                         "mean_intended": float(intended.mean()), "mean_shipped": float(shipped.mean())})
    print("| operator | size | n | PSNR shipped vs intended (dB) | MSE | max abs | mean intended / shipped |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['operator']} | {r['size']} | {r['n']} | {r['psnr']:.2f} | {r['mse']:.2e} | {r['max_abs']:.3f} | "
              f"{r['mean_intended']:.4f} / {r['mean_shipped']:.4f} |")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
