"""UniMatch optical flow, the flow model MotionEdit's reward and MAS are defined with.

The network is the gmflow-scale2-regrefine6 variant of UniMatch: a CNN feature pyramid at 1/8
and 1/4 resolution, a six-layer self/cross-attention transformer over shifted windows, global
matching at 1/8, local matching at 1/4, flow propagation by feature self-attention, and six
steps of local-regression refinement with convex upsampling. It is written here so that the
official checkpoint loads with strict key and shape matching: a checkpoint that does not fit
is an error naming the keys, never a model that silently keeps random weights.

Inputs are RGB images in 0..255. As the MotionEdit scorer does, they are zero-padded on the
right and bottom to a multiple of 32 and the flow is cropped back, so border pixels see the
same context they see in the released scorer.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from motionedit.devices import resolve_device
from motionedit.flow import (
    UNIMATCH_CHECKPOINT_NAME,
    UNIMATCH_CHECKPOINT_URL,
    unimatch_checkpoint_problem,
)

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_REFINE_RADIUS = 4


@dataclass(frozen=True)
class UniMatchSettings:
    """Architecture and inference settings of the checkpoint (gmflow-scale2-regrefine6)."""

    feature_channels: int = 128
    num_scales: int = 2
    upsample_factor: int = 4
    ffn_dim_expansion: int = 4
    num_transformer_layers: int = 6
    attn_splits: tuple[int, ...] = (2, 8)
    corr_radius: tuple[int, ...] = (-1, 4)
    prop_radius: tuple[int, ...] = (-1, 1)
    num_reg_refine: int = 6
    padding_factor: int = 32

    def __post_init__(self) -> None:
        n = self.num_scales
        if not 1 <= n <= 4:
            raise ValueError(f"UniMatch num_scales must be 1 to 4, got {n}")
        for name in ("attn_splits", "corr_radius", "prop_radius"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"UniMatch {name} needs one value per scale ({n})")
        if self.num_reg_refine < 1:
            raise ValueError("UniMatch num_reg_refine must be at least 1")


# ---------------------------------------------------------------------------------------------
# Small geometric helpers


def _in_float32(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Run ``fn`` outside autocast on float32 tensors.

    Matching turns feature similarities into pixel coordinates; in bfloat16 a coordinate of
    128 rounds to half a pixel, so under a half-precision autocast these steps stay float32
    while the convolutions and the transformer run in half precision. In float32 runs it
    changes nothing.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any) -> Tensor:
        device = next(a.device.type for a in args if isinstance(a, Tensor))
        with torch.autocast(device, enabled=False):
            return fn(*(a.float() if isinstance(a, Tensor) else a for a in args))

    return wrapper


def _pixel_grid(h: int, w: int, like: Tensor) -> Tensor:
    """[2, H, W] pixel coordinates, x then y."""
    ys, xs = torch.meshgrid(
        torch.arange(h, device=like.device, dtype=like.dtype),
        torch.arange(w, device=like.device, dtype=like.dtype),
        indexing="ij",
    )
    return torch.stack((xs, ys))


@_in_float32
def _sample(feature: Tensor, coords: Tensor) -> Tensor:
    """Bilinear lookup of ``feature`` [B,C,H,W] at pixel ``coords`` [B,2,H',W'], zeros outside."""
    h, w = feature.shape[-2:]
    gx = 2 * coords[:, 0] / (w - 1) - 1
    gy = 2 * coords[:, 1] / (h - 1) - 1
    grid = torch.stack((gx, gy), dim=-1)
    return F.grid_sample(feature, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def _window_grid(radius: int, like: Tensor) -> Tensor:
    """[(2r+1)^2, 2] window offsets (x, y), row-major: the order the refinement weights expect."""
    span = torch.linspace(-radius, radius, 2 * radius + 1, device=like.device, dtype=like.dtype)
    dy, dx = torch.meshgrid(span, span, indexing="ij")
    return torch.stack((dx, dy), dim=-1).reshape(-1, 2)


# Pixels (over the whole batch) per chunk of windowed matching: bounds the [pixels, C, window]
# sample tensor to about 170 MB at any image and batch size. Every pixel's result is computed
# independently, so chunking does not change the numbers.
_WINDOW_PIXELS = 4096


def _window_correlation(f0: Tensor, f1: Tensor, coords: Tensor) -> Tensor:
    """[B, N, K] dot products of f0's N pixels with f1 bilinearly sampled at coords [B, N, K, 2].

    The lookups go through ``grid_sample`` on coordinates normalised as ``(x - c) / c`` and one
    batched matmul, the arithmetic the checkpoint was verified with: the network amplifies
    float rounding, so a different but equivalent formula changes the flow measurably.
    """
    b, c, h, w = f0.shape
    centre = torch.tensor([(w - 1) / 2.0, (h - 1) / 2.0], device=f0.device, dtype=f0.dtype)
    queries = f0.permute(0, 2, 3, 1).reshape(b, h * w, 1, c)
    out = []
    chunk = max(1, _WINDOW_PIXELS // b)
    for start in range(0, h * w, chunk):
        part = slice(start, start + chunk)
        grid = (coords[:, part] - centre) / centre
        window = F.grid_sample(f1, grid, padding_mode="zeros", align_corners=True)
        out.append(torch.matmul(queries[:, part], window.permute(0, 2, 1, 3)).squeeze(2))
    return torch.cat(out, dim=1) / c**0.5


def _sine_position(channels: int, h: int, w: int, like: Tensor) -> Tensor:
    """[C, H, W] sine position code over one attention window (normalised to 2*pi)."""
    half = channels // 2
    dim_t = torch.arange(half, dtype=torch.float32, device=like.device)
    dim_t = 10000 ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / half)

    def encode(n: int) -> Tensor:
        pos = torch.arange(1, n + 1, dtype=torch.float32, device=like.device)
        pos = pos / (n + 1e-6) * (2 * math.pi)
        angles = pos[:, None] / dim_t
        return torch.stack((angles[:, 0::2].sin(), angles[:, 1::2].cos()), dim=-1).flatten(1)

    pos_y = encode(h)[:, None, :].expand(h, w, half)
    pos_x = encode(w)[None, :, :].expand(h, w, half)
    return torch.cat((pos_y, pos_x), dim=-1).permute(2, 0, 1).to(like.dtype)


# ---------------------------------------------------------------------------------------------
# Feature pyramid


class _ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride), nn.InstanceNorm2d(cout)
            )

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(F.instance_norm(self.conv1(x)))
        y = F.relu(F.instance_norm(self.conv2(y)))
        if self.downsample is not None:
            x = self.downsample(x)
        return F.relu(x + y)


class _SharedStrideConv(nn.Module):
    """One 3x3 kernel applied at strides 1, 2, 4...: the pyramid levels share their weights."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels, channels, 3, 3))
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor, stride: int) -> Tensor:
        return F.conv2d(x, self.weight, stride=stride, padding=1)


