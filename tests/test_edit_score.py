"""Image-level scoring: known edits of a textured scene, scored through real flow backends."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from motionedit.flow.dis import DISFlow
from motionedit.flow.unimatch import UniMatchFlow
from motionedit.metrics import score_edit, score_edits

H, W = 128, 160
BOX = (40, 90, 40, 100)
WEIGHTS = Path(__file__).parent / "fixtures" / "unimatch" / "unimatch_random_weights.pth"


def scene(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = (rng.random((H // 8, W // 8, 3)) * 255).astype(np.uint8)
    return cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC)


def moved(image: np.ndarray, dx: int) -> np.ndarray:
    """The scene with one block of it shifted dx pixels to the right."""
    y0, y1, x0, x1 = BOX
    out = image.copy()
    out[y0:y1, x0:x1] = np.roll(image, dx, axis=1)[y0:y1, x0:x1]
    return out


@pytest.fixture(scope="module")
def dis() -> DISFlow:
    return DISFlow()


def test_target_motion_scores_best_and_no_motion_scores_zero(dis):
    base = scene()
    target = moved(base, 8)
    best = score_edit(base, target, target, dis)
    assert best["reward"] == 1.0 and best["mas"] == 100.0 and not best["static"]
    still = score_edit(base, base, target, dis)
    assert still["static"] and still["mas"] == 0.0 and still["m_move"] > 0
    assert still["reward"] < 1.0


def test_reversed_motion_scores_below_half_motion(dis):
    base = scene()
    target = moved(base, 8)
    half = score_edit(base, moved(base, 4), target, dis)
    reverse = score_edit(base, moved(base, -8), target, dis)
    assert reverse["mas"] < half["mas"] < 100
    assert reverse["reward_continuous"] < half["reward_continuous"]
    assert reverse["d_dir"] > 0.5 > half["d_dir"]


def test_input_and_target_are_resized_to_the_edited_size(dis):
    base = scene()
    target = moved(base, 8)
    big = cv2.resize(base, (2 * W, 2 * H), interpolation=cv2.INTER_LINEAR)
    big_target = cv2.resize(target, (2 * W, 2 * H), interpolation=cv2.INTER_LINEAR)
    same = score_edit(big, target, big_target, dis)
    assert same["mas"] > 95 and same["reward"] == 1.0


def test_image_types_agree(dis, tmp_path):
    base, target = scene(), moved(scene(), 6)
    edit = moved(base, 3)
    path = tmp_path / "edit.png"
    Image.fromarray(edit).save(path)
    as_array = score_edit(base, edit, target, dis)
    as_pil = score_edit(Image.fromarray(base), path, Image.fromarray(target), dis)
    as_float_tensor = score_edit(
        torch.from_numpy(base).permute(2, 0, 1) / 255.0, edit, target.astype(np.float32) / 255, dis
    )
    assert as_array == as_pil
    assert as_float_tensor["mas"] == pytest.approx(as_array["mas"], abs=1e-6)


def test_batch_of_mixed_sizes_equals_single_calls(dis):
    base = scene()
    small = cv2.resize(base, (W // 2, H // 2), interpolation=cv2.INTER_AREA)
    inputs = [base, base, small]
    edits = [moved(base, 4), moved(base, -4), moved(small, 2)]
    targets = [moved(base, 8), moved(base, 8), moved(small, 4)]
    rows = score_edits(inputs, edits, targets, dis)
    for row, args in zip(rows, zip(inputs, edits, targets, strict=True), strict=True):
        assert row == score_edit(*args, dis)


def test_constants_come_from_config(dis):
    base, target = scene(), moved(scene(), 8)
    edit = moved(base, 2)
    default = score_edit(base, edit, target, dis)
    strict = score_edit(base, edit, target, dis, mas_cfg={"rho_min": 0.5})
    continuous = score_edit(base, edit, target, dis, reward_cfg={"bins": 0})
    assert default["mas"] > 0 and strict["mas"] == 0.0 and strict["static"]
    assert continuous["reward"] == continuous["reward_continuous"] != default["reward"]


def test_mismatched_lengths_are_an_error(dis):
    with pytest.raises(ValueError, match="differ in length: 1, 2, 1"):
        score_edits([scene()], [scene(), scene()], [scene()], dis)


def test_unimatch_backend_scores_through_tensors():
    flow = UniMatchFlow(WEIGHTS, device="cpu")
    base, target = scene(), moved(scene(), 8)
    row = score_edit(base, target, target, flow)
    assert row["mas"] == 100.0 and row["reward"] == 1.0 and row["d_dir"] < 1e-9
