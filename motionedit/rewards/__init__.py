"""Rewards for MotionNFT: a registry of components and their weighted mix.

Each component scores a batch of edits (input image, edited image, instruction, target
frame) with a value in [0, 1] per edit, or None where it could not (a reward server that
failed for that edit). The mix is the weighted mean with the weights normalised to sum to
one; an edit missing any component's value gets NaN, which the trainer's group filter drops.

What lives here, by reward name (``train.<run>.rewards`` in config):

- ``motion``: the optical-flow motion reward (motionedit/rewards/motion.py);
- ``mllm``: a vision-language model behind an OpenAI-compatible server (vLLM), the expected
  0-5 score from the digit tokens' log-probabilities (motionedit/rewards/mllm.py);
- ``gemini``: the same question asked of Gemini through the shared MLLM call layer
  (motionedit/rewards/gemini.py);
- ``appearance``: closeness to the ground-truth target frame, the deterministic stand-in for
  the MLLM term that the offline default uses (motionedit/rewards/appearance.py).

:data:`REWARDS` maps each name to its factory as a ``"module:function"`` reference, so a run
imports only the rewards it weighs (the MLLM clients and the flow backends pull in their
own dependencies). A factory takes the validated config and the run's
:class:`RewardOptions` and returns the component. A new reward is its module with such a
factory, one line in :data:`REWARDS`, and its name in the schema's ``train`` run
``rewards`` (tests/test_registries.py checks the two agree).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

#: Every reward by name: its factory, ``(config, options) -> Reward``, as "module:function".
REWARDS: dict[str, str] = {
    "motion": "motionedit.rewards.motion:make_motion_reward",
    "mllm": "motionedit.rewards.mllm:make_mllm_reward",
    "gemini": "motionedit.rewards.gemini:make_gemini_reward",
    "appearance": "motionedit.rewards.appearance:make_appearance_reward",
}
NAMES = tuple(REWARDS)


class Reward(Protocol):
    name: str
    last_errors: list[str | None]

    def score(
        self, inputs: list[Any], edited: list[Any], prompts: list[str], targets: list[Any]
    ) -> list[float | None]: ...


@dataclass(frozen=True)
class RewardOptions:
    """What one training run sets for its rewards beyond the config."""

    #: A flow estimator to share (the trainer's own), or None to build one from ``flow:``.
    flow: Any = None
    #: Levels of the motion reward, overriding ``metrics.motion_reward.bins`` (0: continuous).
    motion_bins: int | None = None


@dataclass
class Scores:
    total: torch.Tensor  # [N], NaN where a component is missing
    parts: dict[str, torch.Tensor] = field(default_factory=dict)  # [N] per component, NaN gaps
    errors: list[str | None] = field(default_factory=list)  # per edit, the first reason


class RewardMix:
    def __init__(self, components: dict[str, Reward], weights: dict[str, float]) -> None:
        total = sum(weights.values())
        if total <= 0:
            raise ValueError("reward weights must add up to more than 0")
        self.components = components
        self.weights = {k: w / total for k, w in weights.items() if w > 0}

    def __call__(
        self, inputs: list[Any], edited: list[Any], prompts: list[str], targets: list[Any]
    ) -> Scores:
        n = len(edited)
        total = torch.zeros(n, dtype=torch.float64)
        parts: dict[str, torch.Tensor] = {}
        errors: list[str | None] = [None] * n
        for name, weight in self.weights.items():
            component = self.components[name]
            values = component.score(inputs, edited, prompts, targets)
            part = torch.tensor(
                [float("nan") if v is None else v for v in values], dtype=total.dtype
            )
            for i, why in enumerate(component.last_errors or []):
                if why and errors[i] is None:
                    errors[i] = f"{name}: {why}"
            parts[name] = part
            total += weight * part
        return Scores(total=total, parts=parts, errors=errors)


def make_rewards(
    weights: dict[str, float],
    config: dict[str, Any],
    flow: Any = None,
    motion_bins: int | None = None,
) -> RewardMix:
    """The mix a training run asks for; ``config`` is the validated workflow config.

    ``motion_bins`` overrides ``metrics.motion_reward.bins`` for this mix (0: continuous).
    """
    unknown = sorted(set(weights) - set(REWARDS))
    if unknown:
        raise ValueError(f"unknown reward(s) {unknown}; known: {list(REWARDS)}")
    options = RewardOptions(flow=flow, motion_bins=motion_bins)
    components: dict[str, Reward] = {}
    for name, weight in weights.items():
        if weight > 0:
            module, _, factory = REWARDS[name].partition(":")
            components[name] = getattr(importlib.import_module(module), factory)(config, options)
    return RewardMix(components, weights)


__all__ = ["NAMES", "REWARDS", "Reward", "RewardMix", "RewardOptions", "Scores", "make_rewards"]