class _Encoder(nn.Module):
    def __init__(self, channels: int, num_scales: int) -> None:
        super().__init__()
        self.num_scales = num_scales
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.layer1 = nn.Sequential(_ResidualBlock(64, 64, 1), _ResidualBlock(64, 64, 1))
        self.layer2 = nn.Sequential(_ResidualBlock(64, 96, 2), _ResidualBlock(96, 96, 1))
        last_stride = 1 if num_scales > 1 else 2
        self.layer3 = nn.Sequential(
            _ResidualBlock(96, 128, last_stride), _ResidualBlock(128, 128, 1)
        )
        self.conv2 = nn.Conv2d(128, channels, 1)
        if num_scales > 1:
            self.trident_conv = _SharedStrideConv(channels)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Features from the coarsest level to the finest."""
        x = F.relu(F.instance_norm(self.conv1(x)))
        x = self.conv2(self.layer3(self.layer2(self.layer1(x))))
        if self.num_scales == 1:
            return [x]
        return [self.trident_conv(x, 2**i) for i in reversed(range(self.num_scales))]


# ---------------------------------------------------------------------------------------------
# Transformer over (shifted) windows


class _Windows:
    """Window partition of an H x W token grid into splits x splits windows, and its shift mask."""

    def __init__(self, h: int, w: int, splits: int, like: Tensor) -> None:
        self.h, self.w, self.k = h, w, splits
        self.wh, self.ww = h // splits, w // splits
        self.sh, self.sw = self.wh // 2, self.ww // 2
        self.mask = self._shift_mask(like) if splits > 1 else None

    def partition(self, x: Tensor) -> Tensor:
        """[B, H*W, C] -> [B*K*K, wh*ww, C]"""
        b, _, c = x.shape
        x = x.view(b, self.k, self.wh, self.k, self.ww, c).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(b * self.k * self.k, self.wh * self.ww, c)

    def merge(self, x: Tensor) -> Tensor:
        """[B*K*K, wh*ww, C] -> [B, H*W, C]"""
        c = x.shape[-1]
        b = x.shape[0] // (self.k * self.k)
        x = x.view(b, self.k, self.k, self.wh, self.ww, c).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(b, self.h * self.w, c)

    def roll(self, x: Tensor, sign: int) -> Tensor:
        b, n, c = x.shape
        x = x.view(b, self.h, self.w, c).roll((sign * self.sh, sign * self.sw), dims=(1, 2))
        return x.reshape(b, n, c)

    def _shift_mask(self, like: Tensor) -> Tensor:
        """-100 between tokens that a cyclic shift brought into one window from apart."""
        labels = torch.zeros(self.h, self.w, device=like.device)
        rows = (slice(0, -self.wh), slice(-self.wh, -self.sh), slice(-self.sh, None))
        cols = (slice(0, -self.ww), slice(-self.ww, -self.sw), slice(-self.sw, None))
        for i, rs in enumerate(rows):
            for j, cs in enumerate(cols):
                labels[rs, cs] = 3 * i + j
        windows = self.partition(labels.reshape(1, -1, 1))[..., 0]
        different = windows[:, None, :] != windows[:, :, None]
        return torch.zeros_like(different, dtype=like.dtype).masked_fill(different, -100.0)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, shifted: bool) -> Tensor:
        if shifted:
            q, k, v = (self.roll(t, -1) for t in (q, k, v))
        scale = q.shape[-1] ** 0.5
        scores = self.partition(q) @ self.partition(k).transpose(1, 2) / scale
        if shifted:
            scores = scores + self.mask.repeat(q.shape[0], 1, 1)
        out = self.merge(torch.softmax(scores, dim=-1) @ self.partition(v))
        return self.roll(out, 1) if shifted else out


class _AttentionLayer(nn.Module):
    def __init__(self, channels: int, expansion: int, with_ffn: bool) -> None:
        super().__init__()
        self.q_proj = nn.Linear(channels, channels, bias=False)
        self.k_proj = nn.Linear(channels, channels, bias=False)
        self.v_proj = nn.Linear(channels, channels, bias=False)
        self.merge = nn.Linear(channels, channels, bias=False)
        self.norm1 = nn.LayerNorm(channels)
        self.mlp = None
        if with_ffn:
            hidden = 2 * channels * expansion
            self.mlp = nn.Sequential(
                nn.Linear(2 * channels, hidden, bias=False),
                nn.GELU(),
                nn.Linear(hidden, channels, bias=False),
            )
            self.norm2 = nn.LayerNorm(channels)

    def forward(self, x: Tensor, context: Tensor, windows: _Windows, shifted: bool) -> Tensor:
        message = windows.attend(
            self.q_proj(x), self.k_proj(context), self.v_proj(context), shifted
        )
        message = self.norm1(self.merge(message))
        if self.mlp is not None:
            message = self.norm2(self.mlp(torch.cat((x, message), dim=-1)))
        return x + message


class _TransformerBlock(nn.Module):
    def __init__(self, channels: int, expansion: int) -> None:
        super().__init__()
        self.self_attn = _AttentionLayer(channels, expansion, with_ffn=False)
        self.cross_attn_ffn = _AttentionLayer(channels, expansion, with_ffn=True)

    def forward(self, x: Tensor, context: Tensor, windows: _Windows, shifted: bool) -> Tensor:
        x = self.self_attn(x, x, windows, shifted)
        return self.cross_attn_ffn(x, context, windows, shifted)


class _Transformer(nn.Module):
    def __init__(self, layers: int, channels: int, expansion: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_TransformerBlock(channels, expansion) for _ in range(layers))

    def forward(self, f0: Tensor, f1: Tensor, splits: int) -> tuple[Tensor, Tensor]:
        """Both images' features attend to themselves and to each other, in one batch."""
        b, c, h, w = f0.shape
        windows = _Windows(h, w, splits, f0)
        # Memory layouts follow the checkpoint's reference code: the network amplifies float
        # rounding, and a different layout changes which kernel (and rounding) a matmul gets.
        x = torch.cat((f0.flatten(2).transpose(1, 2), f1.flatten(2).transpose(1, 2)))
        for i, layer in enumerate(self.layers):
            context = torch.cat(x.chunk(2)[::-1])
            x = layer(x, context, windows, shifted=splits > 1 and i % 2 == 1)
        f0, f1 = (t.view(b, h, w, c).permute(0, 3, 1, 2).contiguous() for t in x.chunk(2))
        return f0, f1


