"""Optical-flow backends behind one interface.

``estimate(images0, images1) -> flows``: images are uint8 RGB arrays [B, H, W, 3] (or lists
of [H, W, 3] of one size), flows are float32 [B, H, W, 2] in pixels, x then y, such that
``images0[b, y, x]`` moves to ``(x + flow[..., 0], y + flow[..., 1])`` in ``images1[b]``.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class FlowEstimator(Protocol):
    def estimate(self, images0: np.ndarray, images1: np.ndarray) -> np.ndarray: ...


def make_flow(cfg: dict[str, Any]) -> FlowEstimator:
    """The backend named by ``flow.backend`` in the config."""
    backend = cfg["backend"]
    if backend == "dis":
        from motionedit.flow.dis import DISFlow

        return DISFlow(
            preset=cfg.get("dis_preset", "medium"), finest_scale=cfg.get("dis_finest_scale", 0)
        )
    raise ValueError(f"flow.backend: unknown backend {backend!r}; use one of ['dis']")
