"""The motion reward and MAS give known answers on flows whose scores can be worked by hand."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from motionedit.metrics import MAS_DEFAULTS, REWARD_DEFAULTS, mas, motion_reward

EPS_Q = 1e-6**0.4  # d_min of the default settings


def patch_flow(dx: float = 12.0) -> torch.Tensor:
    """A 40x60 patch moving dx pixels right in a still 120x160 frame (diagonal 200)."""
    flow = torch.zeros(120, 160, 2, dtype=torch.float64)
    flow[40:80, 50:110, 0] = dx
    return flow


def random_flow(seed: int, shape: tuple[int, ...] = (24, 32, 2)) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen, dtype=torch.float64) * 3


def upsample2(flow: torch.Tensor) -> torch.Tensor:
    """The same motion in an image twice the size: nearest-neighbour, vectors doubled."""
    return flow.repeat_interleave(2, dim=-3).repeat_interleave(2, dim=-2) * 2


def patch_mas(err_px: float, d_dir: float) -> float:
    """MAS of an x error of err_px on the patch only, worked with scalars (1/8 of pixels)."""
    frac, err = 2400 / 19200, err_px / 200
    d_mag = (frac * (err + 1e-6) ** 0.4 + (1 - frac) * EPS_Q + EPS_Q) / 2
    return 100 * (1 - (0.7 * d_mag + 0.3 * d_dir - EPS_Q) / (1 - EPS_Q))


def test_defaults_are_the_released_scorer_settings():
    assert REWARD_DEFAULTS == {
        "eps": 1e-6,
        "q": 0.4,
        "dir_threshold": 0.002,
        "w_mag": 0.7,
        "w_dir": 0.2,
        "w_move": 0.1,
        "move_tau": 0.01,
        "move_ratio": 0.5,
        "d_max": 1.0,
        "bins": 5,
        "d_mag_norm": "component",
        "d_dir_weighting": "uniform",
    }
    assert MAS_DEFAULTS == {
        "eps": 1e-6,
        "q": 0.4,
        "dir_threshold": 0.002,
        "alpha": 0.7,
        "d_min": None,
        "d_max": 1.0,
        "rho_min": 0.01,
        "d_mag_norm": "component",
        "d_dir_weighting": "uniform",
    }


@pytest.mark.parametrize("flow", [patch_flow(), random_flow(0)], ids=["patch", "random"])
def test_identical_moving_flows_score_best(flow):
    r, m = motion_reward(flow, flow.clone()), mas(flow, flow.clone())
    assert r.reward.item() == 1.0 and r.continuous.item() == 1.0
    assert r.d_dir.item() == pytest.approx(0, abs=1e-12)
    assert r.d_mag.item() == pytest.approx(EPS_Q, rel=1e-12)
    assert r.d_min.item() == pytest.approx(EPS_Q, rel=1e-12)
    assert m.mas.item() == 100.0 and not m.static.item()


def test_identical_zero_flows_score_best():
    zero = torch.zeros(16, 20, 2)
    r, m = motion_reward(zero, zero), mas(zero, zero)
    assert r.reward.item() == 1.0 and r.d_dir.item() == 0.0
    assert r.m_move.item() == pytest.approx(0.01)  # move_tau alone, absorbed below d_min
    assert m.mas.item() == 100.0 and not m.static.item()
    assert m.m_pred.item() == 0.0 and m.m_gt.item() == 0.0


def test_static_prediction_of_a_moving_target():
    gt = patch_flow()
    r, m = motion_reward(torch.zeros_like(gt), gt), mas(torch.zeros_like(gt), gt)
    assert m.static.item() is True and m.mas.item() == 0.0
    assert m.m_pred.item() == 0.0 and m.m_gt.item() == pytest.approx(0.06 / 8)
    # The hinge: 0.01 + 0.5 * 0.0075 - 0.
    assert r.m_move.item() == pytest.approx(0.01375, rel=1e-12)
    assert r.d_dir.item() == pytest.approx(0.5)  # a zero vector is orthogonal to everything
    assert r.continuous.item() < 0.9 and r.reward.item() == pytest.approx(0.8)


def test_slight_motion_is_static_below_rho_min_only():
    gt = patch_flow()
    assert mas(0.009 * gt, gt).static.item() and mas(0.009 * gt, gt).mas.item() == 0.0
    assert not mas(0.011 * gt, gt).static.item() and mas(0.011 * gt, gt).mas.item() > 0


def test_prediction_moving_where_the_target_is_still_is_not_static():
    pred = patch_flow()
    m = mas(pred, torch.zeros_like(pred))
    assert not m.static.item() and 0 < m.mas.item() < 100


def test_reversed_motion_scores_below_halved_motion():
    gt = patch_flow()
    half_r, half_m = motion_reward(0.5 * gt, gt), mas(0.5 * gt, gt)
    back_r, back_m = motion_reward(-gt, gt), mas(-gt, gt)
    # Halved: right direction, 6 px short; reversed: 24 px off and pointing backwards.
    assert half_r.d_dir.item() == pytest.approx(0, abs=1e-12)
    assert back_r.d_dir.item() == pytest.approx(1.0)
    assert half_m.mas.item() == pytest.approx(patch_mas(6, 0.0), rel=1e-12)
    assert back_m.mas.item() == pytest.approx(patch_mas(24, 1.0), rel=1e-12)
    assert 98 < half_m.mas.item() < 100 and 60 < back_m.mas.item() < 75
    assert half_r.reward.item() == pytest.approx(1.0) and back_r.reward.item() == pytest.approx(0.8)
    assert back_r.continuous.item() < half_r.continuous.item() < 1
    assert half_r.m_move.item() == pytest.approx(0.01)  # 0.01 + 0.5 m_gt - 0.5 m_gt


def test_scaling_image_and_flows_together_changes_nothing():
    pred, gt = random_flow(1), random_flow(2)
    for p, g in [(pred, gt), (0.5 * patch_flow(), patch_flow()), (-patch_flow(), patch_flow())]:
        small_r, big_r = motion_reward(p, g), motion_reward(upsample2(p), upsample2(g))
        small_m, big_m = mas(p, g), mas(upsample2(p), upsample2(g))
        assert big_r.reward.item() == small_r.reward.item()
        for name in ("continuous", "d_comb", "d_mag", "d_dir", "m_move", "d_min"):
            assert getattr(big_r, name).item() == pytest.approx(
                getattr(small_r, name).item(), abs=1e-9
            )
        assert big_m.mas.item() == pytest.approx(small_m.mas.item(), abs=1e-6)
        assert big_m.static.item() == small_m.static.item()


@pytest.mark.parametrize("fn", [motion_reward, mas])
@pytest.mark.parametrize("switches", [{}, {"d_mag_norm": "vector", "d_dir_weighting": "magnitude"}])
def test_a_batch_scores_as_its_items(fn, switches):
    g = patch_flow()[:48, :64]
    preds = torch.stack([random_flow(3, (48, 64, 2)), 0.5 * g, torch.zeros_like(g), g])
    gts = torch.stack([random_flow(4, (48, 64, 2)), g, g, g])
    batch = fn(preds, gts, **switches)
    rows = batch.rows()
    assert len(rows) == 4
    for i in range(4):
        one = fn(preds[i], gts[i], **switches)
        assert len(one.rows()) == 1
        for name, value in one.rows()[0].items():
            assert getattr(one, name).shape == ()
            assert getattr(batch, name).shape == (4,)
            assert rows[i][name] == pytest.approx(value, rel=0, abs=1e-12)


def test_numpy_input_scores_as_torch_input():
    pred = np.asarray(random_flow(5), np.float32)
    gt = np.asarray(random_flow(6), np.float32)
    assert (
        motion_reward(pred, gt).rows()
        == motion_reward(torch.from_numpy(pred), torch.from_numpy(gt)).rows()
    )
    assert mas(pred, gt).rows() == mas(torch.from_numpy(pred), gt).rows()


def test_read_only_numpy_input_is_accepted_quietly():
    flow = np.asarray(patch_flow())
    flow.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mas(flow, flow).mas.item() == 100.0


def test_rows_hold_python_values():
    row = mas(patch_flow(), patch_flow()).rows()[0]
    assert type(row["mas"]) is float and type(row["static"]) is bool
    assert all(
        type(v) is float for v in motion_reward(patch_flow(), patch_flow()).rows()[0].values()
    )


# A 2x2 example worked by hand, in units of the diagonal (sqrt 8 px), with q = 1 and eps = 0.01:
#   pixel  gt          pred        |gt|  |pred|  direction error e
#   0      (.3, .4)    (.3, .4)    .5    .5      0
#   1      (.6, 0)     (0, .6)     .6    .6      .5   (a right angle)
#   2      (0, 0)      (.1, 0)     0     .1      --   (gt still: not counted)
#   3      (0, .2)     (0, -.2)    .2    .2      1    (reversed)
TINY_GT = [[[0.3, 0.4], [0.6, 0.0]], [[0.0, 0.0], [0.0, 0.2]]]
TINY_PRED = [[[0.3, 0.4], [0.0, 0.6]], [[0.1, 0.0], [0.0, -0.2]]]
TINY = {"eps": 0.01, "q": 1.0}


def tiny_flows() -> tuple[torch.Tensor, torch.Tensor]:
    def pixels(rows: list) -> torch.Tensor:
        return torch.tensor(rows, dtype=torch.float64) * math.sqrt(8)

    return pixels(TINY_PRED), pixels(TINY_GT)


def test_tiny_example_with_the_released_formulas():
    pred, gt = tiny_flows()
    r = motion_reward(pred, gt, move_ratio=1.5, **TINY)
    # |errors| per component: 0, 0, .6, .6, .1, 0, 0, .4 -> (1.7 + 8 * .01) / 8.
    assert r.d_mag.item() == pytest.approx(0.2225, abs=1e-12)
    assert r.d_min.item() == pytest.approx(0.01, abs=1e-12)
    # Uniform over the three moving gt pixels: (0 + .5 + 1) / 3.
    assert r.d_dir.item() == pytest.approx(0.5, abs=1e-12)
    # mean |pred| = .35, mean |gt| = .325: .01 + 1.5 * .325 - .35.
    assert r.m_move.item() == pytest.approx(0.1475, abs=1e-12)
    assert r.d_comb.item() == pytest.approx(0.7 * 0.2225 + 0.2 * 0.5 + 0.1 * 0.1475, abs=1e-12)
    continuous = 1 - (r.d_comb.item() - 0.01) / 0.99
    assert r.continuous.item() == pytest.approx(continuous, abs=1e-12)
    assert r.reward.item() == pytest.approx(0.8)  # 5 * 0.737 = 3.68 rounds to 4
    assert motion_reward(pred, gt, move_ratio=1.5, bins=None, **TINY).reward.item() == (
        pytest.approx(continuous, abs=1e-12)
    )
    assert motion_reward(pred, gt, move_ratio=1.5, bins=0, **TINY).reward.item() == (
        pytest.approx(continuous, abs=1e-12)
    )
    # The hinge is 0 at the default ratio: .01 + .5 * .325 < .35.
    assert motion_reward(pred, gt, **TINY).m_move.item() == 0.0

    m = mas(pred, gt, **TINY)
    assert m.d_ovl.item() == pytest.approx(0.7 * 0.2225 + 0.3 * 0.5, abs=1e-12)
    assert m.mas.item() == pytest.approx(100 * (1 - (0.30575 - 0.01) / 0.99), abs=1e-10)
    assert m.m_pred.item() == pytest.approx(0.35) and m.m_gt.item() == pytest.approx(0.325)
    fixed = mas(pred, gt, d_min=0.1, d_max=0.5, **TINY)
    assert fixed.mas.item() == pytest.approx(100 * (1 - (0.30575 - 0.1) / 0.4), abs=1e-10)


def test_tiny_example_with_the_paper_formulas():
    pred, gt = tiny_flows()
    paper = {"d_mag_norm": "vector", "d_dir_weighting": "magnitude", **TINY}
    r = motion_reward(pred, gt, move_ratio=1.5, **paper)
    # L1 per pixel: 0, 1.2, .1, .4 -> (1.7 + 4 * .01) / 4.
    assert r.d_mag.item() == pytest.approx(0.435, abs=1e-12)
    assert r.d_min.item() == pytest.approx(0.01, abs=1e-12)
    # Weighted by |gt|: (.6 * .5 + .2 * 1) / (.5 + .6 + .2 + .01).
    assert r.d_dir.item() == pytest.approx(0.5 / 1.31, abs=1e-12)
    assert r.m_move.item() == pytest.approx(0.1475, abs=1e-12)
    m = mas(pred, gt, **paper)
    d_ovl = 0.7 * 0.435 + 0.3 * 0.5 / 1.31
    assert m.d_ovl.item() == pytest.approx(d_ovl, abs=1e-12)
    assert m.mas.item() == pytest.approx(100 * (1 - (d_ovl - 0.01) / 0.99), abs=1e-10)


def test_diagonal_error_costs_more_as_a_vector_norm():
    gt = patch_flow()
    d = 0.01  # of the diagonal, in x and in y, on every pixel
    pred = gt + d * 200
    component, vector = mas(pred, gt), mas(pred, gt, d_mag_norm="vector")
    assert component.d_mag.item() == pytest.approx((d + 1e-6) ** 0.4, rel=1e-9)
    assert vector.d_mag.item() == pytest.approx((2 * d + 1e-6) ** 0.4, rel=1e-9)
    assert vector.mas.item() < component.mas.item() - 3
    r_component = motion_reward(pred, gt)
    r_vector = motion_reward(pred, gt, d_mag_norm="vector")
    assert r_vector.continuous.item() < r_component.continuous.item()
    # An error along x only: half the components are exact in the released form.
    pred = gt.clone()
    pred[..., 0] += d * 200
    assert mas(pred, gt).d_mag.item() == pytest.approx(((d + 1e-6) ** 0.4 + EPS_Q) / 2, rel=1e-9)
    assert mas(pred, gt, d_mag_norm="vector").d_mag.item() == pytest.approx(
        (d + 1e-6) ** 0.4, rel=1e-9
    )


def test_direction_errors_on_slow_pixels_weigh_less_by_magnitude():
    gt = torch.zeros(10, 10, 2, dtype=torch.float64)
    diagonal = math.hypot(10, 10)
    gt[:5, :, 0] = 0.05 * diagonal  # fast, predicted right
    gt[5:, :, 0] = 0.005 * diagonal  # slow but above the threshold, predicted reversed
    pred = gt.clone()
    pred[5:] *= -1
    uniform = mas(pred, gt).d_dir.item()
    weighted = mas(pred, gt, d_dir_weighting="magnitude").d_dir.item()
    assert uniform == pytest.approx(0.5)
    assert weighted == pytest.approx(50 * 0.005 / (50 * 0.055 + 1e-6))
    assert weighted < uniform / 5


def test_direction_ignores_gt_pixels_at_or_below_the_threshold():
    gt = torch.zeros(10, 10, 2, dtype=torch.float64)
    diagonal = math.hypot(10, 10)
    gt[:5, :, 0] = 0.05 * diagonal
    gt[5:, :, 0] = 0.001 * diagonal  # slower than dir_threshold
    pred = gt.clone()
    pred[5:] *= -1
    for weighting in ("uniform", "magnitude"):
        assert mas(pred, gt, d_dir_weighting=weighting).d_dir.item() == pytest.approx(0, abs=1e-12)
    assert mas(-gt, gt, dir_threshold=0.0).d_dir.item() == pytest.approx(1.0)


def test_quantisation_rounds_half_to_even():
    # Still flows with q = 1, eps = .25: d_min = D_mag = .25 and the hinge is move_tau = .25, so
    # D = .5 sits exactly halfway to d_max = .75 and 5 * .5 = 2.5 rounds down to 2.
    zero = torch.zeros(4, 4, 2)
    exact = {"eps": 0.25, "q": 1.0, "w_mag": 1.0, "w_move": 1.0, "move_tau": 0.25, "d_max": 0.75}
    r = motion_reward(zero, zero, **exact)
    assert r.continuous.item() == 0.5 and r.reward.item() == pytest.approx(0.4)
    assert motion_reward(zero, zero, bins=3, **exact).reward.item() == pytest.approx(2 / 3)


@pytest.mark.parametrize("fn", [motion_reward, mas])
def test_bad_switches_are_refused(fn):
    flow = patch_flow()
    with pytest.raises(ValueError, match=r"d_mag_norm .*'component', 'vector'.*'l2'"):
        fn(flow, flow, d_mag_norm="l2")
    with pytest.raises(ValueError, match=r"d_dir_weighting .*'uniform', 'magnitude'.*'area'"):
        fn(flow, flow, d_dir_weighting="area")


@pytest.mark.parametrize("fn", [motion_reward, mas])
def test_bad_shapes_are_refused(fn):
    with pytest.raises(ValueError, match=r"same shape.*\(120, 160, 2\) and \(60, 80, 2\)"):
        fn(patch_flow(), torch.zeros(60, 80, 2))
    with pytest.raises(ValueError, match=r"\[H, W, 2\].*\(120, 160, 3\)"):
        fn(torch.zeros(120, 160, 3), torch.zeros(120, 160, 3))
    with pytest.raises(ValueError, match=r"\[B, H, W, 2\].*\(120, 2\)"):
        fn(torch.zeros(120, 2), torch.zeros(120, 2))


def test_config_defaults_are_the_function_defaults():
    from motionedit.config import validate_config

    cfg = validate_config({"sources": [{"name": "s", "kind": "synthetic"}]})
    assert cfg["metrics"]["motion_reward"] == REWARD_DEFAULTS
    assert cfg["metrics"]["mas"] == MAS_DEFAULTS
