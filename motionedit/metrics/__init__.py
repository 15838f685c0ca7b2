"""Scores for edited images: how well an edit's motion matches the target's.

What lives here: ``motion.py`` (the motion reward and MAS from two flows, with their
terms), ``edit_score.py`` (both for (input, edited, target) images through a flow
backend) and ``pixels.py`` (pixel distances for the editor-quality benchmark). Which
metrics the benchmark reports, and their columns, is declared in motionedit/evaluate/metrics.py.
"""

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
