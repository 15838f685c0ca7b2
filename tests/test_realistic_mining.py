"""The miner on clips made of real photographs and terrain (tests/realistic_clips.py),
encoded as H.264 and mined through the library as the workflow mines them: every negative
rejected, the positives kept with the right category and direction words."""

from __future__ import annotations

import logging

import pandas as pd
import pytest
from realistic_clips import write_folder
from realistic_mining import local_config, merge, mine

from motionedit.config import validate_config


@pytest.fixture(scope="module")
def outcome(tmp_path_factory) -> pd.DataFrame:
    work = tmp_path_factory.mktemp("realistic")
    truth = write_folder(work / "clips")
    config = local_config(validate_config({"sources": [{"name": "s", "kind": "synthetic"}]}),
                          work / "clips")  # fmt: skip
    return merge(truth, mine(config, work, logging.getLogger("realistic"))).set_index("name")


NEGATIVES = ["pan", "zoom", "shake", "static", "cut", "leaves", "degraded", "flicker"]
POSITIVES = ["translate", "rise", "rotate", "scale", "approach", "swing"]


@pytest.mark.parametrize("clip", NEGATIVES)
def test_negatives_are_rejected_for_their_reason(outcome, clip):
    row = outcome.loc[clip]
    assert not row["kept"] and row["right_reason"], row["reason_got"]


def test_positives_are_kept_with_their_category_and_direction(outcome):
    pos = outcome.loc[POSITIVES]
    assert pos["kept"].sum() >= 5, pos[["kept", "reason_got"]]
    kept = pos[pos["kept"]]
    assert kept["category_ok"].sum() >= 5, kept[["judged_category", "category"]]
    assert (kept["direction_ok"] == True).sum() >= 5, kept[["instruction", "direction"]]  # noqa: E712


def test_the_motion_measured_is_the_motion_made(outcome):
    for clip in ("translate", "rise", "approach"):
        row = outcome.loc[clip]
        assert row["motion_peak"] == pytest.approx(row["travel"], rel=0.25), clip
    assert outcome.loc["scale", "instruction"] == "Move the green subject toward the camera."
    assert "counter-clockwise" in outcome.loc["swing", "instruction"]
    assert "clockwise" in outcome.loc["rotate", "instruction"]
    assert outcome.loc["rise", "instruction"].startswith("Move the") and "upward" in outcome.loc[
        "rise", "instruction"]  # fmt: skip


def test_trajectories_are_in_the_input_frames_pixels(outcome):
    row = outcome.loc["rise"]
    assert len(row["tracks"]) == 8
    xs = [p[0] for track in row["tracks"] for p in track]
    ys = [p[1] for track in row["tracks"] for p in track]
    assert min(xs) >= 0 and max(xs) < row["width"] and min(ys) >= 0 and max(ys) < row["height"]
