"""ADM: the UNet and the noisy-classifier encoder of Dhariwal & Nichol 2021 ("Diffusion Models Beat GANs
on Image Synthesis", Sec. 3 and 4; guided-diffusion), with its configuration keys and parameter names.

The architecture (their Sec. 3): a UNet of residual blocks (GroupNorm(32) - SiLU - 3x3 conv, twice; the
time embedding enters as a per-channel scale and shift after the second GroupNorm with
`use_scale_shift_norm`, added before it otherwise), `num_res_blocks` per resolution, multi-head
self-attention at the resolutions listed in `attention_resolutions` (heads fixed by `num_heads` or by
`num_head_channels` channels each), downsampling and upsampling by strided conv / nearest + conv or, with
`resblock_updown`, inside residual blocks (BigGAN's up/down blocks). A class-conditional model
(`class_cond`) adds a learned class embedding to the time embedding. The classifier (their Sec. 4) is
the downsampling half with a pooled head (`pool`: adaptive, attention, spatial, spatial_v2).

The modules carry the official names, so `state_dict()` matches an official checkpoint key for key
and shape for shape (`sbcore import-weights` converts one; `tests/fixtures/adm_*.safetensors` hold
the official networks' numbers). Deviations: GroupNorm computes in the input's dtype (the official
GroupNorm32 always rounds to float32), and attention uses `scaled_dot_product_attention` (the same
1/sqrt(d) scaling, split per head in the legacy or the new channel order).

Time: sbcore networks take t in [0, 1]; ADM embeds a discrete timestep index. The network feeds
`time_scale * t` to the sinusoidal embedding: 999 (the default) makes t = i / 999 -- the times of
`process: {kind: vp, steps: 1000}`, whose index i is guided-diffusion's timestep -- exactly timestep i.
I2SB's official code feeds its noise levels linspace(1e-4, 1, N) * N, about t * N: use time_scale = N there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sbcore.network.base import Network
from sbcore.network.embedding import class_labels, sinusoidal_embedding, time_like

#: guided-diffusion's channel multipliers by image size, when `channel_mult` is not given.
CHANNEL_MULT = {512: (0.5, 1, 1, 2, 2, 4, 4), 256: (1, 1, 2, 2, 4, 4), 128: (1, 1, 2, 3, 4), 64: (1, 2, 3, 4)}
POOLS = ("adaptive", "attention", "spatial", "spatial_v2")
GROUPS = 32


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(GROUPS, channels)


def _zero(module: nn.Module) -> nn.Module:
    """Residual branches and the output start at zero, so each block starts as the identity."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """x (resampled) + out_layers(in_layers(x) conditioned on emb); `up`/`down` resample inside the block."""

    def __init__(self, c_in: int, emb: int, dropout: float, c_out: int, scale_shift: bool,
                 up: bool = False, down: bool = False) -> None:
        super().__init__()
        self.scale_shift, self.resample = scale_shift, "up" if up else "down" if down else None
        self.in_layers = nn.Sequential(_norm(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb, 2 * c_out if scale_shift else c_out))
        self.out_layers = nn.Sequential(_norm(c_out), nn.SiLU(), nn.Dropout(dropout),
                                        _zero(nn.Conv2d(c_out, c_out, 3, padding=1)))
        self.skip_connection = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def _resample(self, x: Tensor) -> Tensor:
        if self.resample == "up":
            return F.interpolate(x, scale_factor=2, mode="nearest")
        if self.resample == "down":
            return F.avg_pool2d(x, 2)
        return x

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        norm, act, conv = self.in_layers
        h = conv(self._resample(act(norm(x))))
        x = self._resample(x)
        e = self.emb_layers(emb).to(h.dtype)[:, :, None, None]
        norm, rest = self.out_layers[0], self.out_layers[1:]
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = rest(norm(h) * (1 + scale) + shift)
        else:
            h = rest(norm(h + e))
        return self.skip_connection(x) + h


def _heads(channels: int, num_heads: int, num_head_channels: int) -> int:
    if num_head_channels == -1:
        return num_heads
    if channels % num_head_channels:
        raise ValueError(f"ADM num_head_channels ({num_head_channels}) must divide the channels {channels} "
                         "at every attention resolution")
    return channels // num_head_channels


def _attend(qkv: Tensor, heads: int, new_order: bool) -> Tensor:
    """Multi-head attention over the last axis of qkv (B, 3C, T) -> (B, C, T), 1/sqrt(d) scaled.

    new order: qkv is [q | k | v] and each splits into heads; legacy: each head's [q | k | v] is contiguous.
    """
    b, width, length = qkv.shape
    d = width // (3 * heads)
    if new_order:
        q, k, v = (part.reshape(b, heads, d, length) for part in qkv.chunk(3, dim=1))
    else:
        q, k, v = qkv.reshape(b, heads, 3 * d, length).split(d, dim=2)
    out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
    return out.transpose(-1, -2).reshape(b, heads * d, length)


class AttentionBlock(nn.Module):
    """x + proj_out(attention(qkv(norm(x)))) over the H*W positions."""

    def __init__(self, channels: int, heads: int, new_order: bool) -> None:
        super().__init__()
        self.heads, self.new_order = heads, new_order
        self.norm = _norm(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = _zero(nn.Conv1d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, *spatial = x.shape
        flat = x.reshape(b, c, -1)
        h = self.proj_out(_attend(self.qkv(self.norm(flat)), self.heads, self.new_order))
        return (flat + h).reshape(b, c, *spatial)


class Downsample(nn.Module):
    """Stride-2 3x3 conv (`conv_resample`) or 2x2 average pooling; either way named `op`."""

    def __init__(self, channels: int, conv: bool) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1) if conv else nn.AvgPool2d(2)

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Nearest-neighbour doubling, then a 3x3 conv when `conv_resample`."""

    def __init__(self, channels: int, conv: bool) -> None:
        super().__init__()
        if conv:
            self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if hasattr(self, "conv") else x


