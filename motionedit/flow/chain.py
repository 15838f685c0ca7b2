"""Motion through a window: optical flow chained across frames sampled inside it.

A flow estimator matches two frames by appearance. Across a 3-second window a subject can
move a third of the frame, turn or change size, and the first and last frames alone then
give a flow that is wrong or near zero: DIS measured a translation of 0.30 of the diagonal
as 0.03. Between frames sampled a few tenths of a second apart each displacement is small,
and following every pixel of the first frame through those flows gives its displacement to
the last frame. Positions are looked up bilinearly, so sub-pixel steps accumulate.

At every link a forward-backward check marks a point lost where the two flows disagree
(occlusion, a subject leaving, a cut), and a point that leaves the frame is lost too. The
fraction of points that pass each link's check is kept as well: a scene cut shows as one
link where most of them fail, wherever in the window it falls.

This module is the building block; the frames, prefilter and judge stages do not call it
yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from motionedit.flow import FlowEstimator


@dataclass(frozen=True)
class ChainedFlow:
    """Where each pixel of the first frame went by the last one."""

    #: ``[H, W, 2]`` displacement (x, y) in pixels; 0 where the point was lost.
    displacement: np.ndarray
    #: ``[H, W]`` True where the point was followed through every link.
    tracked: np.ndarray
    #: Per link, the fraction of the points still tracked before it that pass its check.
    link_consistency: list[float]


def _sample(field: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``field`` ``[H, W, C]`` at float positions, bilinearly (the edge repeated outside:
    whether a point left the frame is decided apart)."""
    return cv2.remap(field, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def chain_flows(
    frames: Sequence[np.ndarray],
    flow: FlowEstimator,
    fb_relative: float = 0.01,
    fb_pixels: float = 0.5,
) -> ChainedFlow:
    """Chain ``flow`` over consecutive ``frames`` (``[H, W, 3]`` uint8, two or more).

    A point passes a link's forward-backward check when ``|f + b|^2 <= fb_relative *
    (|f|^2 + |b|^2) + fb_pixels``, with ``f`` the forward flow at the point and ``b`` the
    backward flow where it lands (the usual occlusion test of flow-based tracking).
    """
    if len(frames) < 2:
        raise ValueError(f"chaining needs two frames or more, got {len(frames)}")
    stack = np.stack([np.asarray(f, np.uint8) for f in frames])
    forward = flow.estimate(stack[:-1], stack[1:]).astype(np.float32)
    backward = flow.estimate(stack[1:], stack[:-1]).astype(np.float32)
    h, w = stack.shape[1:3]
    x0, y0 = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    x, y = x0.copy(), y0.copy()
    tracked = np.ones((h, w), bool)
    consistency = []
    for fwd, bwd in zip(forward, backward, strict=True):
        f = _sample(fwd, x, y)
        x1, y1 = x + f[..., 0], y + f[..., 1]
        b = _sample(bwd, x1, y1)
        err = ((f + b) ** 2).sum(-1)
        bound = fb_relative * ((f**2).sum(-1) + (b**2).sum(-1)) + fb_pixels
        inside = (x1 >= 0) & (x1 <= w - 1) & (y1 >= 0) & (y1 <= h - 1)
        passed = err <= bound
        before = int(tracked.sum())
        consistency.append(float((passed & tracked).sum() / before) if before else 0.0)
        tracked &= passed & inside
        x, y = np.where(tracked, x1, x), np.where(tracked, y1, y)
    displacement = np.stack([x - x0, y - y0], axis=-1)
    displacement[~tracked] = 0.0
    return ChainedFlow(displacement, tracked, consistency)
