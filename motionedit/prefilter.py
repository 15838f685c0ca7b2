"""The prefilter stage: cheap, explained decisions on the flow of every candidate pair.

It runs before any MLLM is paid, so it removes what flow alone can tell apart: pairs where
nothing moves, pairs where the camera moves (the border moves, or one global affine motion
explains the whole frame), and pairs whose motion is too large to be an edit. Every pair
keeps its numbers so that thresholds can be revisited from the table without recomputing.
"""

from __future__ import annotations

import logging
from typing import Any

import cv2
import numpy as np
import pandas as pd

from motionedit.flow import FlowEstimator, make_flow
from motionedit.pairs import load_pair
from motionedit.runlog import progress

COLUMNS = [
    "pair_id",
    "video_id",
    "source",
    "motion_mean",
    "motion_peak",
    "motion_moving",
    "moving_frac",
    "frame_correlation",
    "border_motion",
    "border_moving",
    "global_fit",
    "global_motion",
    "keep",
    "reason",
    "error",
]


def border_mask(h: int, w: int, fraction: float) -> np.ndarray:
    bh, bw = max(1, round(h * fraction)), max(1, round(w * fraction))
    mask = np.ones((h, w), bool)
    mask[bh : h - bh, bw : w - bw] = False
    return mask


def global_affine(flow: np.ndarray, tol_px: float, step: int = 4) -> tuple[float, float]:
    """How well one affine motion of the whole frame explains the flow.

    Returns (fraction of pixels within ``tol_px`` of the fitted motion, mean magnitude of
    the fitted motion in pixels). A static background with a moving subject fits the
    identity; a pan or zoom fits a non-trivial affine that explains nearly every pixel.
    """
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h:step, 0:w:step]
    src = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    dst = src + flow[ys.ravel(), xs.ravel()]
    m, _ = cv2.estimateAffine2D(
        src,
        dst,
        method=cv2.RANSAC,
        ransacReprojThreshold=tol_px,
        maxIters=500,
        confidence=0.99,
        refineIters=5,
    )
    if m is None:
        return 0.0, 0.0
    pred = src @ m[:, :2].T + m[:, 2]
    fitted = pred - src
    resid = np.linalg.norm(dst - pred, axis=1)
    return float((resid <= tol_px).mean()), float(np.linalg.norm(fitted, axis=1).mean())


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two histograms, in float64.

    OpenCV's HISTCMP_CORREL sums in float32 and returned -1.006 for two noisy frames whose
    histograms correlate at 0.998, which dropped good pairs as scene cuts. Two flat
    histograms correlate at 1 when equal and 0 otherwise.
    """
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    a, b = a - a.mean(), b - b.mean()
    norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
    if norm == 0.0:
        return 1.0 if not a.any() and not b.any() else 0.0
    return float((a * b).sum() / norm)


def colour_correlation(img0: np.ndarray, img1: np.ndarray) -> float:
    """Correlation of the two frames' colour histograms: near 1 unless the scene changed."""
    h0, h1 = (cv2.calcHist([im], [0, 1, 2], None, [8, 8, 8], [0, 256] * 3) for im in (img0, img1))
    return pearson(h0, h1)


def peak_motion(mag: np.ndarray, moving: np.ndarray) -> float:
    """95th percentile of the motion inside the moving region (0 when nothing moves).

    Taken over the moving pixels, not the whole image, so a limb covering 1% of the frame
    counts as much as a subject covering half of it.
    """
    return float(np.percentile(mag[moving], 95)) if moving.any() else 0.0


def flow_stats(flow: np.ndarray, cfg: dict[str, Any]) -> dict[str, float]:
    """Motion numbers of one pair, magnitudes normalised by the image diagonal."""
    h, w = flow.shape[:2]
    diag = float(np.hypot(h, w))
    mag = np.linalg.norm(flow, axis=-1) / diag
    moving = mag > cfg["moving_threshold"]
    border = border_mask(h, w, cfg["border_fraction"])
    fit, gmotion = global_affine(flow, tol_px=max(0.5, cfg["moving_threshold"] * diag))
    return {
        "motion_mean": float(mag.mean()),
        "motion_peak": peak_motion(mag, moving),
        "motion_moving": float(mag[moving].mean()) if moving.any() else 0.0,
        "moving_frac": float(moving.mean()),
        "border_motion": float(mag[border].mean()),
        "border_moving": float(moving[border].mean()),
        "global_fit": fit,
        "global_motion": gmotion / diag,
    }


