"""The factories of the two rewards an MLLM judges, ``mllm`` and ``gemini``.

The registry (motionedit/rewards/__init__.py) builds every reward from the whole config
and the run's options; these two clients take only their own config sections (and Gemini
the shared call layer's), so this is where the config is taken apart for them. Each client
module is imported only when a run weighs its reward.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from motionedit.rewards import RewardOptions
    from motionedit.rewards.gemini import GeminiReward
    from motionedit.rewards.mllm import MLLMReward


def make_mllm_reward(config: dict[str, Any], options: RewardOptions) -> MLLMReward:
    """The vLLM-served reward at ``rewards.mllm``."""
    from motionedit.rewards.mllm import MLLMReward

    return MLLMReward(config["rewards"]["mllm"])


def make_gemini_reward(config: dict[str, Any], options: RewardOptions) -> GeminiReward:
    """The Gemini reward at ``rewards.gemini``, over the call layer set up at ``mllm``."""
    from motionedit.rewards.gemini import GeminiReward

    return GeminiReward(config["rewards"]["gemini"], config["mllm"], logging.getLogger(__name__))
