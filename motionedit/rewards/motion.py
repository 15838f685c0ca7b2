"""The optical-flow motion reward of MotionNFT, over a batch of edits.

The flows input -> edited and input -> target come from the configured flow backend
(UniMatch for paper parity, DIS offline) in one call per image size, and the reward is the
released scorer's (binned to six levels by default; see motionedit/metrics/motion.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from motionedit.flow import FlowEstimator, make_flow
from motionedit.metrics import score_edits

if TYPE_CHECKING:
    from motionedit.rewards import RewardOptions


class MotionReward:
    name = "motion"

    def __init__(
        self,
        flow_cfg: dict[str, Any],
        reward_cfg: dict[str, Any],
        mas_cfg: dict[str, Any],
        flow: FlowEstimator | None = None,
    ) -> None:
        self.flow = flow or make_flow(flow_cfg)
        self.reward_cfg, self.mas_cfg = reward_cfg, mas_cfg
        self.last_errors: list[str | None] = []
        self.last_mas: list[float] = []

    def score(
        self, inputs: list[Any], edited: list[Any], prompts: list[str], targets: list[Any]
    ) -> list[float | None]:
        rows = score_edits(inputs, edited, targets, self.flow, self.reward_cfg, self.mas_cfg)
        self.last_errors = [None] * len(rows)
        self.last_mas = [float(r["mas"]) for r in rows]
        return [float(r["reward"]) for r in rows]


def make_motion_reward(config: dict[str, Any], options: RewardOptions) -> MotionReward:
    """The reward from ``flow:`` and ``metrics:``, with the run's bins and shared flow."""
    metrics = config["metrics"]
    reward_cfg = dict(metrics["motion_reward"])
    if options.motion_bins is not None:
        reward_cfg["bins"] = options.motion_bins
    return MotionReward(config["flow"], reward_cfg, metrics["mas"], flow=options.flow)
