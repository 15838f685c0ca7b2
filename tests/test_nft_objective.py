"""MotionNFT's arithmetic pinned on small tensors."""

from __future__ import annotations

import math

import pytest
import torch

from motionedit.nft.objective import (
    blend_,
    group_banned,
    group_keep,
    nft_loss,
    old_policy_decay,
    optimality_rewards,
)


def test_a_group_of_equal_rewards_is_one_half_everywhere():
    raw = torch.tensor([[0.4, 0.4, 0.4], [0.2, 0.6, 1.0]])
    r = optimality_rewards(raw)
    assert torch.allclose(r[0], torch.full((3,), 0.5))
    assert torch.allclose(optimality_rewards(torch.full((2, 4), 0.7)), torch.full((2, 4), 0.5))


def test_optimality_rewards_follow_eq3_with_the_global_scale():
    raw = torch.tensor([[0.0, 1.0], [0.5, 0.5]])
    z = raw.std(unbiased=False) + 1e-4  # population std (0.3536) + the released 1e-4
    advantage = torch.tensor([[-0.5, 0.5], [0.0, 0.0]]) / z
    expected = 0.5 + 0.5 * torch.clamp(advantage / 5, -1, 1)
    assert torch.allclose(optimality_rewards(raw), expected, atol=1e-7)
    # A large advantage is clipped to the ends of [0, 1].
    tiny_scale = torch.tensor([[0.0] * 99 + [1.0]])
    r = optimality_rewards(tiny_scale, adv_clip=1.0)
    assert r.max() == 1.0 and r.min() >= 0.0


def test_the_scale_is_the_std_of_every_reward_given():
    """Z comes from all the rewards passed in, the groups the filter will drop included;
    a missing reward is left out of Z and makes its own group's r NaN."""
    raw = torch.tensor([[0.1, 0.3, 0.2], [0.95, 0.95, 0.95], [0.0, 1.0, 0.5]], dtype=torch.float64)
    z = float(raw.std(unbiased=False)) + 1e-4
    r = optimality_rewards(raw, adv_clip=5.0)
    for g in range(3):
        expected = 0.5 + 0.5 * ((raw[g] - raw[g].mean()) / z / 5).clamp(-1, 1)
        assert torch.allclose(r[g], expected, atol=1e-12)
    # The same group gets another r when the other groups change Z.
    alone = optimality_rewards(raw[:1], adv_clip=5.0)
    assert not torch.allclose(alone[0], r[0])
    gap = raw.clone()
    gap[1, 0] = float("nan")
    z_gap = float(gap[~gap.isnan()].std(unbiased=False)) + 1e-4
    r_gap = optimality_rewards(gap, adv_clip=5.0)
    assert r_gap[1].isnan().all() and not r_gap[[0, 2]].isnan().any()
    expected = 0.5 + 0.5 * ((raw[2] - raw[2].mean()) / z_gap / 5).clamp(-1, 1)
    assert torch.allclose(r_gap[2], expected, atol=1e-12)


NAN = float("nan")
FILTER_CASES = torch.tensor(
    [
        [0.95, 0.95, 0.96],  # std 0.005, mean 0.953: solved, dropped and banned
        [0.95, 0.95, 0.95],  # std 0: solved
        [0.5, 0.5, 0.5],  # std 0, mean 0.5: too little spread, dropped, not solved
        [0.8, 1.0, 0.95],  # std 0.085, mean 0.92: spread but good on average, dropped
        [0.2, NAN, 0.9],  # a reward is missing: dropped, never banned
        [0.91, 0.99, 0.95],  # std 0.033 < 0.05, mean 0.95: solved
        [0.1, 0.3, 0.2],  # std 0.082, mean 0.2: kept
        [0.7, 0.9, 0.95],  # std 0.108, mean 0.85: kept
        [0.4, 0.45, 0.5],  # std 0.041 < 0.05: dropped (the mean is irrelevant)
    ]
)


def test_the_group_filter_keeps_exactly_the_spread_not_yet_good_complete_groups():
    """The released mask: std > min_std AND mean < max_mean AND no reward missing."""
    keep = group_keep(FILTER_CASES)
    assert keep.tolist() == [False, False, False, False, False, False, True, True, False]
    complete = ~FILTER_CASES.isnan().any(dim=1)
    filled = FILTER_CASES.nan_to_num()
    std, mean = filled.std(dim=1, unbiased=False), filled.mean(dim=1)
    for min_std, max_mean in ((0.05, 0.9), (0.0, 0.9), (0.05, 2.0), (0.09, 0.5)):
        expected = complete & (std > min_std) & (mean < max_mean)
        assert group_keep(FILTER_CASES, min_std, max_mean).tolist() == expected.tolist()
    # min_std 0 keeps every complete group with any spread that is not good on average.
    assert group_keep(FILTER_CASES, min_std=0.0).tolist() == [
        False, False, False, False, False, False, True, True, True,
    ]  # fmt: skip


