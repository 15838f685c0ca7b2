"""A deterministic appearance reward: closeness of the edit to the ground-truth target frame.

The paper mixes the motion reward with an MLLM's judgement of instruction following and
visual quality, which keeps the editor from trading appearance for motion. Offline there is
no MLLM, but training pairs come with the true target frame, so the mean absolute pixel
error to it (at the edit's size) measures the same thing directly: the right subject in the
right place with the background and identity kept. 1 means identical, 0 an error of
``scale`` (on 0..1 intensities) or more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch.nn.functional as F

from motionedit.metrics.edit_score import as_rgb_tensor

if TYPE_CHECKING:
    from motionedit.rewards import RewardOptions


class AppearanceReward:
    name = "appearance"

    def __init__(self, scale: float = 0.25) -> None:
        if scale <= 0:
            raise ValueError("rewards.appearance.scale must be positive")
        self.scale = scale
        self.last_errors: list[str | None] = []

    def score(
        self, inputs: list[Any], edited: list[Any], prompts: list[str], targets: list[Any]
    ) -> list[float | None]:
        out = []
        for e, t in zip(edited, targets, strict=True):
            e, t = as_rgb_tensor(e) / 255.0, as_rgb_tensor(t) / 255.0
            if t.shape != e.shape:
                t = F.interpolate(t[None], size=e.shape[-2:], mode="bilinear", align_corners=False)[
                    0
                ]
            error = float((e - t).abs().mean())
            out.append(float(1.0 - min(error / self.scale, 1.0)))
        self.last_errors = [None] * len(out)
        return out


def make_appearance_reward(config: dict[str, Any], options: RewardOptions) -> AppearanceReward:
    """The reward at ``rewards.appearance.scale``."""
    return AppearanceReward(config["rewards"]["appearance"]["scale"])