# ---------------------------------------------------------------------------------------------
# Matching and propagation


@_in_float32
def _global_match(f0: Tensor, f1: Tensor) -> Tensor:
    """Flow as the softmax-weighted mean position of each pixel's matches over the whole image."""
    b, c, h, w = f0.shape
    corr = f0.flatten(2).transpose(1, 2) @ f1.flatten(2) / c**0.5
    grid = _pixel_grid(h, w, f0)[None].expand(b, 2, h, w)
    target = torch.softmax(corr, dim=-1) @ grid.reshape(b, 2, h * w).transpose(1, 2)
    return target.view(b, h, w, 2).permute(0, 3, 1, 2) - grid


@_in_float32
def _local_match(f0: Tensor, f1: Tensor, radius: int) -> Tensor:
    """Residual flow from a softmax over the (2r+1)^2 window; positions outside are excluded."""
    b, _, h, w = f0.shape
    grid = _pixel_grid(h, w, f0)
    pixels = grid.view(2, -1).T[None].expand(b, h * w, 2)
    coords = pixels.unsqueeze(-2) + _window_grid(radius, f0)  # [B, HW, K, 2]
    x, y = coords[..., 0], coords[..., 1]
    inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    corr = _window_correlation(f0, f1, coords).masked_fill(~inside, -1e9)
    target = torch.matmul(torch.softmax(corr, dim=-1).unsqueeze(-2), coords).squeeze(-2)
    return target.view(b, h, w, 2).permute(0, 3, 1, 2) - grid


