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


def optimality_rewards(raw: Tensor, adv_clip: float = 5.0, eps: float = 1e-6) -> Tensor:
    """Raw rewards ``[G, K]`` (G prompts, K samples each) as optimality rewards in [0, 1].

    Each prompt's mean is subtracted (a sample is good *for its prompt*), the result is
    divided by the standard deviation over all samples of the epoch (one scale for every
    prompt, so a group of near-equal samples stays near 0.5), clipped to ``+-adv_clip`` and
    mapped linearly onto [0, 1]: r = 1/2 + 1/2 clip(A / adv_clip, -1, 1), the paper's eq. 3
    with Z_c = adv_clip * global std. A group whose samples are all equal gets 0.5 each.
    """
    if raw.ndim != 2:
        raise ValueError(f"raw rewards must be [groups, samples], got {tuple(raw.shape)}")
    advantage = raw - raw.mean(dim=1, keepdim=True)
    scale = raw.std(unbiased=False) if raw.numel() > 1 else raw.new_tensor(0.0)
    advantage = advantage / (scale + eps)
    return 0.5 + 0.5 * (advantage / adv_clip).clamp(-1.0, 1.0)


def group_keep(raw: Tensor, min_std: float = 0.05, max_mean: float = 0.9) -> Tensor:
    """Which prompts to train on: a group that is already uniformly good (std below
    ``min_std`` and mean above ``max_mean``) teaches nothing and is skipped, as is any group
    with a missing reward (NaN: a reward server failed for one of its samples)."""
    complete = ~torch.isnan(raw).any(dim=1)
    filled = torch.nan_to_num(raw)
    saturated = (filled.std(dim=1, unbiased=False) < min_std) & (filled.mean(dim=1) > max_mean)
    return complete & ~saturated


def old_policy_decay(step: int, rate: float = 0.001, cap: float = 0.5) -> float:
    """How much of itself the old policy keeps after ``step`` updates: min(rate * step, cap).

    Early on the old policy follows the new one completely (on-policy); later it lags,
    which keeps the negative velocity meaningful as the policy improves.
    """
    return min(rate * step, cap)


@torch.no_grad()
def blend_(target: list[Tensor], source: list[Tensor], keep: float) -> None:
    """target <- keep * target + (1 - keep) * source, in place: the old-policy and EMA updates."""
    for t, s in zip(target, source, strict=True):
        t.mul_(keep).add_(s.detach().to(t.dtype), alpha=1.0 - keep)


@dataclass
class NFTTerms:
    loss: Tensor  # what is minimised: policy + kl_weight * kl
    policy: Tensor
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
) -> NFTTerms:
    """The negative-aware objective at sampled noise levels.

    v+ = (1 - beta) v_old + beta v_theta and v- = (1 + beta) v_old - beta v_theta; the loss is
    r ||v+ - target||^2 + (1 - r) ||v- - target||^2 averaged over samples, plus
    ``kl_weight`` ||v_theta - v_ref||^2 toward the reference (the model without the adapter).
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
    policy = (r * positive + (1.0 - r) * negative).mean()
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
