"""The arithmetic of MotionNFT: optimality rewards, the group filter, the NFT loss, the decays.

DiffusionNFT trains on the policy's own samples without a likelihood: each sample's reward
becomes an *optimality* r in [0, 1], and the model learns an implicit positive velocity
(pulled toward where good samples came from) and an implicit negative one (pushed away from
where bad ones came from), both expressed through the current velocity and the frozen old
policy's. Everything here is pure tensor arithmetic so it can be pinned by unit tests.

Conventions are the editor adapters' (motionedit.models.base): ``x_sigma = (1 - sigma) x0 +
sigma noise`` and the velocity target is ``noise - x0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def optimality_rewards(raw: Tensor, adv_clip: float = 5.0, eps: float = 1e-4) -> Tensor:
    """Raw rewards ``[G, K]`` (G prompts, K samples each) as optimality rewards in [0, 1].

    Each prompt's mean is subtracted (a sample is good *for its prompt*) and the result is
    divided by Z = the population standard deviation of *every* reward given (one scale
    for all prompts, so a group of near-equal samples stays near 0.5) plus ``eps``; the
    advantage is clipped to ``+-adv_clip`` and mapped linearly onto [0, 1]:
    r = 1/2 + 1/2 clip(A / adv_clip, -1, 1), the paper's eq. 3 with Z_c = adv_clip * Z.

    The caller passes all of a step's rewards, over every process and before any group is
    filtered, as the released trainer does (train_nft_kontext.py: the rewards are gathered,
    then ``PerPromptStatTracker.update`` with ``global_std`` takes ``np.std`` of all of
    them + 1e-4). A missing reward (NaN) is left out of Z; its group's r is NaN, and the
    group filter drops that group.
    """
    if raw.ndim != 2:
        raise ValueError(f"raw rewards must be [groups, samples], got {tuple(raw.shape)}")
    present = raw[~torch.isnan(raw)]
    scale = present.std(unbiased=False) if present.numel() > 1 else raw.new_tensor(0.0)
    advantage = (raw - raw.mean(dim=1, keepdim=True)) / (scale + eps)
    return 0.5 + 0.5 * (advantage / adv_clip).clamp(-1.0, 1.0)


def _group_stats(raw: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per group: whether every reward is there, the (population) std and the mean."""
    complete = ~torch.isnan(raw).any(dim=1)
    filled = torch.nan_to_num(raw)
    return complete, filled.std(dim=1, unbiased=False), filled.mean(dim=1)


def group_keep(raw: Tensor, min_std: float = 0.05, max_mean: float = 0.9) -> Tensor:
    """Which prompt groups a step trains on: those whose rewards spread (population std
    above ``min_std``), that are not already good on average (mean below ``max_mean``) and
    that have every reward (a NaN means a reward server failed for one of its samples).

    This is the released trainer's per-step mask (train_nft_kontext.py, ``valid_mask =
    (stds > ban_std_thres) & (means < ban_mean_thres)``): both conditions must hold, so a
    group with too little spread is skipped whatever its mean.
    """
    complete, std, mean = _group_stats(raw)
    return complete & (std > min_std) & (mean < max_mean)


def group_banned(raw: Tensor, min_std: float = 0.05, max_mean: float = 0.9) -> Tensor:
    """Which prompt groups are solved: complete, with std below ``min_std`` and mean above
    ``max_mean``. The released trainer stops sampling such prompts (``ban_prompt``,
    flow_grpo/stat_tracking.py: ``prompt_std < ban_std_thres and prompt_mean >
    ban_mean_thres``)."""
    complete, std, mean = _group_stats(raw)
    return complete & (std < min_std) & (mean > max_mean)


def old_policy_decay(step: int, rate: float = 0.001, cap: float = 0.5) -> float:
    """How much of itself the old policy keeps after ``step`` updates: min(rate * step, cap).

    Early on the old policy follows the new one completely (on-policy); later it lags,
    which keeps the negative velocity meaningful as the policy improves.
    """
    return min(rate * step, cap)