def test_a_solved_group_is_one_of_low_spread_and_high_mean():
    """The released ban: std < min_std AND mean > max_mean (a NaN group is never solved)."""
    assert group_banned(FILTER_CASES).tolist() == [
        True, True, False, False, False, True, False, False, False,
    ]  # fmt: skip
    assert not group_banned(FILTER_CASES, min_std=0.0).any()
    assert not (group_banned(FILTER_CASES) & group_keep(FILTER_CASES)).any()


def test_the_decay_schedule_matches_min_rate_step_cap():
    assert [old_policy_decay(s) for s in (0, 1, 250, 499, 500, 10_000)] == [
        0.0,
        0.001,
        0.25,
        pytest.approx(0.499),
        0.5,
        0.5,
    ]
    assert old_policy_decay(30, rate=0.01, cap=0.2) == 0.2


def test_blend_moves_the_target_toward_the_source():
    old, new = [torch.zeros(3)], [torch.ones(3)]
    blend_(old, new, keep=0.25)
    assert torch.allclose(old[0], torch.full((3,), 0.75))
    blend_(old, new, keep=1.0)
    assert torch.allclose(old[0], torch.full((3,), 0.75))


def _velocities(seed=0, shape=(4, 6, 3)):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g) for _ in range(4)]


def test_beta_one_makes_the_positive_velocity_the_current_one():
    v_theta, v_old, target, _ = _velocities()
    r = torch.ones(4)
    terms = nft_loss(v_theta, v_old, target, r, beta=1.0)
    assert torch.allclose(terms.positive, (v_theta - target).pow(2).mean())
    # ... and the negative one its reflection through the old policy.
    v_neg = 2 * v_old - v_theta
    assert torch.allclose(terms.negative, (v_neg - target).pow(2).mean())


def test_r_one_leaves_only_the_positive_term_and_r_zero_only_the_negative():
    v_theta, v_old, target, _ = _velocities(1)
    only_pos = nft_loss(v_theta, v_old, target, torch.ones(4), beta=0.5)
    only_neg = nft_loss(v_theta, v_old, target, torch.zeros(4), beta=0.5)
    assert torch.allclose(only_pos.policy, only_pos.positive)
    assert torch.allclose(only_neg.policy, only_neg.negative)
    half = nft_loss(v_theta, v_old, target, torch.full((4,), 0.5), beta=0.5)
    assert torch.allclose(half.policy, (only_pos.positive + only_neg.negative) / 2)


def test_gradients_pull_toward_good_samples_and_away_from_bad_ones():
    target = torch.zeros(1, 2, 2)
    v_old = torch.ones(1, 2, 2)
    for r, sign in ((1.0, 1.0), (0.0, -1.0)):
        v = torch.ones(1, 2, 2, requires_grad=True)
        nft_loss(v, v_old, target, torch.tensor([r])).loss.backward()
        # r = 1: reduce v (toward the target); r = 0: increase v (away from it).
        assert torch.all(torch.sign(v.grad) == sign)


def test_the_policy_scale_multiplies_the_policy_term_and_not_the_kl():
    v_theta, v_old, target, v_ref = _velocities(4)
    r = torch.tensor([0.1, 0.5, 0.9, 1.0])
    plain = nft_loss(v_theta, v_old, target, r, beta=0.5, v_ref=v_ref, kl_weight=1e-2)
    scaled = nft_loss(v_theta, v_old, target, r, beta=0.5, v_ref=v_ref, kl_weight=1e-2,
                      policy_scale=5.0 / 0.5)  # fmt: skip
    assert torch.allclose(scaled.policy, 10.0 * plain.policy)
    assert torch.allclose(scaled.kl, plain.kl) and torch.allclose(scaled.positive, plain.positive)
    assert torch.allclose(scaled.loss, 10.0 * plain.policy + 1e-2 * plain.kl)


def test_the_kl_term_measures_distance_to_the_reference():
    v_theta, v_old, target, v_ref = _velocities(2)
    terms = nft_loss(v_theta, v_old, target, torch.ones(4), v_ref=v_ref, kl_weight=1e-4)
    assert torch.allclose(terms.kl, (v_theta - v_ref).pow(2).mean())
    assert torch.allclose(terms.loss, terms.policy + 1e-4 * terms.kl)
    assert nft_loss(v_theta, v_old, target, torch.ones(4)).kl == 0


def test_adaptive_weighting_measures_each_term_in_x0_space():
    v_theta, v_old, target, _ = _velocities(3)
    sigma = torch.tensor([0.1, 0.4, 0.7, 1.0])
    terms = nft_loss(v_theta, v_old, target, torch.ones(4), sigma=sigma, adaptive=True)
    err = sigma.view(-1, 1, 1) * (v_theta - target)
    per = err.pow(2).mean(dim=(1, 2)) / err.abs().mean(dim=(1, 2))
    assert torch.allclose(terms.positive, per.mean())
    with pytest.raises(ValueError, match="sigma"):
        nft_loss(v_theta, v_old, target, torch.ones(4), adaptive=True)
    assert math.isfinite(float(terms.loss))
