"""Scores for edited images: how well an edit's motion matches the target's."""

from motionedit.metrics.edit_score import score_edit, score_edits
from motionedit.metrics.motion import (
    MAS_DEFAULTS,
    REWARD_DEFAULTS,
    MASTerms,
    RewardTerms,
    mas,
    motion_reward,
)

__all__ = [
    "MAS_DEFAULTS",
    "REWARD_DEFAULTS",
    "MASTerms",
    "RewardTerms",
    "mas",
    "motion_reward",
    "score_edit",
    "score_edits",
]