class Blocks(nn.ModuleList):
    """A list of layers applied in turn, the residual blocks also given the embedding."""

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


def _options(shape: Sequence[int], channel_mult: Sequence[float] | str | None,
             attention_resolutions: Sequence[int] | str, num_heads: int, num_head_channels: int,
             dropout: float, what: str) -> tuple[tuple[int, int, int], tuple[float, ...], tuple[int, ...]]:
    """Check the options shared by both networks; returns (shape, channel multipliers, attention downsample rates)."""
    if len(shape) != 3 or any(int(s) < 1 for s in shape) or shape[1] != shape[2]:
        raise ValueError(f"{what} shape must be (C, H, H) with a square image, got {tuple(shape)}")
    c, size, _ = (int(s) for s in shape)
    if isinstance(channel_mult, str):
        channel_mult = [float(m) for m in channel_mult.split(",") if m.strip()] or None
    if channel_mult is None:
        if size not in CHANNEL_MULT:
            raise ValueError(f"{what} channel_mult: no default for image size {size} (defaults for "
                             f"{sorted(CHANNEL_MULT)}); give channel_mult")
        channel_mult = CHANNEL_MULT[size]
    mults = tuple(float(m) for m in channel_mult)
    if not mults or any(m <= 0 for m in mults):
        raise ValueError(f"{what} channel_mult must be positive numbers, got {list(mults)}")
    if size % 2 ** (len(mults) - 1):
        raise ValueError(f"{what}: image size {size} must be divisible by 2^{len(mults) - 1} "
                         f"(one halving per channel_mult entry after the first)")
    if isinstance(attention_resolutions, str):
        attention_resolutions = [int(r) for r in attention_resolutions.split(",") if r.strip()]
    bad = [r for r in attention_resolutions if int(r) < 1 or size % int(r)]
    if bad:
        raise ValueError(f"{what} attention_resolutions must divide the image size {size}, got {bad}")
    if num_head_channels == -1 and num_heads < 1:
        raise ValueError(f"{what} num_heads must be >= 1 when num_head_channels is -1, got {num_heads}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{what} dropout must be in [0, 1), got {dropout}")
    return (c, size, size), mults, tuple(size // int(r) for r in attention_resolutions)


class _Encoder(nn.Module):
    """The time embedding, the downsampling path and the middle block, shared by both networks."""

    def _build_encoder(self, c_in: int, width: int, mults: tuple[float, ...], num_res_blocks: int,
                       rates: tuple[int, ...],
                       dropout: float, heads: tuple[int, int], new_order: bool, scale_shift: bool,
                       updown: bool, conv_resample: bool) -> list[int]:
        emb = 4 * width
        self.time_embed = nn.Sequential(nn.Linear(width, emb), nn.SiLU(), nn.Linear(emb, emb))
        ch = int(mults[0] * width)
        self.input_blocks = nn.ModuleList([Blocks([nn.Conv2d(c_in, ch, 3, padding=1)])])
        chans, rate = [ch], 1
        for level, mult in enumerate(mults):
            for _ in range(num_res_blocks):
                layers: list[nn.Module] = [ResBlock(ch, emb, dropout, int(mult * width), scale_shift)]
                ch = int(mult * width)
                if rate in rates:
                    layers.append(AttentionBlock(ch, _heads(ch, *heads), new_order))
                self.input_blocks.append(Blocks(layers))
                chans.append(ch)
            if level < len(mults) - 1:
                down = (ResBlock(ch, emb, dropout, ch, scale_shift, down=True) if updown
                        else Downsample(ch, conv_resample))
                self.input_blocks.append(Blocks([down]))
                chans.append(ch)
                rate *= 2
        self.middle_block = Blocks([ResBlock(ch, emb, dropout, ch, scale_shift),
                                    AttentionBlock(ch, _heads(ch, *heads), new_order),
                                    ResBlock(ch, emb, dropout, ch, scale_shift)])
        self._rate = rate
        return chans

    def embed(self, t: Tensor, x: Tensor) -> Tensor:
        width = self.time_embed[0].in_features
        emb = sinusoidal_embedding(time_like(t, x), width, scale=self.time_scale)
        return self.time_embed(emb.to(self.time_embed[0].weight.dtype))


class ADMUNet(_Encoder, Network):
    """guided-diffusion's `UNetModel` for images of shape (C, H, H), configured by its option names.

    `forward(x, t, label=)` returns the eps prediction (B, C, H, H); with `learn_sigma` the network also
    outputs the interpolation weights of its learned variance (Nichol & Dhariwal 2021, eq. (15)), which
    `forward_full` returns as channels C..2C and which the samplers here do not use. `class_cond` needs
    ``label=`` (B,) in [0, num_classes - 1]; this network has no null label (the official models have none).
    """

    has_null_label = False

    def __init__(
        self,
        shape: tuple[int, ...],
        num_channels: int = 128,
        num_res_blocks: int = 2,
        attention_resolutions: Sequence[int] | str = (16, 8),
        channel_mult: Sequence[float] | str | None = None,
        num_heads: int = 4,
        num_head_channels: int = -1,
        num_heads_upsample: int = -1,
        use_scale_shift_norm: bool = True,
        resblock_updown: bool = False,
        use_new_attention_order: bool = False,
        learn_sigma: bool = False,
        class_cond: bool = False,
        num_classes: int = 1000,
        dropout: float = 0.0,
        conv_resample: bool = True,
        time_scale: float = 999.0,
    ) -> None:
        super().__init__()
        shape, mults, rates = _options(shape, channel_mult, attention_resolutions, num_heads, num_head_channels,
                                       dropout, "adm_unet")
        if num_res_blocks < 1 or num_channels < 1:
            raise ValueError(f"adm_unet num_res_blocks and num_channels must be >= 1, "
                             f"got {num_res_blocks}, {num_channels}")
        if class_cond and num_classes < 1:
            raise ValueError(f"adm_unet num_classes must be >= 1 with class_cond, got {num_classes}")
        self.shape, self.time_scale = shape, float(time_scale)
        self.num_classes = int(num_classes) if class_cond else 0
        width, heads = int(num_channels), (int(num_heads), int(num_head_channels))
        up_heads = (int(num_heads if num_heads_upsample == -1 else num_heads_upsample), int(num_head_channels))
        chans = self._build_encoder(shape[0], width, mults, num_res_blocks, rates, dropout, heads,
                                    use_new_attention_order, use_scale_shift_norm, resblock_updown, conv_resample)
        if class_cond:
            self.label_emb = nn.Embedding(self.num_classes, 4 * width)
        emb, ch, rate = 4 * width, chans[-1], self._rate
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(mults))):
            for i in range(num_res_blocks + 1):
                layers: list[nn.Module] = [ResBlock(ch + chans.pop(), emb, dropout, int(mult * width),
                                                    use_scale_shift_norm)]
                ch = int(mult * width)
                if rate in rates:
                    layers.append(AttentionBlock(ch, _heads(ch, *up_heads), use_new_attention_order))
                if level and i == num_res_blocks:
                    layers.append(ResBlock(ch, emb, dropout, ch, use_scale_shift_norm, up=True) if resblock_updown
                                  else Upsample(ch, conv_resample))
                    rate //= 2
                self.output_blocks.append(Blocks(layers))
        out = shape[0] * (2 if learn_sigma else 1)
        self.out = nn.Sequential(_norm(ch), nn.SiLU(), _zero(nn.Conv2d(int(mults[0] * width), out, 3, padding=1)))

    def forward_full(self, x: Tensor, t: Tensor, label: Tensor | int | None = None) -> Tensor:
        """All output channels: eps, then (with learn_sigma) the variance interpolation weights."""
        if x.ndim != 4 or tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"adm_unet input must have shape (B, {', '.join(map(str, self.shape))}), "
                             f"got {tuple(x.shape)}")
        emb = self.embed(t, x)
        if self.num_classes:
            emb = emb + self.label_emb(class_labels(label, x.shape[0], self.num_classes, x.device, null=False))
        h, skips = x, []
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h)

    def forward(self, x: Tensor, t: Tensor, **cond: Any) -> Tensor:
        label = cond.pop("label", None) if self.num_classes else None
        if cond:
            raise TypeError(f"adm_unet takes no conditioning inputs{' but label' if self.num_classes else ''}, "
                            f"got {sorted(cond)}")
        return self.forward_full(x, t, label)[:, : self.shape[0]]