def ema_decay_at(step: int, cap: float, warmup: bool = True) -> float:
    """How much of itself the EMA of the policy keeps at optimiser step ``step`` (from 1).

    With ``warmup`` it is min((1 + step) / (10 + step), cap): 2/11 after the first step,
    so the early EMA follows the policy closely rather than staying near the initial
    weights for tens of steps (the released trainer's flow_grpo/ema.py, called with the
    number of optimiser steps taken). Without it the decay is ``cap`` from the start.
    """
    return min((1.0 + step) / (10.0 + step), cap) if warmup else cap


@torch.no_grad()
def blend_(target: list[Tensor], source: list[Tensor], keep: float) -> None:
    """target <- keep * target + (1 - keep) * source, in place: the old-policy and EMA updates."""
    for t, s in zip(target, source, strict=True):
        t.mul_(keep).add_(s.detach().to(t.dtype), alpha=1.0 - keep)


@dataclass
class NFTTerms:
    loss: Tensor  # what is minimised: policy + kl_weight * kl
    policy: Tensor  # policy_scale * mean(r positive + (1 - r) negative)
    positive: Tensor  # mean over samples of the positive term (before the r weighting)
    negative: Tensor
    kl: Tensor


def _per_sample(x: Tensor) -> Tensor:
    return x.float().pow(2).mean(dim=tuple(range(1, x.ndim)))


def nft_loss(
    v_theta: Tensor,
    v_old: Tensor,
    target: Tensor,
    r: Tensor,
    beta: float = 1.0,
    sigma: Tensor | None = None,
    adaptive: bool = False,
    v_ref: Tensor | None = None,
    kl_weight: float = 0.0,
    policy_scale: float = 1.0,
) -> NFTTerms:
    """The negative-aware objective at sampled noise levels.

    v+ = (1 - beta) v_old + beta v_theta and v- = (1 + beta) v_old - beta v_theta; the loss is
    ``policy_scale`` times r ||v+ - target||^2 + (1 - r) ||v- - target||^2 averaged over
    samples, plus ``kl_weight`` ||v_theta - v_ref||^2 toward the reference (the model
    without the adapter), which the scale does not touch.

    The trainer passes ``policy_scale = adv_clip / beta``: the released trainer divides
    both terms by beta and multiplies their mean by adv_clip_max before adding
    ``train.beta`` (the KL weight) times the unscaled KL (train_nft_kontext.py, the
    ``ori_policy_loss`` and ``policy_loss`` lines; DiffusionNFT's train_nft_sd3.py the
    same). With Adam the scale changes little by itself, but it sets how strongly the KL
    weight and the gradient-norm clip act.
    With ``adaptive`` each term is measured in x0 space (x0_hat = x_t - sigma v, so the error
    is sigma times the velocity error) and divided by its own detached mean absolute error,
    which evens out the scale of the terms across noise levels.
    """
    v_old = v_old.detach()
    target = target.detach()
    v_pos = (1.0 - beta) * v_old + beta * v_theta
    v_neg = (1.0 + beta) * v_old - beta * v_theta
    err_pos, err_neg = v_pos - target, v_neg - target
    if adaptive:
        if sigma is None:
            raise ValueError("the adaptive weighting needs the noise levels (sigma)")
        s = sigma.to(err_pos.dtype).view(-1, *([1] * (err_pos.ndim - 1)))
        err_pos, err_neg = s * err_pos, s * err_neg
        dims = tuple(range(1, err_pos.ndim))
        w_pos = err_pos.detach().abs().float().mean(dim=dims).clamp(min=1e-5)
        w_neg = err_neg.detach().abs().float().mean(dim=dims).clamp(min=1e-5)
        positive, negative = _per_sample(err_pos) / w_pos, _per_sample(err_neg) / w_neg
    else:
        positive, negative = _per_sample(err_pos), _per_sample(err_neg)
    r = r.to(positive.dtype)
    policy = policy_scale * (r * positive + (1.0 - r) * negative).mean()
    kl = v_theta.new_zeros((), dtype=torch.float32)
    if v_ref is not None and kl_weight > 0:
        kl = _per_sample(v_theta - v_ref.detach()).mean()
    return NFTTerms(
        loss=policy + kl_weight * kl,
        policy=policy.detach(),
        positive=positive.detach().mean(),
        negative=negative.detach().mean(),
        kl=kl.detach(),
    )
