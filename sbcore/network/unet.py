"""A small DDPM-style UNet (Ho et al. 2020, App. B; scale/shift time conditioning of Dhariwal & Nichol 2021, Sec. 3).

Residual blocks of GroupNorm + SiLU + 3x3 conv, conditioned on t through a per-channel scale and
shift after the second GroupNorm; stride-2 conv downsampling, nearest + conv upsampling and
optional multi-head self-attention at chosen levels. Odd sizes (28 -> 14 -> 7 -> 4) need no
padding: the stride-2 conv gives ceil(H/2), and each upsampling resizes to the exact size of the
skip connection it is concatenated with.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sbcore.network.base import Network
from sbcore.network.embedding import TimeEmbedding, class_labels, time_like


class ResBlock(nn.Module):
    """x + conv(drop(SiLU(GN(conv(SiLU(GN(x)))) * (1 + scale(t)) + shift(t)))), 1x1 conv skip on a width change."""

    def __init__(self, c_in: int, c_out: int, time_dim: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(time_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.time(F.silu(temb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H*W pixels, residual (Ho et al. 2020 use it at 16x16)."""

    def __init__(self, channels: int, heads: int, groups: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # each (b, heads, h*w, c // heads)
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class _Stage(nn.Module):
    """A ResBlock, followed by self-attention at attention levels."""

    def __init__(self, c_in: int, c_out: int, time_dim: int, groups: int, dropout: float, heads: int | None) -> None:
        super().__init__()
        self.res = ResBlock(c_in, c_out, time_dim, groups, dropout)
        self.attn = SelfAttention(c_out, heads, groups) if heads is not None else None

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.res(x, temb)
        return self.attn(h) if self.attn is not None else h


class Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)  # H -> ceil(H / 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor, size: torch.Size) -> Tensor:
        return self.conv(F.interpolate(x, size=size, mode="nearest"))