@_in_float32
def _correlation_around(f0: Tensor, f1: Tensor, flow: Tensor, radius: int) -> Tensor:
    """[B, (2r+1)^2, H, W] correlation of f0 with f1 sampled around where the flow points."""
    b, _, h, w = f0.shape
    pixels = _pixel_grid(h, w, f0).view(2, -1).T[None].expand(b, h * w, 2)
    coords = pixels.unsqueeze(-2) + _window_grid(radius, f0)
    coords = coords + flow.view(b, 2, -1).permute(0, 2, 1).unsqueeze(-2)
    corr = _window_correlation(f0.contiguous(), f1, coords)
    return corr.view(b, h, w, -1).permute(0, 3, 1, 2).contiguous()


class _FlowPropagation(nn.Module):
    """Spreads flow from confident to uncertain pixels along feature similarity."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.q_proj = nn.Linear(channels, channels)
        self.k_proj = nn.Linear(channels, channels)

    @_in_float32
    def forward(self, feature: Tensor, flow: Tensor, radius: int) -> Tensor:
        b, c, h, w = feature.shape
        tokens = feature.flatten(2).transpose(1, 2)
        query = self.q_proj(tokens)
        if radius <= 0:
            # The checkpoint was trained with the key projected from the projected query;
            # the two projections compose into one linear map, so it is kept as trained.
            key = self.k_proj(query)
            prob = torch.softmax(query @ key.transpose(1, 2) / c**0.5, dim=-1)
            return (prob @ flow.flatten(2).transpose(1, 2)).transpose(1, 2).view(b, 2, h, w)
        # Zero padding takes part in the softmax (score 0, flow 0), as in training.
        size = 2 * radius + 1
        key = self.k_proj(tokens).permute(0, 2, 1).reshape(b, c, h, w)
        keys = F.unfold(key, size, padding=radius).view(b, c, size**2, h, w)
        keys = keys.permute(0, 3, 4, 1, 2).reshape(b * h * w, c, size**2)
        flows = F.unfold(flow, size, padding=radius).view(b, 2, size**2, h, w)
        flows = flows.permute(0, 3, 4, 2, 1).reshape(b * h * w, size**2, 2)
        prob = torch.softmax(torch.matmul(query.reshape(b * h * w, 1, c), keys) / c**0.5, dim=-1)
        return torch.matmul(prob, flows).view(b, h, w, 2).permute(0, 3, 1, 2).contiguous()


@_in_float32
def _convex_upsample(flow: Tensor, mask: Tensor, factor: int) -> Tensor:
    """Each fine pixel is a softmax-weighted mix of its coarse 3x3 neighbourhood's flow."""
    b, _, h, w = flow.shape
    weights = torch.softmax(mask.view(b, 1, 9, factor, factor, h, w), dim=2)
    neighbours = F.unfold(factor * flow, 3, padding=1).view(b, 2, 9, 1, 1, h, w)
    up = (weights * neighbours).sum(2)  # [B, 2, f, f, H, W]
    return up.permute(0, 1, 4, 2, 5, 3).reshape(b, 2, factor * h, factor * w)