def decide(stats: dict[str, float], cfg: dict[str, Any]) -> tuple[bool, str]:
    """Keep or drop, with the reason; checks run cheapest-explanation first.

    A cut comes first: it also makes the whole frame "move" and would otherwise be
    reported as camera motion.
    """
    if stats.get("frame_correlation", 1.0) < cfg["min_frame_correlation"]:
        return False, "scene_cut"
    if (
        stats["motion_peak"] < cfg["min_motion"]
        or stats["moving_frac"] < cfg["min_moving_fraction"]
    ):
        return False, "static"
    if stats["border_moving"] > cfg["max_border_moving"]:
        return False, "camera_motion:border"
    if (
        stats["global_motion"] > cfg["moving_threshold"]
        and stats["global_fit"] > cfg["max_global_fit"]
    ):
        return False, "camera_motion:global_affine"
    if stats["motion_moving"] > cfg["max_motion"]:
        return False, "extreme_motion"
    return True, "ok"


def _flows_in_batches(
    flow: FlowEstimator, pairs: list[tuple[np.ndarray, np.ndarray]], batch: int
) -> list[np.ndarray]:
    """Flows of ``pairs`` in their order, pairs of one size sharing a call of up to ``batch``.

    Batching is what makes a GPU backend pay off; a CPU backend runs pair by pair anyway.
    """
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, (a, _) in enumerate(pairs):
        by_shape.setdefault(a.shape, []).append(i)
    out: list[np.ndarray] = [np.empty(0)] * len(pairs)
    for index in by_shape.values():
        for start in range(0, len(index), batch):
            part = index[start : start + batch]
            flows = flow.estimate(
                np.stack([pairs[i][0] for i in part]), np.stack([pairs[i][1] for i in part])
            )
            for i, f in zip(part, flows, strict=True):
                out[i] = f
    return out


def prefilter_shard(
    frames: pd.DataFrame,
    cfg: dict[str, Any],
    flow_cfg: dict[str, Any],
    log: logging.Logger,
    flow: FlowEstimator | None = None,
    chunk: int = 64,
) -> pd.DataFrame:
    flow = flow or make_flow(flow_cfg)
    batch = int(getattr(flow, "batch_size", 1))
    todo = frames[frames["error"].isna() & frames["skip"].isna()]
    log.info("%d candidate pairs", len(todo))
    rows = []
    # Pairs are loaded a chunk at a time, so memory stays flat on shards of any size.
    for start in progress(range(0, len(todo), chunk), desc=f"prefilter ({chunk} pairs)"):
        part = todo.iloc[start : start + chunk]
        loaded, errors = {}, {}
        for pair in part.itertuples():
            try:
                loaded[pair.pair_id] = load_pair(pair.frame0, pair.frame1, flow_cfg["max_side"])
            except (ValueError, cv2.error) as exc:
                errors[pair.pair_id] = str(exc)
        flows = dict(
            zip(loaded, _flows_in_batches(flow, list(loaded.values()), batch), strict=True)
        )
        for pair in part.itertuples():
            row = {c: None for c in COLUMNS}
            row.update(pair_id=pair.pair_id, video_id=pair.video_id, source=pair.source)
            if pair.pair_id in errors:
                row.update(keep=False, reason="error", error=errors[pair.pair_id])
            else:
                a, b = loaded[pair.pair_id]
                stats = flow_stats(flows[pair.pair_id], cfg)
                stats["frame_correlation"] = colour_correlation(a, b)
                keep, reason = decide(stats, cfg)
                row.update(stats, keep=keep, reason=reason)
            rows.append(row)
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["keep"] = df["keep"].astype(bool)
    kept = int(df["keep"].sum())
    log.info("kept %d of %d; reasons: %s", kept, len(df), df["reason"].value_counts().to_dict())
    return df
