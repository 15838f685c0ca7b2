"""Motion reward and Motion Alignment Score (MAS) from two optical flows.

Both scores compare the motion an edit made, V_pred = flow(input -> edited), with the motion
the target shows, V_gt = flow(input -> target). Flows are [H, W, 2] or [B, H, W, 2] in pixels,
x then y, as torch tensors or numpy arrays. Both are divided by the image diagonal
sqrt(H^2 + W^2) first, so that a score does not change when an image and its flows are scaled
together.

The reward (`motion_reward`) trains editors; its defaults follow the released MotionEdit
scorer. It adds three distances:

* D_mag, the mean of (|Vp - Vg| + eps)^q; the power q < 1 keeps a few large errors from
  swamping many small ones.
* D_dir, half the cosine distance between the two directions, averaged over the pixels whose
  GT moves more than ``dir_threshold`` (direction is noise where nothing moves); 0 when no
  pixel does.
* M_move, a hinge that is positive while the edit moves less than ``move_ratio`` times the GT
  plus ``move_tau``. It punishes the do-nothing edit, which D_mag alone rates well wherever
  most of the scene stands still.

D = w_mag D_mag + w_dir D_dir + w_move M_move is placed between d_min (D_mag of the GT against
itself, eps^q) and d_max, flipped so that 1 is best, and rounded to ``bins`` levels with
``torch.round`` (half to even, as the released scorer does); bins 0 or None keeps it continuous.

MAS (`mas`) is the benchmark metric: 100 (1 - (D_ovl - d_min) / (d_max - d_min)) clamped to
[0, 100], with D_ovl = alpha D_mag + (1 - alpha) D_dir. An edit whose mean motion is below
``rho_min`` times the GT's scores 0 and is flagged ``static``, since a frozen image would
otherwise earn a fair MAS on scenes where little moves. The paper publishes none of alpha, d_min
and d_max; the defaults (0.7, eps^q, 1.0) follow the released reward's normalisation.

Two switches select the paper's formulas where they differ from the released scorer:

* ``d_mag_norm``: "component" (released) averages the powered error over the x and y components
  separately; "vector" (paper) powers the per-pixel L1 norm |dx| + |dy|. An error of d in both
  components costs (d + eps)^q in the first and (2d + eps)^q in the second. d_min is eps^q in
  both.
* ``d_dir_weighting``: "uniform" (released) averages the direction error over the moving pixels;
  "magnitude" (paper) weights each pixel by its GT magnitude, sum(|Vg| e) / (sum(|Vg|) + eps),
  so a wrong direction on a slow pixel costs less. The ``dir_threshold`` mask still applies:
  pixels at or below it weigh 0.

All arithmetic is float64 on the prediction's device, so that a batch scores exactly as its
items do and the tables built from the scores are reproducible.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor

Flow = Tensor | np.ndarray

D_MAG_NORMS = ("component", "vector")
D_DIR_WEIGHTINGS = ("uniform", "magnitude")


def _rows(terms: Any) -> list[dict[str, Any]]:
    columns = {f.name: getattr(terms, f.name).reshape(-1).tolist() for f in fields(terms)}
    items = zip(*columns.values(), strict=True)
    return [dict(zip(columns, values, strict=True)) for values in items]


@dataclass(frozen=True)
class RewardTerms:
    """The reward with the terms behind it, so a training log can show why a reward moved.

    Every field has shape [B] for a batch of flows and is 0-d for a single flow.
    """

    reward: Tensor
    continuous: Tensor
    d_comb: Tensor
    d_mag: Tensor
    d_dir: Tensor
    m_move: Tensor
    d_min: Tensor

    def rows(self) -> list[dict[str, float]]:
        """One dict of Python floats per item, ready to become a table row."""
        return _rows(self)


@dataclass(frozen=True)
class MASTerms:
    """MAS with the terms behind it; ``m_pred`` and ``m_gt`` are mean normalised magnitudes.

    Every field has shape [B] for a batch of flows and is 0-d for a single flow.
    """

    mas: Tensor
    d_ovl: Tensor
    d_mag: Tensor
    d_dir: Tensor
    m_pred: Tensor
    m_gt: Tensor
    static: Tensor

    def rows(self) -> list[dict[str, float | bool]]:
        """One dict of Python values per item, ready to become a table row."""
        return _rows(self)


def _check_switches(d_mag_norm: str, d_dir_weighting: str) -> None:
    if d_mag_norm not in D_MAG_NORMS:
        raise ValueError(f"d_mag_norm must be one of {D_MAG_NORMS}, got {d_mag_norm!r}")
    if d_dir_weighting not in D_DIR_WEIGHTINGS:
        raise ValueError(
            f"d_dir_weighting must be one of {D_DIR_WEIGHTINGS}, got {d_dir_weighting!r}"
        )


def _normalised(flow_pred: Flow, flow_gt: Flow) -> tuple[Tensor, Tensor]:
    """Both flows in float64 on one device, in units of the image diagonal."""

    def as_float64(flow: Flow, device: torch.device | None) -> Tensor:
        # Numpy input is copied: torch refuses to share a read-only (e.g. memory-mapped) array.
        if not isinstance(flow, Tensor):
            flow = torch.from_numpy(np.array(flow, dtype=np.float64))
        return flow.to(device=device, dtype=torch.float64)

    vp = as_float64(flow_pred, None)
    vg = as_float64(flow_gt, vp.device)
    if vp.shape != vg.shape:
        raise ValueError(
            f"flow_pred and flow_gt must have the same shape, "
            f"got {tuple(vp.shape)} and {tuple(vg.shape)}"
        )
    if vp.ndim not in (3, 4) or vp.shape[-1] != 2:
        raise ValueError(f"flows must be [H, W, 2] or [B, H, W, 2], got {tuple(vp.shape)}")
    diagonal = math.hypot(vp.shape[-3], vp.shape[-2])
    return vp / diagonal, vg / diagonal


def _speed(v: Tensor) -> Tensor:
    return torch.linalg.vector_norm(v, dim=-1)


def _d_mag(vp: Tensor, vg: Tensor, eps: float, q: float, norm: str) -> Tensor:
    err = (vp - vg).abs()
    if norm == "vector":
        err = err.sum(-1, keepdim=True)
    return (err + eps).pow(q).mean(dim=(-3, -2, -1))


def _d_dir(vp: Tensor, vg: Tensor, eps: float, threshold: float, weighting: str) -> Tensor:
    mg = _speed(vg)
    u = vp / _speed(vp).clamp_min(eps).unsqueeze(-1)
    v = vg / mg.clamp_min(eps).unsqueeze(-1)
    cos = (u * v).sum(-1).clamp(-1, 1)
    err = (1 - cos).clamp(0, 2) * 0.5
    moving = mg > threshold
    if weighting == "magnitude":
        weight = mg * moving
        return (weight * err).sum((-2, -1)) / (weight.sum((-2, -1)) + eps)
    return (err * moving).sum((-2, -1)) / moving.sum((-2, -1)).clamp_min(1)


def _unit_score(d: Tensor, d_min: Tensor, d_max: float) -> Tensor:
    """1 at d_min, 0 at d_max; the span is kept positive so a bad setting cannot divide by 0."""
    span = (d_max - d_min).clamp_min(1e-6)
    return 1 - ((d - d_min) / span).clamp(0, 1)


def motion_reward(
    flow_pred: Flow,
    flow_gt: Flow,
    *,
    eps: float = 1e-6,
    q: float = 0.4,
    dir_threshold: float = 0.002,
    w_mag: float = 0.7,
    w_dir: float = 0.2,
    w_move: float = 0.1,
    move_tau: float = 0.01,
    move_ratio: float = 0.5,
    d_max: float = 1.0,
    bins: int | None = 5,
    d_mag_norm: str = "component",
    d_dir_weighting: str = "uniform",
) -> RewardTerms:
    """The training reward: 1 for the target's motion, lower the further the edit strays.

    The quantised ``reward`` is what the policy sees, since a few coarse levels are robust to
    flow noise; ``continuous`` and the terms are kept for logging. See the module docstring.
    """
    _check_switches(d_mag_norm, d_dir_weighting)
    vp, vg = _normalised(flow_pred, flow_gt)
    d_mag = _d_mag(vp, vg, eps, q, d_mag_norm)
    d_dir = _d_dir(vp, vg, eps, dir_threshold, d_dir_weighting)
    m_pred, m_gt = _speed(vp).mean((-2, -1)), _speed(vg).mean((-2, -1))
    m_move = (move_tau + move_ratio * m_gt - m_pred).clamp_min(0)
    d_comb = w_mag * d_mag + w_dir * d_dir + w_move * m_move
    d_min = _d_mag(vg, vg, eps, q, d_mag_norm)
    continuous = _unit_score(d_comb, d_min, d_max)
    reward = torch.round(continuous * bins) / bins if bins else continuous
    return RewardTerms(reward, continuous, d_comb, d_mag, d_dir, m_move, d_min)


def mas(
    flow_pred: Flow,
    flow_gt: Flow,
    *,
    eps: float = 1e-6,
    q: float = 0.4,
    dir_threshold: float = 0.002,
    alpha: float = 0.7,
    d_min: float | None = None,
    d_max: float = 1.0,
    rho_min: float = 0.01,
    d_mag_norm: str = "component",
    d_dir_weighting: str = "uniform",
) -> MASTerms:
    """The benchmark's Motion Alignment Score in [0, 100]; 100 is the target's motion.

    ``d_min`` None means eps^q, the floor D_mag reaches when the flows agree. The static
    safeguard looks at mean motion only: a GT without motion never makes an edit static.
    """
    _check_switches(d_mag_norm, d_dir_weighting)
    vp, vg = _normalised(flow_pred, flow_gt)
    d_mag = _d_mag(vp, vg, eps, q, d_mag_norm)
    d_dir = _d_dir(vp, vg, eps, dir_threshold, d_dir_weighting)
    d_ovl = alpha * d_mag + (1 - alpha) * d_dir
    low = _d_mag(vg, vg, eps, q, d_mag_norm) if d_min is None else torch.full_like(d_ovl, d_min)
    m_pred, m_gt = _speed(vp).mean((-2, -1)), _speed(vg).mean((-2, -1))
    static = (m_gt > 0) & (m_pred / m_gt < rho_min)
    score = (100 * _unit_score(d_ovl, low, d_max)).masked_fill(static, 0.0)
    return MASTerms(score, d_ovl, d_mag, d_dir, m_pred, m_gt, static)


def _keyword_defaults(fn: Callable[..., Any]) -> dict[str, Any]:
    params = inspect.signature(fn).parameters.values()
    return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


REWARD_DEFAULTS: dict[str, Any] = _keyword_defaults(motion_reward)
MAS_DEFAULTS: dict[str, Any] = _keyword_defaults(mas)
