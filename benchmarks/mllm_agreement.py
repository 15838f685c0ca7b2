"""Do two MLLM backends agree? Check an open judge against Gemini on a sample before switching.

Judge mode asks both judges about the same pairs of a mined shard: a seeded sample of the
pairs the prefilter kept (``results/prefilter/<source>/<shard>.parquet`` and its frames
table), judged once with the config layers of --a and once with those of --b (each answer is
cached as the workflow caches it, so rerunning costs nothing). Prints Cohen's kappa and the
confusion table of the keep decisions, and the same for the categories of the pairs both
kept.

    .venv/bin/python benchmarks/mllm_agreement.py --shard synthetic/0000 --sample 100 \
        --a config.yaml --b config.yaml configs/open-mllm.yaml

Scores mode compares two score tables of the same benchmark edits (for example one model's
``results/eval/<model>/scores.parquet`` from a Gemini run and from an open-model run):

    .venv/bin/python benchmarks/mllm_agreement.py --scores RUN_A/scores.parquet RUN_B/scores.parquet

Keys come from the environment, as in the workflow (GEMINI_API_KEY, mllm.openai.api_key_env).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

import pandas as pd
import yaml

from motionedit.config import layered, validate_config
from motionedit.evaluate.agreement import judge_agreement, score_agreement
from motionedit.evaluate.generative import DIMENSIONS
from motionedit.judge import make_judge
from motionedit.judge.stage import judge_shard
from motionedit.mllm import section_pricing


def config_of(layers: list[str]) -> dict:
    config: dict = {}
    for path in layers:
        config = layered(config, yaml.safe_load(Path(path).read_text()) or {})
    return validate_config(config)


def judged(layers: list[str], prefilter: pd.DataFrame, frames: pd.DataFrame, log) -> pd.DataFrame:
    config = config_of(layers)
    judge = make_judge(config, config["mllm"], log)
    with tempfile.TemporaryDirectory() as tmp:
        pricing = section_pricing(config["judge"], config["mllm"])
        return judge_shard(prefilter, frames, judge, Path(tmp) / "raw.jsonl", log, pricing)


def name_of(layers: list[str]) -> str:
    config = config_of(layers)
    backend = config["judge"]["backend"]
    return backend if backend == "offline" else f"{backend}:{config['judge'][backend]['model']}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a", nargs="+", default=["config.yaml"], help="config layers of judge A")
    ap.add_argument("--b", nargs="+", help="config layers of judge B")
    ap.add_argument("--shard", default="synthetic/0000", help="<source>/<shard> under results/")
    ap.add_argument("--results", default="results", help="the workflow's results folder")
    ap.add_argument("--sample", type=int, default=100, help="pairs asked (0: all kept)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scores", nargs=2, metavar="SCORES", help="two scores.parquet to compare")
    args = ap.parse_args()
    log = logging.getLogger("agreement")
    logging.basicConfig(level=logging.WARNING)

    if args.scores:
        first, second = (pd.read_parquet(p) for p in args.scores)
        out = score_agreement(first, second, (*DIMENSIONS, "overall"))
        print(f"{out['items']} edits in both tables")
        for dim in (*DIMENSIONS, "overall"):
            d = out[dim]
            print(f"  {dim:<13} n={d['items']:<4} kappa {d['kappa']:+.3f}  "
                  f"mean |difference| {d['mean_abs_difference']:.3f}  "
                  f"Spearman {d['spearman']:+.3f}")  # fmt: skip
        return 0
    if not args.b:
        ap.error("give the second judge's config layers with --b (or two tables with --scores)")

    # The tables hold paths relative to the workflow's folder, the one above results/.
    args.a, args.b = [[str(Path(p).resolve()) for p in layers] for layers in (args.a, args.b)]
    results = Path(args.results).resolve()
    os.chdir(results.parent)
    prefilter = pd.read_parquet(results / "prefilter" / f"{args.shard}.parquet")
    frames = pd.read_parquet(results / "frames" / f"{args.shard}.parquet")
    kept = prefilter[prefilter["keep"].fillna(False).astype(bool)]
    if args.sample and len(kept) > args.sample:
        kept = kept.sample(args.sample, random_state=args.seed)
    names = (name_of(args.a), name_of(args.b))
    first = judged(args.a, kept, frames, log)
    second = judged(args.b, kept, frames, log)
    out = judge_agreement(first, second, names)
    print(f"A = {names[0]}, B = {names[1]}: {out['pairs']} pairs, "
          f"{out['errors']} with an error from either (left out)")  # fmt: skip
    print(f"keep: agreement {out['keep_agreement']:.1%}, Cohen's kappa {out['keep_kappa']:+.3f}")
    print(out["keep_confusion"].to_string())
    print(f"category of the {out['kept_by_both']} pairs both kept: "
          f"Cohen's kappa {out['category_kappa']:+.3f}")  # fmt: skip
    print(out["category_confusion"].to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
