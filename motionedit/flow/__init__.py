"""Optical-flow backends behind one interface.

``estimate(images0, images1) -> flows``: images are uint8 RGB arrays [B, H, W, 3] (or lists
of [H, W, 3] of one size), flows are float32 [B, H, W, 2] in pixels, x then y, such that
``images0[b, y, x]`` moves to ``(x + flow[..., 0], y + flow[..., 1])`` in ``images1[b]``.

What lives here: :func:`make_flow` (the backend a config names), ``dis.py`` (OpenCV DIS, the
CPU default) and ``unimatch.py`` (UniMatch, the paper's flow, with its checkpoint). This
module imports numpy only: the DAG build reads the checkpoint's name from it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import numpy as np

BACKENDS = ("dis", "unimatch")
UNIMATCH_CHECKPOINT_NAME = "gmflow-scale2-regrefine6-mixdata-train320x576-4e7b215d.pth"
UNIMATCH_CHECKPOINT_URL = (
    "https://s3.eu-central-1.amazonaws.com/avg-projects/unimatch/pretrained/"
    + UNIMATCH_CHECKPOINT_NAME
)


def unimatch_checkpoint_problem(path: str | Path | None) -> str | None:
    """Why ``path`` cannot be the UniMatch checkpoint (with how to fix it), or None if it can."""
    if path and Path(path).expanduser().is_file():
        return None
    where = f"not found: {path}" if path else "not set"
    return (
        f"flow.unimatch.checkpoint: the UniMatch checkpoint is {where}. Download "
        f"{UNIMATCH_CHECKPOINT_NAME} from {UNIMATCH_CHECKPOINT_URL} (UniMatch's MODEL_ZOO.md) "
        "and set flow.unimatch.checkpoint in the config to its path."
    )


def download_unimatch_checkpoint(target: str | Path, log: logging.Logger) -> Path:
    """Fetch the checkpoint from UniMatch's model zoo (resumable, retried).

    The hash in the file's name (``...-4e7b215d.pth``) looks like the torch.hub convention,
    the first hex digits of the file's sha256; a mismatch is logged, not fatal, since the
    strict key and shape check at load time is what decides whether the file is usable.
    """
    from motionedit.download import DownloadError, download, sha256_of

    target = Path(target)
    log.info("downloading %s to %s", UNIMATCH_CHECKPOINT_URL, target)
    try:
        download(UNIMATCH_CHECKPOINT_URL, target, timeout_s=120.0)
    except DownloadError as exc:
        raise DownloadError(
            f"{exc}. Download {UNIMATCH_CHECKPOINT_URL} by hand and set "
            "flow.unimatch.checkpoint to its path"
        ) from exc
    digest = sha256_of(target)
    prefix = UNIMATCH_CHECKPOINT_NAME.rsplit("-", 1)[1].split(".")[0]
    log.info("sha256 %s", digest)
    if not digest.startswith(prefix):
        log.warning("the sha256 does not start with %s, the hash in the file's name", prefix)
    return target


class FlowEstimator(Protocol):
    def estimate(self, images0: np.ndarray, images1: np.ndarray) -> np.ndarray: ...


def window_flow_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The ``flow`` section as the flow between a window's sampled frames uses it: DIS
    with ``window_dis_preset`` and ``window_dis_patch_stride`` (short steps need less than
    two distant frames)."""
    return cfg | {
        "dis_preset": cfg.get("window_dis_preset", cfg.get("dis_preset", "medium")),
        "dis_patch_stride": cfg.get("window_dis_patch_stride"),
    }


def make_flow(cfg: dict[str, Any]) -> FlowEstimator:
    """The backend named by ``flow.backend`` in the config (the ``flow`` section)."""
    backend = cfg["backend"]
    if backend == "dis":
        from motionedit.flow.dis import DISFlow

        return DISFlow(
            preset=cfg.get("dis_preset", "medium"),
            finest_scale=cfg.get("dis_finest_scale", 0),
            patch_stride=cfg.get("dis_patch_stride"),
        )
    if backend == "unimatch":
        from motionedit.flow.unimatch import UniMatchFlow

        um = cfg.get("unimatch") or {}
        return UniMatchFlow(
            um.get("checkpoint"),
            device=um.get("device", "auto"),
            dtype=um.get("dtype", "float32"),
            batch_size=um.get("batch_size", 8),
        )
    raise ValueError(f"flow.backend: unknown backend {backend!r}; use one of {list(BACKENDS)}")
