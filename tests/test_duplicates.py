"""Copies of one video (same bytes, re-encoded, reached through a link loop) never straddle
the train/bench split, checked on the images the dataset writes."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import ffmpeg
from matplotlib import cbook

from motionedit import CATEGORIES
from motionedit.config import validate_config
from motionedit.dataset import (
    NEAR_BITS,
    build_dataset,
    collect_pairs,
    find_duplicates,
    near_duplicate_pairs,
    split_videos,
)
from motionedit.frames import extract_shard
from motionedit.manifest import build_manifest, content_signature, dhash
from motionedit.tables import write_table
from motionedit.video import probe

LOG = logging.getLogger("test_duplicates")
#: A real photograph that matplotlib ships (512x600): natural textures, not a test pattern.
PHOTO = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
#: Distinct clips: a 240x180 crop of the photograph in different places, panning.
CLIPS = {
    "face": ("140+12*t", "60"),
    "top left": ("10*t", "0"),
    "medals": ("200-10*t", "330"),
    "lower": ("60", "400+8*t"),
    "right": ("260", "150+10*t"),
    "left middle": ("0", "200+10*t"),
}


def photo_clip(path: Path, x: str, y: str, seconds: float = 4.0) -> Path:
    """A 160x120, 24 fps H.264 clip panning over a crop of the photograph."""
    path.parent.mkdir(parents=True, exist_ok=True)
    vf = f"crop=240:180:'{x}':'{y}',scale=160:120"
    args = ["-loop", "1", "-framerate", "24", "-t", str(seconds), "-i", str(PHOTO), "-vf", vf]
    ffmpeg(*args, "-c:v", "libx264", "-crf", "23", "-g", "24", "-pix_fmt", "yuv420p", str(path))
    return path


def reencode(src: Path, dest: Path) -> Path:
    """What a re-upload does: smaller, worse quality, another frame rate and GOP."""
    ffmpeg("-i", str(src), "-vf", "scale=112:84", "-r", "30", "-c:v", "libx264", "-crf", "38",
           "-g", "100", "-pix_fmt", "yuv420p", str(dest))  # fmt: skip
    return dest


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def mined(tmp_path_factory):
    """A local corpus with copies, fetched and cut into frames by the real stages; the
    prefilter, judge and rewrite keep every pair (what they decide is not under test)."""
    tmp = tmp_path_factory.mktemp("duplicates")
    root = tmp / "corpus"
    for name, (x, y) in CLIPS.items():
        photo_clip(root / "clips" / f"{name}.mp4", x, y)
    (root / "copies").mkdir()
    shutil.copyfile(root / "clips" / "face.mp4", root / "copies" / "face copy.mp4")
    reencode(root / "clips" / "face.mp4", root / "copies" / "face small.mp4")
    (root / "clips" / "loop").symlink_to("..")  # glob.glob would list every clip 41 times
    source = {"name": "mine", "kind": "local", "path_glob": f"{root}/**/*.mp4"}
    config = validate_config(
        {
            "sources": [source],
            "frames": {"window_seconds": 1.0, "stride_seconds": 1.0},
            "dataset": {"bench_fraction": 0.5},
        }
    )
    manifest = build_manifest(config["sources"][0], "0000", tmp / "videos", config["video"], LOG)
    frames = extract_shard(manifest, tmp / "frames", config["frames"], LOG)
    pairs = frames[frames["pair_id"].notna() & frames["skip"].isna()]
    category = {v: CATEGORIES[i % 3] for i, v in enumerate(sorted(pairs["video_id"].unique()))}
    pre = pd.DataFrame(
        {"pair_id": pairs["pair_id"], "motion_mean": 0.05, "motion_peak": 0.1,
         "moving_frac": 0.3, "camera_motion": 0.0, "tracks": [[]] * len(pairs),
         "track_visible": [[]] * len(pairs), "keep": True, "reason": "ok"}
    )  # fmt: skip
    judge = pd.DataFrame({"pair_id": pairs["pair_id"], "keep": True, "reason": "ok"})
    ins = pd.DataFrame(
        {
            "pair_id": pairs["pair_id"],
            "video_id": pairs["video_id"],
            "source": pairs["source"],
            "instruction": "Move the camera.",
            "category": pairs["video_id"].map(category),
            "error": None,
        }
    )
    tables = {}
    for name, df in (("man", manifest), ("frames", frames), ("pre", pre), ("judge", judge),
                     ("ins", ins)):  # fmt: skip
        tables[name] = [str(tmp / f"{name}.parquet")]
        write_table(df, tables[name][0])
    return SimpleNamespace(tmp=tmp, root=root, manifest=manifest, tables=tables, config=config)


FACE_GROUP = ["mine/clips/face.mp4", "mine/copies/face copy.mp4", "mine/copies/face small.mp4"]


def test_manifest_lists_each_file_once_with_its_identities(mined):
    man = mined.manifest
    assert sorted(man["video_id"]) == sorted(
        [f"mine/clips/{n}.mp4" for n in CLIPS] + FACE_GROUP[1:]
    )  # the loop added no ids
    assert man["error"].isna().all() and man["signature"].map(len).eq(3).all()
    by_id = man.set_index("video_id")
    assert by_id.loc[FACE_GROUP[0], "sha256"] == by_id.loc[FACE_GROUP[1], "sha256"]
    assert by_id.loc[FACE_GROUP[0], "sha256"] != by_id.loc[FACE_GROUP[2], "sha256"]


def _bits(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def test_signatures_match_copies_and_separate_real_photographs(mined):
    sigs = {v: list(s) for v, s in zip(mined.manifest["video_id"], mined.manifest["signature"],
                                         strict=True)}  # fmt: skip
    for a, b in itertools.combinations(sorted(sigs), 2):
        distances = [_bits(x, y) for x, y in zip(sigs[a], sigs[b], strict=True)]
        if a in FACE_GROUP and b in FACE_GROUP:
            assert max(distances) <= NEAR_BITS, (a, b, distances)  # measured: 0-6 bits
        else:
            assert min(distances) > NEAR_BITS, (a, b, distances)  # measured: 21 and more
    near = near_duplicate_pairs(list(sigs), list(sigs.values()))
    assert near == list(itertools.combinations(FACE_GROUP, 2))


def test_signature_follows_the_upright_picture(tmp_path):
    clip = photo_clip(tmp_path / "face.mp4", *CLIPS["face"], seconds=6)
    signature = content_signature(clip, probe(clip))
    assert len(signature) == 3 and all(len(h) == 16 for h in signature)
    # A stream shown rotated is another picture (the frames stage extracts it upright)...
    rotated = tmp_path / "rotated.mp4"
    ffmpeg("-display_rotation", "90", "-i", str(clip), "-c", "copy", str(rotated))
    turned = content_signature(rotated, probe(rotated))
    assert min(_bits(a, b) for a, b in zip(signature, turned, strict=True)) > NEAR_BITS
    # ...and the same picture as a re-encode with the rotation baked into the pixels.
    baked = tmp_path / "baked.mp4"
    ffmpeg("-i", str(rotated), "-c:v", "libx264", "-crf", "30", "-pix_fmt", "yuv420p", str(baked))
    assert probe(baked).rotation == 0
    again = content_signature(baked, probe(baked))
    assert max(_bits(a, b) for a, b in zip(turned, again, strict=True)) <= NEAR_BITS


def test_flat_frames_have_no_hash_and_match_nothing_on_their_own():
    assert dhash(np.zeros((48, 64), np.uint8)) == ""
    assert dhash(np.full((48, 64), 200, np.uint8)) == ""
    assert len(dhash(np.tile(np.arange(64, dtype=np.uint8), (48, 1)))) == 16
    black = ["", "", ""]
    fade = ["", "0f0f0f0f0f0f0f0f", ""]
    assert near_duplicate_pairs(["a", "b"], [black, black]) == []
    assert near_duplicate_pairs(["a", "b", "c"], [fade, fade, black]) == [("a", "b")]


def _image_digests(out: Path, split: str) -> tuple[set[str], set[str]]:
    files = {sha(p.read_bytes()) for p in (out / split / "images").iterdir()}
    table = pq.read_table(out / split / "data.parquet").to_pylist()
    embedded = {sha(r[c]["bytes"]) for r in table for c in ("input_image", "target_image")}
    return files, embedded


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_image_lands_in_both_splits(mined, seed):
    t, out = mined.tables, mined.tmp / f"dataset{seed}"
    cfg = mined.config["dataset"]
    stats = build_dataset(t["man"], t["frames"], t["pre"], t["judge"], t["ins"], out, cfg, seed)
    train_files, train_table = _image_digests(out, "train")
    bench_files, bench_table = _image_digests(out, "bench")
    assert train_files and bench_files
    assert train_files == train_table and bench_files == bench_table
    assert not train_files & bench_files
    dup = json.loads((out / "stats.json").read_text())["duplicates"]
    assert dup == stats["duplicates"]
    assert dup["duplicate_videos"] == {"exact": 1, "near": 1, "frames": 0}
    assert dup["groups"] == 1 and dup["videos_in_groups"] == 3 and dup["unlisted_groups"] == 0
    [group] = dup["listed"]
    assert group["videos"] == FACE_GROUP and group["found_by"] == ["exact", "near"]
    assert group["split"] in ("train", "bench")
    # Groups are the units of the split: 6 groups, 3 of them in the benchmark.
    bench_videos = 5 if group["split"] == "bench" else 3
    assert stats["dataset"]["bench"]["videos"] == bench_videos
    first = {p: (out / p).read_bytes() for p in ("train/data.parquet", "bench/data.parquet")}
    build_dataset(t["man"], t["frames"], t["pre"], t["judge"], t["ins"], out, cfg, seed)
    assert {p: (out / p).read_bytes() for p in first} == first  # byte-identical rerun


def test_splitting_by_video_id_alone_would_leak_the_copies(mined):
    t = mined.tables
    pairs = collect_pairs(t["frames"], t["pre"], t["ins"])
    digests = {p: sha(Path(p).read_bytes()) for p in pd.concat([pairs.frame0, pairs.frame1])}

    def crossing(assignment: dict[str, str]) -> set[str]:
        side = pairs["video_id"].map(assignment)
        images = {s: {digests[p] for c in ("frame0", "frame1") for p in pairs.loc[side == s, c]}
                  for s in ("train", "bench")}  # fmt: skip
        return images["train"] & images["bench"]

    groups = find_duplicates(mined.manifest, pairs).representative
    leaked = [s for s in range(20) if crossing(split_videos(pairs, 0.5, s))]
    assert leaked  # the old split put the byte copy on the other side for these seeds
    for seed in range(20):
        assert not crossing(split_videos(pairs, 0.5, seed, groups))


def _pairs(video_ids: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"id": f"{v}_w{k}", "video_id": v, "source": "s", "category": CATEGORIES[i % 6]}
         for i, v in enumerate(video_ids) for k in range(2)]
    )  # fmt: skip


def test_exact_duplicates_share_a_split_for_every_seed():
    ids = [f"s/v{i:02d}" for i in range(20)]
    manifest = pd.DataFrame({"video_id": ids, "sha256": [f"d{i}" for i in range(20)]})
    manifest.loc[manifest["video_id"] == "s/v13", "sha256"] = "d04"  # v13 is a copy of v04
    manifest.loc[manifest["video_id"] == "s/v04", "sha256"] = "d04"
    pairs = _pairs(ids)
    dup = find_duplicates(manifest, pairs)
    assert dup.groups() == {"s/v04": ["s/v04", "s/v13"]}
    assert dup.found == {"exact": 1, "near": 0, "frames": 0}
    apart = 0
    for seed in range(100):
        split = split_videos(pairs, 0.5, seed, dup.representative)
        assert split["s/v04"] == split["s/v13"]
        # 19 groups, 10 of them in the benchmark.
        assert sum(s == "bench" for s in split.values()) == (
            11 if split["s/v04"] == "bench" else 10
        )
        by_id = split_videos(pairs, 0.5, seed)
        apart += by_id["s/v04"] != by_id["s/v13"]
    assert apart > 25  # by video id alone, about half of the seeds separate them


def test_shared_frame_bytes_join_videos_and_groups_are_stable(tmp_path):
    ids = [f"s/v{i:02d}" for i in range(12)]
    rows = []
    for v in ids:
        for k in range(2):
            f0, f1 = tmp_path / f"{v[2:]}_{k}_0.png", tmp_path / f"{v[2:]}_{k}_1.png"
            f0.write_bytes(f"{v} {k} input".encode())
            f1.write_bytes(f"{v} {k} target".encode())
            rows.append({"id": f"{v}_w{k}", "video_id": v, "frame0": str(f0), "frame1": str(f1)})
    pairs = pd.DataFrame(rows).merge(_pairs(ids)[["id", "source", "category"]], on="id")
    # v09's second target is byte for byte v02's first input: a clip inside a longer one.
    shutil.copyfile(tmp_path / "v02_0_0.png", tmp_path / "v09_1_1.png")
    dup = find_duplicates(pd.DataFrame({"video_id": ids}), pairs)
    assert dup.groups() == {"s/v02": ["s/v02", "s/v09"]}
    assert dup.found == {"exact": 0, "near": 0, "frames": 1}
    assert dup.summary({})["listed"] == [
        {"videos": ["s/v02", "s/v09"], "found_by": ["frames"], "split": None}
    ]
    # A video without copies is placed as it was without grouping, and more videos do
    # not move the group.
    grouped = split_videos(pairs, 0.3, 0, dup.representative)
    plain = split_videos(pairs, 0.3, 0)
    assert grouped["s/v02"] == grouped["s/v09"]
    more = pd.concat([pairs, _pairs([f"t/w{i}" for i in range(6)]).assign(source="t")])
    assert split_videos(more, 0.3, 0, dup.representative)["s/v02"] == grouped["s/v02"]
    assert sum(grouped[v] != plain[v] for v in ids) <= 3
