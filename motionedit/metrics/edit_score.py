"""Scoring edited images: the motion reward and MAS from input, edited and target images.

This is the image-level counterpart of :mod:`motionedit.metrics.motion`, with the released
scorer's conventions: the input and target are resized (bilinear, no antialiasing) to the
edited image's size, and the two flows, input -> edited and input -> target, come from one
batched flow call, so both see the same resolution and the same network pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from motionedit.flow import FlowEstimator
from motionedit.metrics.motion import mas, motion_reward

ImageLike = Image.Image | np.ndarray | Tensor | str | Path


def as_rgb_tensor(image: ImageLike) -> Tensor:
    """[3, H, W] float32 RGB in 0..255.

    uint8 images are taken as 0..255 and floating-point ones as 0..1 (the range diffusers
    pipelines return); tensors are channel-first, arrays channel-last, as each library keeps them.
    """
    if isinstance(image, str | Path):
        with Image.open(image) as im:
            image = np.asarray(im.convert("RGB"))
    elif isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[-1] not in (3, 4):
            raise ValueError(f"an image array must be [H, W, 3], got {image.shape}")
        image = torch.from_numpy(np.array(image[..., :3])).permute(2, 0, 1)
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"an image tensor must be [3, H, W], got {tuple(image.shape)}")
    if image.dtype == torch.uint8:
        return image.float()
    if not image.is_floating_point():
        raise ValueError(f"images must be uint8 (0..255) or float (0..1), got {image.dtype}")
    return image.float() * 255.0


def _resized(image: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(image.shape[-2:]) == size:
        return image
    return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]


def _flows(flow: FlowEstimator, images0: Tensor, images1: Tensor) -> Tensor:
    """[B, H, W, 2] flows from [B, 3, H, W] 0..255 batches, on the GPU when the backend is."""
    if hasattr(flow, "estimate_tensors"):
        return flow.estimate_tensors(images0, images1).permute(0, 2, 3, 1)

    def to_hwc(x: Tensor) -> np.ndarray:
        return x.permute(0, 2, 3, 1).clamp(0, 255).round().byte().cpu().numpy()

    return torch.from_numpy(flow.estimate(to_hwc(images0), to_hwc(images1)))


def score_edits(
    inputs: Sequence[ImageLike],
    edited: Sequence[ImageLike],
    targets: Sequence[ImageLike],
    flow: FlowEstimator,
    reward_cfg: dict[str, Any] | None = None,
    mas_cfg: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One row per edit: reward, MAS and their terms (see :func:`score_edit`).

    Edits of one size share a flow call; sizes may differ between edits.
    """
    if not len(inputs) == len(edited) == len(targets):
        raise ValueError(
            f"inputs, edited and targets differ in length: "
            f"{len(inputs)}, {len(edited)}, {len(targets)}"
        )
    rows: list[dict[str, Any]] = [{} for _ in edited]
    groups: dict[tuple[int, int], list[tuple[int, Tensor, Tensor, Tensor]]] = {}
    for i, (a, e, t) in enumerate(zip(inputs, edited, targets, strict=True)):
        e = as_rgb_tensor(e)
        size = (int(e.shape[1]), int(e.shape[2]))
        item = (i, _resized(as_rgb_tensor(a), size), e, _resized(as_rgb_tensor(t), size))
        groups.setdefault(size, []).append(item)
    for items in groups.values():
        index, a, e, t = zip(*items, strict=True)
        n = len(index)
        both = _flows(flow, torch.stack(a + a), torch.stack(e + t))
        pred, gt = both[:n], both[n:]
        reward = motion_reward(pred, gt, **(reward_cfg or {})).rows()
        score = mas(pred, gt, **(mas_cfg or {})).rows()
        for k, i in enumerate(index):
            r = reward[k]
            rows[i] = {
                "reward": r["reward"],
                "reward_continuous": r["continuous"],
                "d_comb": r["d_comb"],
                "m_move": r["m_move"],
            } | score[k]
    return rows


def score_edit(
    input: ImageLike,
    edited: ImageLike,
    target: ImageLike,
    flow: FlowEstimator,
    reward_cfg: dict[str, Any] | None = None,
    mas_cfg: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Reward, MAS and terms of one edit, at the edited image's resolution.

    ``reward_cfg`` and ``mas_cfg`` are the ``metrics.motion_reward`` and ``metrics.mas``
    config sections (keyword constants of :func:`motion_reward` and :func:`mas`). D_mag and
    D_dir are reported once: the reward and MAS share them when their constants agree, and
    the MAS constants are the ones reported.
    """
    return score_edits([input], [edited], [target], flow, reward_cfg, mas_cfg)[0]
