"""Loading a candidate pair's two frames at the working resolution of the filters."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def read_rgb(path: str | Path) -> np.ndarray:
    data = np.fromfile(str(path), np.uint8)  # np.fromfile copes with non-ASCII paths
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot read image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def fit_side(img: np.ndarray, max_side: int) -> np.ndarray:
    h, w = img.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return img
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def load_pair(frame0: str, frame1: str, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    """Both frames as RGB uint8 at one size whose longer side is at most ``max_side``."""
    a, b = read_rgb(frame0), read_rgb(frame1)
    if a.shape != b.shape:
        b = cv2.resize(b, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA)
    return fit_side(a, max_side), fit_side(b, max_side)
