"""The miner on clips made of real photographs and terrain, whose truth is known.

Renders the 14 clips of tests/realistic_clips.py (6 that a good miner keeps, 8 that it
rejects: camera pan, zoom and shake, a still scene, a cut, a subject leaving, a degraded
clip, flickering light) into a folder, and mines them through the library as the workflow
does, with a ``local`` source over that folder and the rest of the configuration from
--config: fetch -> frames -> prefilter -> judge -> rewrite. The synthetic corpus's
flat-coloured shapes say little about footage; these clips are closer to it and small
enough to read one by one.

Prints, per clip, what was expected, the prefilter's and the judge's reasons, whether the
pair was kept, the judged category against the expected one, the instruction and whether
its direction words match the truth; then the measurements behind the decisions, and
totals: negatives rejected (and for the expected reason), positives kept, category and
direction right among the kept positives. The exit status is 0 unless something raises.

    .venv/bin/python benchmarks/realistic_clips.py [--config FILE] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import realistic_clips as rc  # noqa: E402
from realistic_mining import local_config, merge, mine  # noqa: E402

from motionedit.config import load_config  # noqa: E402


def _cell(value: Any, width: int) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        text = "-"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, float):
        text = f"{value:.3f}"
    else:
        text = str(value)
    return text[:width].ljust(width)


def print_table(rows: list[dict[str, Any]], widths: dict[str, int]) -> None:
    print("  ".join(_cell(k, w) for k, w in widths.items()).rstrip())
    for row in rows:
        print("  ".join(_cell(row.get(k), w) for k, w in widths.items()).rstrip())


#: Measurements behind the decisions, whichever of them the stages report.
PREFILTER_NUMBERS = (
    "motion_peak", "motion_moving", "moving_frac", "tracked_frac", "exit_frac",
    "lost_frac", "frame_correlation", "link_consistency", "camera_motion", "camera_fit",
)  # fmt: skip
JUDGE_NUMBERS = (
    "sharpness", "noise", "warp_error", "histogram_correlation", "exit_frac",
    "unexplained_frac", "subject_consistency", "lost_frac", "motion_peak",
)  # fmt: skip


def report(df: pd.DataFrame) -> None:
    rows = []
    for r in df.itertuples():
        got = r.judged_category if isinstance(r.judged_category, str) else "-"
        rows.append(
            {
                "clip": r.name,
                "expected": "keep" if r.keep else f"drop:{r.reason}",
                "prefilter": r.pre_reason,
                "judge": r.judge_reason,
                "kept": r.kept,
                "category": f"{got} / {r.category}" if r.keep else got,
                "instruction": r.instruction,
                "dir": r.direction_ok,
            }
        )
    widths = {"clip": 9, "expected": 19, "prefilter": 26, "judge": 30, "kept": 4,
              "category": 30, "instruction": 62, "dir": 3}  # fmt: skip
    print_table(rows, widths)

    print("\nprefilter numbers (motion as a fraction of the diagonal)")
    have = [c for c in PREFILTER_NUMBERS if c in df.columns]
    print_table([{"clip": r["name"]} | {c: r[c] for c in have} for _, r in df.iterrows()],
                {"clip": 9} | {c: max(7, min(len(c), 12)) for c in have})  # fmt: skip

    print("\njudge numbers (pairs the prefilter passed)")
    judged = []
    for _, r in df[df["pre_keep"]].iterrows():
        details = json.loads(r["details"]) if isinstance(r["details"], str) else {}
        judged.append({"clip": r["name"]} | {c: details.get(c) for c in JUDGE_NUMBERS})
    print_table(judged, {"clip": 9} | {c: max(7, min(len(c), 12)) for c in JUDGE_NUMBERS})

    neg, pos = df[~df["keep"]], df[df["keep"]]
    kept = pos[pos["kept"]]
    print(
        f"\nnegatives rejected {int((~neg['kept']).sum())}/{len(neg)} "
        f"(for the expected reason {int(neg['right_reason'].sum())}/{len(neg)}); "
        f"positives kept {int(pos['kept'].sum())}/{len(pos)}; "
        f"category right {int(kept['category_ok'].sum())}/{len(kept)} kept; "
        f"direction right {int((kept['direction_ok'] == True).sum())}/{len(kept)} kept"  # noqa: E712
    )
    wrong = [f"{r.name} ({r.reason_got})" for r in neg.itertuples() if r.kept] + [
        f"{r.name} ({r.reason_got})" for r in pos.itertuples() if not r.kept
    ]
    if wrong:
        print("wrong decisions:", ", ".join(wrong))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(ROOT / "config.yaml"))
    ap.add_argument("--workdir", default=None, help="keep the clips and every table here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    log = logging.getLogger("bench")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        truth = rc.write_folder(workdir / "clips")
        config = local_config(load_config(args.config), workdir / "clips")
        df = merge(truth, mine(config, workdir, log))
        if args.workdir:
            df.drop(columns=["details"]).to_csv(workdir / "clips.csv", index=False)
    report(df)
    return 0


if __name__ == "__main__":
    sys.exit(main())