# ---------------------------------------------------------------------------------------------
# Local regression refinement


class _MotionEncoder(nn.Module):
    def __init__(self, corr_channels: int) -> None:
        super().__init__()
        self.convc1 = nn.Conv2d(corr_channels, 256, 1)
        self.convc2 = nn.Conv2d(256, 192, 3, padding=1)
        self.convf1 = nn.Conv2d(2, 128, 7, padding=3)
        self.convf2 = nn.Conv2d(128, 64, 3, padding=1)
        self.conv = nn.Conv2d(64 + 192, 128 - 2, 3, padding=1)

    def forward(self, flow: Tensor, corr: Tensor) -> Tensor:
        c = F.relu(self.convc2(F.relu(self.convc1(corr))))
        f = F.relu(self.convf2(F.relu(self.convf1(flow))))
        return torch.cat((F.relu(self.conv(torch.cat((c, f), dim=1))), flow), dim=1)


class _SeparableGRU(nn.Module):
    """A convolutional GRU step, once with a 1x5 and once with a 5x1 kernel."""

    def __init__(self, hidden: int, inputs: int) -> None:
        super().__init__()
        n = hidden + inputs
        self.convz1 = nn.Conv2d(n, hidden, (1, 5), padding=(0, 2))
        self.convr1 = nn.Conv2d(n, hidden, (1, 5), padding=(0, 2))
        self.convq1 = nn.Conv2d(n, hidden, (1, 5), padding=(0, 2))
        self.convz2 = nn.Conv2d(n, hidden, (5, 1), padding=(2, 0))
        self.convr2 = nn.Conv2d(n, hidden, (5, 1), padding=(2, 0))
        self.convq2 = nn.Conv2d(n, hidden, (5, 1), padding=(2, 0))

    @staticmethod
    def _step(h: Tensor, x: Tensor, convz: nn.Conv2d, convr: nn.Conv2d, convq: nn.Conv2d) -> Tensor:
        hx = torch.cat((h, x), dim=1)
        z = torch.sigmoid(convz(hx))
        r = torch.sigmoid(convr(hx))
        q = torch.tanh(convq(torch.cat((r * h, x), dim=1)))
        return (1 - z) * h + z * q

    def forward(self, h: Tensor, x: Tensor) -> Tensor:
        h = self._step(h, x, self.convz1, self.convr1, self.convq1)
        return self._step(h, x, self.convz2, self.convr2, self.convq2)


