"""The offline judge's checks on image pairs whose answer is known, and the rewriter."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from motionedit.config import validate_config
from motionedit.judge import PairInput, make_judge, make_rewriter

H, W = 144, 192


def background(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    low = cv2.resize(rng.uniform(60, 200, (6, 8, 3)).astype(np.float32), (W, H))
    return (low + rng.normal(0, 6, (H, W, 3))).clip(0, 255).astype(np.uint8)


def subject(seed: int, size=(36, 48)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    tex = rng.integers(120, 255, (size[0] // 4, size[1] // 4, 1)).repeat(4, 0).repeat(4, 1)
    return (tex * np.array([[[1.0, 0.15, 0.1]]])).astype(np.uint8)  # a red textured box


def scene(x: int, y: int = 50, seed: int = 0, with_subject: bool = True) -> np.ndarray:
    img = background(seed)
    if with_subject:
        s = subject(1)
        img[y : y + s.shape[0], x : x + s.shape[1]] = s
    return img


@pytest.fixture(scope="module")
def judge():
    config = validate_config({"sources": [{"name": "s", "kind": "synthetic"}]})
    return make_judge(config)


def verdict(judge, tmp_path, a, b):
    p0, p1 = tmp_path / "a.png", tmp_path / "b.png"
    cv2.imwrite(str(p0), a[:, :, ::-1])
    cv2.imwrite(str(p1), b[:, :, ::-1])
    return judge.judge(PairInput("p", str(p0), str(p1)))


def test_a_moving_subject_is_kept_as_locomotion(judge, tmp_path):
    v = verdict(judge, tmp_path, scene(30), scene(70))
    assert v.keep and v.reason == "ok"
    assert v.category == "locomotion" and "to the right" in v.after
    assert "red" in v.summary


def test_a_hard_cut_fails_the_setting_check(judge, tmp_path):
    v = verdict(judge, tmp_path, scene(30, seed=0), scene(70, seed=5))
    assert not v.setting_ok and not v.keep


def test_blur_and_noise_fail_the_quality_check(judge, tmp_path):
    blurred = cv2.GaussianBlur(scene(70), (0, 0), 6)
    assert (
        verdict(judge, tmp_path, cv2.GaussianBlur(scene(30), (0, 0), 6), blurred).reason
        == "quality:sharpness"
    )
    rng = np.random.default_rng(0)

    def noisy(img):
        return (img + rng.normal(0, 40, img.shape)).clip(0, 255).astype(np.uint8)

    assert verdict(judge, tmp_path, noisy(scene(30)), noisy(scene(70))).reason == "quality:noise"


def test_a_vanished_subject_fails_the_subject_check(judge, tmp_path):
    v = verdict(judge, tmp_path, scene(70), scene(70, with_subject=False))
    assert not v.subject_ok and v.reason.startswith("subject:")


def test_evidence_is_kept(judge, tmp_path):
    v = verdict(judge, tmp_path, scene(30), scene(70))
    for key in ("warp_error", "sharpness", "noise", "subject_consistency", "fits"):
        assert key in v.details


@pytest.mark.parametrize(
    ("category", "details", "expected"),
    [
        ("locomotion", {"fits": [{"colour": "red"}], "direction": "to the right",
                        "from": "on the left", "to": "in the centre"},
         "Move the red subject to the right, ending up in the centre."),
        ("orientation", {"fits": [{"colour": "blue"}], "turn": "clockwise", "degrees": 90},
         "Turn the blue subject clockwise by about 90 degrees."),
        ("subject_subject", {"fits": [{"colour": "red"}, {"colour": "green"}], "meet": True},
         "Make the red and the green subjects move toward each other."),
        ("deformation", {"fits": [{"colour": "grey"}], "grows": False},
         "Make the grey object squash down smaller."),
    ],
)  # fmt: skip
def test_rewriter_writes_one_imperative_sentence(category, details, expected):
    config = validate_config({"sources": [{"name": "s", "kind": "synthetic"}]})
    text = make_rewriter(config).rewrite({"category": category, "details": details})
    assert text == expected
    assert text.count(".") == 1 and "frame" not in text and "video" not in text