class AttentionPool(nn.Module):
    """CLIP's attention pooling (Radford et al. 2021): the mean position attends over all positions."""

    def __init__(self, positions: int, channels: int, head_channels: int, out: int) -> None:
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.randn(channels, positions + 1) / channels**0.5)
        self.qkv_proj = nn.Conv1d(channels, 3 * channels, 1)
        self.c_proj = nn.Conv1d(channels, out, 1)
        self.heads = channels // head_channels

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(2)
        x = torch.cat([x.mean(dim=-1, keepdim=True), x], dim=-1) + self.positional_embedding.to(x.dtype)
        return self.c_proj(_attend(self.qkv_proj(x), self.heads, new_order=True))[:, :, 0]


class ADMClassifier(_Encoder, Network):
    """guided-diffusion's `EncoderUNetModel`, the noisy classifier p(y | x_t, t) of classifier guidance.

    `forward(x, t)` returns class logits (B, num_classes); its official option names are the
    classifier's (`classifier_width` is num_channels, `classifier_depth` num_res_blocks,
    `classifier_pool` pool).
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        num_channels: int = 128,
        num_res_blocks: int = 2,
        attention_resolutions: Sequence[int] | str = (32, 16, 8),
        channel_mult: Sequence[float] | str | None = None,
        num_heads: int = 1,
        num_head_channels: int = 64,
        use_scale_shift_norm: bool = True,
        resblock_updown: bool = True,
        use_new_attention_order: bool = False,
        pool: Literal["adaptive", "attention", "spatial", "spatial_v2"] = "attention",
        num_classes: int = 1000,
        dropout: float = 0.0,
        conv_resample: bool = True,
        time_scale: float = 999.0,
    ) -> None:
        super().__init__()
        shape, mults, rates = _options(shape, channel_mult, attention_resolutions, num_heads, num_head_channels,
                                       dropout, "adm_classifier")
        if pool not in POOLS:
            raise ValueError(f"adm_classifier pool must be one of {', '.join(POOLS)}, got {pool!r}")
        if pool == "attention" and num_head_channels == -1:
            raise ValueError("adm_classifier pool 'attention' needs num_head_channels (not -1)")
        if num_classes < 1 or num_res_blocks < 1:
            raise ValueError(f"adm_classifier num_classes and num_res_blocks must be >= 1, got {num_classes}, "
                             f"{num_res_blocks}")
        self.shape, self.time_scale, self.pool, self.num_classes = shape, float(time_scale), pool, int(num_classes)
        width = int(num_channels)
        chans = self._build_encoder(shape[0], width, mults, num_res_blocks, rates, dropout,
                                    (int(num_heads), int(num_head_channels)), use_new_attention_order,
                                    use_scale_shift_norm, resblock_updown, conv_resample)
        ch = chans[-1]
        if pool == "adaptive":
            self.out = nn.Sequential(_norm(ch), nn.SiLU(), nn.AdaptiveAvgPool2d(1),
                                     _zero(nn.Conv2d(ch, num_classes, 1)), nn.Flatten())
        elif pool == "attention":
            side = shape[1] // self._rate
            self.out = nn.Sequential(_norm(ch), nn.SiLU(),
                                     AttentionPool(side * side, ch, num_head_channels, num_classes))
        else:
            features = sum(chans) + ch  # every input block's mean, then the middle block's
            if pool == "spatial":
                self.out = nn.Sequential(nn.Linear(features, 2048), nn.ReLU(), nn.Linear(2048, num_classes))
            else:
                self.out = nn.Sequential(nn.Linear(features, 2048), _norm(2048), nn.SiLU(),
                                         nn.Linear(2048, num_classes))

    def forward(self, x: Tensor, t: Tensor, **cond: Any) -> Tensor:
        if cond:
            raise TypeError(f"adm_classifier takes no conditioning inputs, got {sorted(cond)}")
        if x.ndim != 4 or tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"adm_classifier input must have shape (B, {', '.join(map(str, self.shape))}), "
                             f"got {tuple(x.shape)}")
        emb = self.embed(t, x)
        h, means = x, []
        for block in self.input_blocks:
            h = block(h, emb)
            means.append(h.mean(dim=(2, 3)))
        h = self.middle_block(h, emb)
        if self.pool.startswith("spatial"):
            return self.out(torch.cat([*means, h.mean(dim=(2, 3))], dim=-1))
        return self.out(h)