class UNet(Network):
    """UNet for images of shape (C, H, W); level i has `channels * channel_mults[i]` channels.

    `attention_levels` lists level indices (0 = full resolution) whose stages get self-attention;
    the middle block runs at the deepest level's resolution and gets attention when that level is
    listed. The final conv is zero-initialised, so the untrained drift is exactly 0 (samplers then
    leave x in place up to noise, and the first loss is just the target's second moment), which
    keeps early training stable. `cond_channels` > 0 concatenates a same-sized conditioning image,
    passed as ``cond=``, to the input (I2SB's `cond_x1`, Liu et al. 2023, Sec. 4).

    `num_classes` > 0 makes it class-conditional: ``label=`` (B,) integers in [0, num_classes] add a
    learned embedding to the time embedding (Dhariwal & Nichol 2021, Sec. 3). Label `num_classes` (also
    what a missing ``label=`` means) is the null class that classifier-free guidance contrasts with
    (Ho & Salimans 2022, Sec. 3.2), learned by dropping labels in training (`train.label_dropout`).
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        channels: int = 32,
        channel_mults: tuple[int, ...] = (1, 2, 2),
        num_res_blocks: int = 1,
        attention_levels: tuple[int, ...] = (),
        dropout: float = 0.0,
        groups: int = 8,
        num_heads: int = 4,
        cond_channels: int = 0,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        mults = tuple(int(m) for m in channel_mults)
        attention = tuple(int(a) for a in attention_levels)
        widths = [channels * m for m in mults]
        _validate(shape, channels, mults, num_res_blocks, attention, dropout, groups, num_heads, widths)
        self.shape = tuple(int(s) for s in shape)
        if cond_channels < 0:
            raise ValueError(f"UNet cond_channels must be >= 0, got {cond_channels}")
        self.cond_channels = int(cond_channels)
        if num_classes < 0:
            raise ValueError(f"UNet num_classes must be >= 0, got {num_classes}")
        self.num_classes = int(num_classes)
        time_dim = 4 * channels
        self.time = TimeEmbedding(channels, time_dim)
        self.label = nn.Embedding(self.num_classes + 1, time_dim) if self.num_classes else None
        self.inp = nn.Conv2d(self.shape[0] + self.cond_channels, widths[0], 3, padding=1)

        def stage(c_in: int, c_out: int, attend: bool) -> _Stage:
            return _Stage(c_in, c_out, time_dim, groups, dropout, num_heads if attend else None)

        self.down = nn.ModuleList()
        skips, cur = [widths[0]], widths[0]
        for level, width in enumerate(widths):
            for _ in range(num_res_blocks):
                self.down.append(stage(cur, width, level in attention))
                cur = width
                skips.append(cur)
            if level < len(widths) - 1:
                self.down.append(Downsample(cur))
                skips.append(cur)
        deepest = len(widths) - 1 in attention
        self.mid = nn.ModuleList([stage(cur, cur, deepest), stage(cur, cur, False)])
        self.up = nn.ModuleList()
        for level, width in reversed(list(enumerate(widths))):
            for _ in range(num_res_blocks + 1):
                self.up.append(stage(cur + skips.pop(), width, level in attention))
                cur = width
            if level > 0:
                self.up.append(Upsample(cur))
        self.out = nn.Sequential(nn.GroupNorm(groups, cur), nn.SiLU(), nn.Conv2d(cur, self.shape[0], 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: Tensor, t: Tensor, **cond: Any) -> Tensor:
        image = cond.pop("cond", None) if self.cond_channels else None
        label = cond.pop("label", None) if self.num_classes else None
        if cond:
            accepted = [k for k, on in (("cond", self.cond_channels), ("label", self.num_classes)) if on]
            raise TypeError(f"UNet takes no conditioning inputs{' but ' + ' and '.join(accepted) if accepted else ''}, "
                            f"got {sorted(cond)}")
        if x.ndim != 4 or x.shape[1] != self.shape[0]:
            raise ValueError(f"UNet input must have shape (B, {self.shape[0]}, H, W), got {tuple(x.shape)}")
        if self.cond_channels:
            want = (x.shape[0], self.cond_channels, *x.shape[2:])
            if image is None or tuple(image.shape) != want:
                got = None if image is None else tuple(image.shape)
                raise ValueError(f"UNet cond must have shape {want} (cond_channels={self.cond_channels}), got {got}")
            x = torch.cat([x, image.to(x.dtype)], dim=1)
        temb = self.time(time_like(t, x))
        if self.label is not None:
            temb = temb + self.label(class_labels(label, x.shape[0], self.num_classes, x.device))
        h = self.inp(x)
        skips = [h]
        for module in self.down:
            h = module(h) if isinstance(module, Downsample) else module(h, temb)
            skips.append(h)
        for module in self.mid:
            h = module(h, temb)
        for module in self.up:
            if isinstance(module, Upsample):
                h = module(h, skips[-1].shape[-2:])
            else:
                h = module(torch.cat([h, skips.pop()], dim=1), temb)
        return self.out(h)


def _validate(
    shape: tuple[int, ...],
    channels: int,
    mults: tuple[int, ...],
    num_res_blocks: int,
    attention: tuple[int, ...],
    dropout: float,
    groups: int,
    num_heads: int,
    widths: list[int],
) -> None:
    """Fail at construction, naming the argument, what was expected and what was given."""
    if len(shape) != 3 or any(int(s) < 1 for s in shape):
        raise ValueError(f"UNet shape must be 3-D (C, H, W) with positive sizes, got {tuple(shape)}")
    if channels < 2:  # also the sinusoidal time-embedding width
        raise ValueError(f"UNet channels must be >= 2, got {channels}")
    if not mults or any(m < 1 for m in mults):
        raise ValueError(f"UNet channel_mults must be a non-empty list of positive ints, got {list(mults)}")
    if num_res_blocks < 1:
        raise ValueError(f"UNet num_res_blocks must be >= 1, got {num_res_blocks}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"UNet dropout must be in [0, 1), got {dropout}")
    if groups < 1 or any(w % groups for w in widths):
        raise ValueError(
            f"UNet groups must divide every channel count {widths} (channels * channel_mults), got {groups}"
        )
    bad = [a for a in attention if not 0 <= a < len(mults)]
    if bad:
        raise ValueError(f"UNet attention_levels must be level indices in [0, {len(mults) - 1}], got {list(attention)}")
    heads_bad = [widths[a] for a in attention if num_heads < 1 or widths[a] % num_heads]
    if heads_bad:
        raise ValueError(
            f"UNet num_heads must divide the channel counts {heads_bad} at attention_levels, got {num_heads}"
        )
