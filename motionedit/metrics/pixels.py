"""Pixel distance of an edit to its target, and bootstrap intervals for paired comparisons.

Pixel distance is not a motion metric (MAS is), but it is the sanity check every editor
must pass before a motion score means anything: an editor that cannot beat returning the
input unchanged has learnt nothing about the target. The target is resized to the edit's
size, as the motion metrics do, so editors working at different resolutions compare.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from motionedit.images import to_pil


def pixel_distances(edited: Any, target: Any) -> dict[str, float]:
    """Mean absolute error (0..1) and PSNR (dB) of ``edited`` against ``target``."""
    out = to_pil(edited)
    ref = to_pil(target)
    if ref.size != out.size:
        ref = ref.resize(out.size, Image.Resampling.BICUBIC)
    a = np.asarray(out, dtype=np.float64) / 255.0
    b = np.asarray(ref, dtype=np.float64) / 255.0
    mse = float(np.mean((a - b) ** 2))
    return {
        "l1": float(np.mean(np.abs(a - b))),
        "psnr": float(10 * np.log10(1.0 / max(mse, 1e-12))),
    }


def bootstrap_ci(
    values: np.ndarray, resamples: int = 10_000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """Mean and percentile bootstrap interval of ``values`` (per-sample differences for a
    paired comparison: resampling samples keeps each pair together)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.size, size=(resamples, values.size))
    means = values[idx].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(values.mean()), float(low), float(high)
