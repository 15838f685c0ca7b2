"""Splitting by video and writing the dataset in formats others read."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest

from motionedit import CATEGORIES
from motionedit.dataset import build_dataset, split_videos
from motionedit.tables import write_table


def pairs_table(n_videos: int, per_video: int = 3, sources=("a", "b")) -> pd.DataFrame:
    rows = []
    for v in range(n_videos):
        for k in range(per_video):
            rows.append(
                {
                    "id": f"v{v}_w{k}",
                    "video_id": f"{sources[v % len(sources)]}/v{v}",
                    "source": sources[v % len(sources)],
                    "category": CATEGORIES[(v // 2) % len(CATEGORIES)],
                }
            )
    return pd.DataFrame(rows)


def test_split_groups_by_video_and_hits_the_fraction():
    pairs = pairs_table(100)
    split = split_videos(pairs, 0.1, seed=0)
    assert len(split) == 100
    assert sum(s == "bench" for s in split.values()) == 10
    pairs["split"] = pairs["video_id"].map(split)
    assert (pairs.groupby("video_id")["split"].nunique() == 1).all()  # no video in both
    bench = pairs[pairs["split"] == "bench"]
    assert set(bench["source"]) == {"a", "b"}  # stratified by source
    assert bench["category"].nunique() >= 5  # and by category, where sizes allow


def test_split_is_deterministic_and_seeded():
    pairs = pairs_table(60)
    assert split_videos(pairs, 0.1, seed=3) == split_videos(
        pairs.sample(frac=1, random_state=1), 0.1, seed=3
    )
    assert split_videos(pairs, 0.1, seed=3) != split_videos(pairs, 0.1, seed=4)


def test_adding_videos_keeps_most_assignments():
    small, large = split_videos(pairs_table(50), 0.1, 0), split_videos(pairs_table(60), 0.1, 0)
    moved = sum(small[v] != large[v] for v in small)
    assert moved <= 6


@pytest.mark.parametrize(("n", "bench"), [(1, 0), (2, 1), (5, 1), (30, 3)])
def test_small_sets_still_get_both_splits(n, bench):
    split = split_videos(pairs_table(n), 0.1, seed=0)
    assert sum(s == "bench" for s in split.values()) == bench


def write_stage_tables(tmp_path, n_videos=12):
    frames, pre, judge, ins, man = [], [], [], [], []
    for v in range(n_videos):
        # Frames of different videos differ: equal image bytes would make them one video.
        img = np.random.default_rng(v).integers(0, 255, (24, 32, 3), dtype=np.uint8)
        vid = f"src/v{v}"
        man.append({"video_id": vid, "source": "src", "error": None})
        for k in range(2):
            pid = f"v{v:02d}_w{k}"
            f0, f1 = tmp_path / f"{pid}_0.png", tmp_path / f"{pid}_1.png"
            cv2.imwrite(str(f0), img)
            cv2.imwrite(str(f1), img[:, ::-1])
            frames.append(
                {
                    "pair_id": pid,
                    "video_id": vid,
                    "source": "src",
                    "t0": 3.0 * k,
                    "t1": 3.0 * k + 3,
                    "frame0": str(f0),
                    "frame1": str(f1),
                    "width": 32,
                    "height": 24,
                    "strip_times": [3.0 * k, 3.0 * k + 1.5, 3.0 * k + 3],
                    "skip": None,
                    "error": None,
                }
            )
            # Two trajectories: one crosses 20 px of the 40-px diagonal, one is lost midway.
            tracks = [
                [[4.0, 4.0], [14.0, 4.0], [24.0, 4.0]],
                [[8.0, 20.0], [9.0, 19.0], [9.0, 19.0]],
            ]
            pre.append({"pair_id": pid, "motion_mean": 0.01 * v, "motion_peak": 0.05,
                        "moving_frac": 0.1, "camera_motion": 0.0, "tracks": tracks,
                        "track_visible": [[True, True, True], [True, True, False]],
                        "keep": True, "reason": "ok"})  # fmt: skip
            judge.append({"pair_id": pid, "keep": True, "reason": "ok"})
            ins.append(
                {
                    "pair_id": pid,
                    "video_id": vid,
                    "source": "src",
                    "instruction": f"Move subject {v}.",
                    "category": CATEGORIES[v % 6],
                    "error": None,
                }
            )
    paths = {}
    for name, rows in (
        ("man", man),
        ("frames", frames),
        ("pre", pre),
        ("judge", judge),
        ("ins", ins),
    ):
        paths[name] = [str(tmp_path / f"{name}.parquet")]
        write_table(pd.DataFrame(rows), paths[name][0])
    return paths


def test_dataset_files_load_with_datasets(tmp_path):
    datasets = pytest.importorskip("datasets")
    p = write_stage_tables(tmp_path)
    out = tmp_path / "dataset"
    cfg = {"bench_fraction": 0.1, "image_format": "png"}
    stats = build_dataset(p["man"], p["frames"], p["pre"], p["judge"], p["ins"], out, cfg, 0)
    assert stats["dataset"]["bench"]["videos"] == 1 and stats["dataset"]["train"]["videos"] == 11
    assert stats["dataset"]["train"]["pairs"] + stats["dataset"]["bench"]["pairs"] == 24
    assert stats["motion"]["motion_mean"]["p50"] == pytest.approx(0.055)
    assert stats["motion_peak_by_category"]["pose"]["mean"] == 0.05
    magnitude = stats["motion_magnitude"]
    assert magnitude["mean"] == pytest.approx(stats["motion"]["motion_mean"]["mean"])
    # Two pairs per video, at 0.00, 0.01, ..., 0.11 diagonals.
    assert [b["pairs"] for b in magnitude["histogram"]] == [2, 0, 0, 2, 4, 8, 8, 0, 0]
    assert magnitude["histogram"][-1] == {"from": 0.32, "to": None, "pairs": 0}
    meta = [
        json.loads(line) for line in (out / "train" / "metadata.jsonl").read_text().splitlines()
    ]
    assert {"id", "prompt", "image", "category"} <= set(meta[0])
    assert (out / "train" / meta[0]["image"][0]).exists()
    ds = datasets.load_dataset(
        "parquet",
        data_files=str(out / "train" / "data.parquet"),
        split="train",
        cache_dir=str(tmp_path / "hf"),
    )
    row = ds[0]
    assert row["input_image"].size == (32, 24) and row["prompt"].startswith("Move subject")
    # Trajectories load as nested lists: per track, (x, y) per sampled time, and visibility.
    assert row["tracks"][0] == [[4.0, 4.0], [14.0, 4.0], [24.0, 4.0]]
    assert row["track_visible"] == [[True, True, True], [True, True, False]]
    assert row["track_times"] == [0.0, 1.5, 3.0]
    assert meta[0]["tracks"][1][2] == [9.0, 19.0]
    traj = stats["trajectories"]
    assert traj["tracks"] == 48 and traj["pairs_with_tracks"] == 24
    assert traj["length"]["p90"] == pytest.approx(0.5) and traj["visible_fraction"]["p10"] < 1
    assert np.array_equal(np.asarray(row["target_image"]), np.asarray(row["input_image"])[:, ::-1])
    # The same inputs give byte-identical tables.
    first = (out / "train" / "data.parquet").read_bytes()
    build_dataset(p["man"], p["frames"], p["pre"], p["judge"], p["ins"], out, cfg, 0)
    assert (out / "train" / "data.parquet").read_bytes() == first