class _FlowHead(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 256, 3, padding=1)
        self.conv2 = nn.Conv2d(256, 2, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(F.relu(self.conv1(x)))


class _Refinement(nn.Module):
    def __init__(self, corr_channels: int, factor: int, hidden: int = 128) -> None:
        super().__init__()
        self.encoder = _MotionEncoder(corr_channels)
        self.gru = _SeparableGRU(hidden, 2 * hidden)
        self.flow_head = _FlowHead(hidden)
        self.mask = nn.Sequential(
            nn.Conv2d(hidden, 256, 3, padding=1), nn.ReLU(), nn.Conv2d(256, factor**2 * 9, 1)
        )

    def forward(
        self, hidden: Tensor, context: Tensor, corr: Tensor, flow: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The residual flow and the upsampling mask of one refinement step."""
        x = torch.cat((context, self.encoder(flow, corr)), dim=1)
        hidden = self.gru(hidden, x)
        return self.flow_head(hidden), self.mask(hidden)


# ---------------------------------------------------------------------------------------------
# The network


class UniMatchNet(nn.Module):
    """The flow network; parameter names follow the official checkpoint's layout."""

    def __init__(self, settings: UniMatchSettings | None = None) -> None:
        super().__init__()
        s = self.settings = settings or UniMatchSettings()
        self.backbone = _Encoder(s.feature_channels, s.num_scales)
        self.transformer = _Transformer(
            s.num_transformer_layers, s.feature_channels, s.ffn_dim_expansion
        )
        self.feature_flow_attn = _FlowPropagation(s.feature_channels)
        self.refine_proj = nn.Conv2d(s.feature_channels, 256, 1)
        self.refine = _Refinement((2 * _REFINE_RADIUS + 1) ** 2, s.upsample_factor)

    def forward(self, image0: Tensor, image1: Tensor) -> Tensor:
        """Flow [B, 2, H, W] in pixels from [B, 3, H, W] RGB 0..255 images.

        Every pyramid level must split evenly into its attention windows (H and W multiples
        of 32 for the default settings); :meth:`UniMatchFlow.estimate_tensors` pads to that.
        """
        s = self.settings
        mean = torch.tensor(_IMAGENET_MEAN, device=image0.device).view(1, 3, 1, 1)
        std = torch.tensor(_IMAGENET_STD, device=image0.device).view(1, 3, 1, 1)
        images = (torch.cat((image0, image1)).float() / 255.0 - mean) / std
        pyramid = [level.chunk(2) for level in self.backbone(images)]

        flow = None
        for scale, (f0_cnn, f1_cnn) in enumerate(pyramid):
            f1 = f1_cnn
            if flow is not None:
                flow = F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=True) * 2
                f1 = _sample(f1_cnn, _pixel_grid(*f1.shape[-2:], flow)[None] + flow)
            splits = s.attn_splits[scale]
            h, w = f0_cnn.shape[-2:]
            position = _sine_position(s.feature_channels, h // splits, w // splits, f0_cnn)
            position = position.repeat(1, splits, splits)
            f0, f1 = self.transformer(f0_cnn + position, f1 + position, splits)
            radius = s.corr_radius[scale]
            step = _global_match(f0, f1) if radius < 0 else _local_match(f0, f1, radius)
            flow = step if flow is None else flow + step
            flow = self.feature_flow_attn(f0, flow, s.prop_radius[scale])

        # Each refinement step starts from the same hidden state: the checkpoint was trained so.
        hidden, context = self.refine_proj(f0).chunk(2, dim=1)
        hidden, context = torch.tanh(hidden), torch.relu(context)
        for _ in range(s.num_reg_refine):
            corr = _correlation_around(f0_cnn, f1_cnn, flow, _REFINE_RADIUS)
            residual, mask = self.refine(hidden, context, corr, flow)
            flow = flow + residual
        return _convex_upsample(flow, mask, s.upsample_factor)


# ---------------------------------------------------------------------------------------------
# Checkpoint loading


class CheckpointError(ValueError):
    """A UniMatch checkpoint that is missing or does not fit the network."""


def _describe(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def load_state(path: str | Path, net: nn.Module) -> None:
    """Load an official-layout checkpoint (``{"model": state_dict}``) with strict matching."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(unimatch_checkpoint_problem(path))
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        # torch's own message suggests weights_only=False; a checkpoint of tensors never needs it.
        reason = (str(exc).splitlines() or [""])[0][:160]
        raise CheckpointError(
            f"UniMatch checkpoint {path} could not be read as a file of tensors "
            f"({type(exc).__name__}: {reason}); download {UNIMATCH_CHECKPOINT_NAME} again "
            f"from {UNIMATCH_CHECKPOINT_URL}"
        ) from exc
    if not isinstance(blob, dict) or not isinstance(blob.get("model"), dict):
        found = sorted(blob)[:8] if isinstance(blob, dict) else type(blob).__name__
        raise CheckpointError(
            f"UniMatch checkpoint {path} is not in the official layout "
            f"{{'model': state_dict}} (found {found})"
        )
    state: dict[str, Tensor] = blob["model"]
    expected = net.state_dict()
    problems = []
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(
        f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k].shape)})"
        for k in set(expected) & set(state)
        if state[k].shape != expected[k].shape
    )
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_describe(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_describe(unexpected)}")
    if wrong:
        problems.append(f"{len(wrong)} key(s) with the wrong shape: {_describe(wrong)}")
    if problems:
        raise CheckpointError(
            f"UniMatch checkpoint {path} does not fit gmflow-scale2-regrefine6 "
            f"({'; '.join(problems)}); use {UNIMATCH_CHECKPOINT_NAME}"
        )
    net.load_state_dict(state, strict=True)


# ---------------------------------------------------------------------------------------------
# The flow backend


_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@functools.lru_cache(maxsize=4)
def _cached_net(path: str, mtime_ns: int, device: str, settings: UniMatchSettings) -> UniMatchNet:
    net = UniMatchNet(settings)
    load_state(path, net)
    return net.to(device).eval().requires_grad_(False)


def load_net(
    checkpoint: str | Path | None, device: str = "auto", settings: UniMatchSettings | None = None
) -> UniMatchNet:
    """The network with the checkpoint's weights, loaded once per process and device."""
    problem = unimatch_checkpoint_problem(checkpoint)
    if problem:
        raise CheckpointError(problem)
    path = Path(checkpoint).expanduser().resolve()
    dev = str(resolve_device(device))
    return _cached_net(str(path), path.stat().st_mtime_ns, dev, settings or UniMatchSettings())


class UniMatchFlow:
    """The ``unimatch`` backend of :func:`motionedit.flow.make_flow`."""

    def __init__(
        self,
        checkpoint: str | Path | None,
        device: str = "auto",
        dtype: str = "float32",
        batch_size: int = 8,
        settings: UniMatchSettings | None = None,
    ) -> None:
        if dtype not in _DTYPES:
            raise ValueError(f"flow.unimatch.dtype: {dtype!r} is not one of {sorted(_DTYPES)}")
        self.device = resolve_device(device)
        if dtype != "float32" and self.device.type != "cuda":
            raise ValueError(
                f"flow.unimatch.dtype: {dtype} needs a CUDA device (device is {self.device}); "
                "use float32 on CPU"
            )
        self.dtype = _DTYPES[dtype]
        self.batch_size = batch_size
        self.net = load_net(checkpoint, str(self.device), settings)

    @torch.no_grad()
    def estimate_tensors(self, images0: Tensor, images1: Tensor) -> Tensor:
        """[B, 2, H, W] float32 flow from [B, 3, H, W] RGB 0..255 tensors (any device)."""
        if images0.shape != images1.shape or images0.ndim != 4 or images0.shape[1] != 3:
            raise ValueError(
                "UniMatch flow needs two [B, 3, H, W] batches of one shape, "
                f"got {tuple(images0.shape)} and {tuple(images1.shape)}"
            )
        h, w = images0.shape[-2:]
        factor = self.net.settings.padding_factor
        pad = (0, -w % factor, 0, -h % factor)
        out = []
        for start in range(0, images0.shape[0], self.batch_size):
            a, b = (
                F.pad(x[start : start + self.batch_size].to(self.device, torch.float32), pad)
                for x in (images0, images1)
            )
            with torch.autocast(
                self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32
            ):
                flow = self.net(a, b)
            out.append(flow[..., :h, :w].float())
        return torch.cat(out)

    def estimate(self, images0: Any, images1: Any) -> np.ndarray:
        """[B, H, W, 2] float32 flow in pixels from [B, H, W, 3] RGB arrays."""
        a, b = np.asarray(images0), np.asarray(images1)
        if a.shape != b.shape or a.ndim != 4 or a.shape[-1] != 3:
            raise ValueError(
                f"UniMatch flow needs two [B, H, W, 3] batches of one shape, "
                f"got {a.shape} and {b.shape}"
            )
        ta = torch.from_numpy(np.ascontiguousarray(a, np.float32)).permute(0, 3, 1, 2)
        tb = torch.from_numpy(np.ascontiguousarray(b, np.float32)).permute(0, 3, 1, 2)
        return self.estimate_tensors(ta, tb).permute(0, 2, 3, 1).cpu().numpy()
