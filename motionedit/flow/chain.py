"""Motion through a window: optical flow chained across frames sampled inside it, and
point trajectories along it.

A flow estimator matches two frames by appearance. Across a 3-second window a subject can
move a third of the frame, turn or change size, and the first and last frames alone then
give a flow that is wrong or near zero: DIS measured a translation of 0.30 of the diagonal
as 0.02. Between frames sampled a few tenths of a second apart each displacement is small,
and following every pixel of the first frame through those flows gives its displacement to
the last frame. Positions are looked up bilinearly, so sub-pixel steps accumulate.

At every link a forward-backward check marks a point lost where the two flows disagree
(occlusion, a subject leaving, a cut), and a point that leaves the frame is lost too. The
fraction of points that pass each link's check is kept as well: a scene cut shows as one
link where most of them fail, wherever in the window it falls.

Point trajectories (the sparse drag annotations TV-Edit adds to its pairs) are a few points
of the first frame drawn where the chained motion is large, weighted by it, and followed
through every sampled frame with the same check.

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


@dataclass(frozen=True)
class Tracks:
    """Points of the first frame followed through every sampled frame."""

    #: ``[N, T, 2]`` (x, y) per frame; a lost point keeps its last position.
    points: np.ndarray
    #: ``[N, T]`` True while the point is followed.
    visible: np.ndarray


@dataclass(frozen=True)
class _Links:
    forward: np.ndarray  # [T-1, H, W, 2]
    backward: np.ndarray
    fb_relative: float
    fb_pixels: float


def _links(
    frames: Sequence[np.ndarray], flow: FlowEstimator, fb_relative: float, fb_pixels: float
) -> _Links:
    if len(frames) < 2:
        raise ValueError(f"chaining needs two frames or more, got {len(frames)}")
    stack = np.stack([np.asarray(f, np.uint8) for f in frames])
    forward = flow.estimate(stack[:-1], stack[1:]).astype(np.float32)
    backward = flow.estimate(stack[1:], stack[:-1]).astype(np.float32)
    return _Links(forward, backward, fb_relative, fb_pixels)


def _sample(field: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``field`` ``[H, W, C]`` at float positions, bilinearly (the edge repeated outside:
    whether a point left the frame is decided apart)."""
    return cv2.remap(field, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _follow(
    links: _Links, x: np.ndarray, y: np.ndarray
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[float]]:
    """Positions ``x``, ``y`` (float32, any 2-D shape) followed through every link:
    per frame x, y and tracked, and each link's consistency.

    A point passes a link's forward-backward check when ``|f + b|^2 <= fb_relative *
    (|f|^2 + |b|^2) + fb_pixels``, with ``f`` the forward flow at the point and ``b`` the
    backward flow where it lands (the usual occlusion test of flow-based tracking).
    """
    h, w = links.forward.shape[1:3]
    tracked = np.ones(x.shape, bool)
    xs, ys, seen, consistency = [x], [y], [tracked], []
    for fwd, bwd in zip(links.forward, links.backward, strict=True):
        f = _sample(fwd, x, y).reshape(*x.shape, 2)
        x1, y1 = x + f[..., 0], y + f[..., 1]
        b = _sample(bwd, x1, y1).reshape(*x.shape, 2)
        err = ((f + b) ** 2).sum(-1)
        bound = links.fb_relative * ((f**2).sum(-1) + (b**2).sum(-1)) + links.fb_pixels
        passed = err <= bound
        inside = (x1 >= 0) & (x1 <= w - 1) & (y1 >= 0) & (y1 <= h - 1)
        before = int(tracked.sum())
        consistency.append(float((passed & tracked).sum() / before) if before else 0.0)
        tracked = tracked & passed & inside
        x, y = np.where(tracked, x1, x), np.where(tracked, y1, y)
        xs.append(x)
        ys.append(y)
        seen.append(tracked)
    return xs, ys, seen, consistency


def _chain(links: _Links) -> ChainedFlow:
    h, w = links.forward.shape[1:3]
    x0, y0 = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    xs, ys, seen, consistency = _follow(links, x0, y0)
    displacement = np.stack([xs[-1] - x0, ys[-1] - y0], axis=-1)
    displacement[~seen[-1]] = 0.0
    return ChainedFlow(displacement, seen[-1], consistency)


def chain_flows(
    frames: Sequence[np.ndarray],
    flow: FlowEstimator,
    fb_relative: float = 0.01,
    fb_pixels: float = 0.5,
) -> ChainedFlow:
    """Chain ``flow`` over consecutive ``frames`` (``[H, W, 3]`` uint8, two or more)."""
    return _chain(_links(frames, flow, fb_relative, fb_pixels))


def track_points(
    frames: Sequence[np.ndarray],
    flow: FlowEstimator,
    count: int,
    min_motion: float,
    seed: int,
    fb_relative: float = 0.01,
    fb_pixels: float = 0.5,
) -> Tracks:
    """Up to ``count`` trajectories of points that move, as TV-Edit samples them.

    Candidates are the first frame's pixels followed to the last frame that moved more than
    ``min_motion`` of the diagonal; ``count`` of them are drawn without replacement with
    probability proportional to how far they moved, so the trajectories sit on the moving
    subjects and most on the part that moves most. Fewer come back when fewer pixels move.
    """
    links = _links(frames, flow, fb_relative, fb_pixels)
    chained = _chain(links)
    h, w = chained.tracked.shape
    magnitude = np.linalg.norm(chained.displacement, axis=-1)
    moving = chained.tracked & (magnitude > min_motion * float(np.hypot(h, w)))
    candidates = np.flatnonzero(moving)
    t = len(frames)
    if candidates.size == 0 or count <= 0:
        return Tracks(np.zeros((0, t, 2), np.float32), np.zeros((0, t), bool))
    weights = magnitude.ravel()[candidates]
    rng = np.random.default_rng(seed)
    chosen = rng.choice(candidates, size=min(count, candidates.size), replace=False,
                        p=weights / weights.sum())  # fmt: skip
    chosen.sort()
    y0, x0 = np.divmod(chosen, w)
    xs, ys, seen, _ = _follow(links, x0[None].astype(np.float32), y0[None].astype(np.float32))
    points = np.stack([np.stack([x[0], y[0]], axis=-1) for x, y in zip(xs, ys, strict=True)], 1)
    visible = np.stack([s[0] for s in seen], axis=1)
    return Tracks(points.astype(np.float32), visible)
