"""How well the prefilter and the offline judge separate the synthetic corpus's pairs.

Runs fetch -> frames -> prefilter -> judge on the synthetic source of a config (the default
config.yaml unless --config is given) through the library, then compares every window's
decision with the generator's ground truth (the sidecar table that the filters never read).

Prints, per negative type, the share rejected (target: at least 90% overall), per category
the share of positives kept (target: at least 80% overall), the category accuracy of kept
positives, and how many MLLM calls the prefilter saved.

    .venv/bin/python benchmarks/filter_quality.py [--config FILE] [--clips 96] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import pandas as pd

from motionedit.config import load_config
from motionedit.frames import extract_shard
from motionedit.judge import make_judge
from motionedit.judge.stage import judge_shard
from motionedit.manifest import build_manifest
from motionedit.prefilter import prefilter_shard
from motionedit.sources import shard_names
from motionedit.sources.synthetic import window_truth


def run(config: dict, workdir: Path) -> pd.DataFrame:
    log = logging.getLogger("bench")
    rows = []
    for source in config["sources"]:
        if source["kind"] != "synthetic":
            continue
        for shard in shard_names(source):
            base = workdir / source["name"] / shard
            man = build_manifest(source, shard, base / "videos", config["video"], log)
            frames = extract_shard(
                man, base / "frames", config["frames"], log, strip_side=config["flow"]["max_side"]
            )
            pre = prefilter_shard(frames, config["prefilter"], config["flow"], log)
            judged = judge_shard(pre, frames, make_judge(config), base / "judge.raw.jsonl", log)
            truth = pd.read_parquet(base / "videos.truth.parquet").set_index("video_id")
            merged = (
                frames[frames["pair_id"].notna()]
                .merge(pre.drop(columns=["video_id", "source", "error"]), on="pair_id", how="left")
                .merge(
                    judged[["pair_id", "keep", "reason", "category", "details"]].rename(
                        columns={"keep": "judge_keep", "reason": "judge_reason"}
                    ),
                    on="pair_id",
                    how="left",
                )
            )
            for r in merged.itertuples():
                t = window_truth(truth.loc[r.video_id].to_dict(), r.t0, r.t1)
                pre_keep = bool(r.keep) if pd.notna(r.keep) else False
                final = pre_keep and bool(r.judge_keep) if pd.notna(r.judge_keep) else False
                rows.append(
                    {
                        "pair_id": r.pair_id,
                        "positive": t["positive"],
                        "label": t["label"],
                        "prefilter_keep": pre_keep,
                        "prefilter_reason": r.reason,
                        "judge_reason": r.judge_reason,
                        "kept": final,
                        "category": r.category,
                        "video_id": r.video_id,
                        "t0": r.t0,
                        "details": r.details,
                        "motion_peak": r.motion_peak,
                        "motion_moving": r.motion_moving,
                        "moving_frac": r.moving_frac,
                        "tracked_frac": r.tracked_frac,
                        "camera_motion": r.camera_motion,
                        "link_consistency": r.link_consistency,
                        "frame_correlation": r.frame_correlation,
                    }
                )
    return pd.DataFrame(rows)


def report(df: pd.DataFrame) -> bool:
    neg, pos = df[~df["positive"]], df[df["positive"]]
    print(f"{len(df)} windows: {len(pos)} positive, {len(neg)} negative\n")
    print("negatives rejected, by type (prefilter / judge / total):")
    for label, g in neg.groupby("label"):
        pre = (~g["prefilter_keep"]).mean()
        tot = (~g["kept"]).mean()
        print(f"  {label:16s} n={len(g):3d}  prefilter {pre:6.1%}  total {tot:6.1%}")
    neg_rate = (~neg["kept"]).mean() if len(neg) else float("nan")
    print(f"  {'ALL':16s} n={len(neg):3d}  total {neg_rate:6.1%}   (target >= 90%)\n")
    print("positives kept, by category (and category accuracy of the kept):")
    for label, g in pos.groupby("label"):
        kept = g[g["kept"]]
        acc = (kept["category"] == label).mean() if len(kept) else float("nan")
        print(f"  {label:16s} n={len(g):3d}  kept {g['kept'].mean():6.1%}  category acc {acc:6.1%}")
    pos_rate = pos["kept"].mean() if len(pos) else float("nan")
    print(f"  {'ALL':16s} n={len(pos):3d}  kept {pos_rate:6.1%}   (target >= 80%)\n")
    lost = pos[~pos["kept"]]
    if len(lost):
        print(
            "why positives were lost:",
            lost.groupby(["prefilter_reason", "judge_reason"], dropna=False).size().to_dict(),
        )
    saved = (~df["prefilter_keep"]).sum()
    print(
        f"MLLM calls saved by the prefilter: {saved} of {len(df)} candidate pairs "
        f"({saved / max(len(df), 1):.1%}); the judge would be paid for {len(df) - saved}."
    )
    return bool(neg_rate >= 0.9 and pos_rate >= 0.8)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--workdir", default=None, help="keep intermediate files here")
    ap.add_argument("--clips", type=int, default=None, help="override the synthetic clip count")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    config = load_config(args.config)
    for source in config["sources"]:
        if source["kind"] == "synthetic" and args.clips:
            source["clips"] = args.clips
    with tempfile.TemporaryDirectory() as tmp:
        df = run(config, Path(args.workdir or tmp))
    if args.workdir:
        df.to_csv(Path(args.workdir) / "windows.csv", index=False)
    ok = report(df)
    print("\nPASS" if ok else "\nBELOW TARGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
