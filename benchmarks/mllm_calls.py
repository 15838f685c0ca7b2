"""What the MLLM call layer achieves against a Gemini-format server with a fixed latency and quota.

Prints, measured side by side in one run:
1. throughput as a fraction of the quota (target >= 0.9), one call at a time and with the
   configured concurrency, and the 429s the server had to send;
2. calls made when the same requests are asked again (target 0);
3. calls the flow prefilter saves the judge on the default synthetic corpus (the workflow
   runs with the gemini judge and rewriter against the same local server).

    .venv/bin/python benchmarks/mllm_calls.py [--latency 0.2] [--quota 600] [--requests 200]
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from gemini_stub import GeminiStub, motion_answers  # noqa: E402

from motionedit.config import validate_config  # noqa: E402
from motionedit.judge.prompts import JudgeAnswer  # noqa: E402
from motionedit.mllm import CallSettings, GeminiCaller, Image, Request  # noqa: E402

LOG = logging.getLogger("bench")


def transport(url: str, cache: Path, quota: float, concurrency: int) -> dict:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["mllm"] = {"base_url": url, "cache_dir": str(cache), "concurrency": concurrency,
                      "requests_per_minute": quota, "timeout_s": 30}  # fmt: skip
    return validate_config(config)["mllm"]


def judge_requests(n: int, seed: int) -> list[Request]:
    rng = np.random.default_rng(seed)
    settings = CallSettings(model="gemini-2.5-flash", media_resolution="medium")
    return [
        Request(
            parts=(Image(rng.bytes(20_000)), Image(rng.bytes(20_000)), "Judge this pair."),
            settings=settings,
            prompt_version="bench",
            schema=JudgeAnswer,
            tag=str(i),
        )
        for i in range(n)
    ]


def throughput(latency: float, quota: float, n: int, concurrency: int, tmp: Path) -> None:
    with GeminiStub(answer=motion_answers, latency_s=latency, requests_per_minute=quota) as stub:
        cfg = transport(stub.url, tmp / f"cache-{concurrency}", quota, concurrency)
        reqs = judge_requests(n, seed=concurrency)
        caller = GeminiCaller(cfg, LOG)
        start = time.monotonic()
        replies = caller.run(reqs, "bench")
        took = time.monotonic() - start
        achieved = n / took * 60
        errors = sum(r.error is not None for r in replies)
        print(
            f"  concurrency {concurrency:2d}: {n} requests in {took:5.1f} s = {achieved:5.0f}/min"
            f" = {achieved / quota:.2f} of the quota; 429s {stub.rejected}, errors {errors}"
        )
        again = GeminiCaller(cfg, LOG)
        again.run(reqs, "bench")
        print(f"  concurrency {concurrency:2d}: asked again, calls made: {again.calls_made}")


def prefilter_savings(tmp: Path) -> None:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    wd = tmp / "workflow"
    wd.mkdir()
    with GeminiStub(answer=motion_answers) as stub:
        config |= {
            "judge": {"backend": "gemini"},
            "rewrite": {"backend": "gemini"},
            "mllm": {"base_url": stub.url, "requests_per_minute": None},
        }
        (wd / "config.yaml").write_text(yaml.safe_dump(config))
        env = os.environ | {"GEMINI_API_KEY": "benchmark-key", "HF_HUB_OFFLINE": "1"}
        snakemake = str(Path(sys.executable).with_name("snakemake"))
        subprocess.run(
            [snakemake, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(wd),
             "--configfile", str(wd / "config.yaml"), "--cores", "2", "--until", "dataset"],
            check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        calls = stub.count
    results = wd / "results"
    frames = pd.concat(pd.read_parquet(p) for p in results.glob("frames/*/*.parquet"))
    extracted = frames["pair_id"].notna() & frames["skip"].isna() & frames["error"].isna()
    windows = int(extracted.sum())
    judged = sum(len(pd.read_parquet(p)) for p in results.glob("judge/*/*.parquet"))
    print(f"  synthetic corpus ({config['sources'][0]['clips']} clips): {windows} windows, "
          f"{judged} judged after the prefilter: {windows - judged} judge calls saved "
          f"({(windows - judged) / max(windows, 1):.0%}); all calls made: {calls}")  # fmt: skip


def main() -> None:
    os.environ.setdefault("GEMINI_API_KEY", "benchmark-key")  # the local server takes any key
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency", type=float, default=0.2, help="server latency, seconds")
    parser.add_argument("--quota", type=float, default=600, help="requests per minute")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--skip-workflow", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"server: {args.latency * 1000:.0f} ms per call, quota {args.quota:.0f}/min")
        throughput(args.latency, args.quota, max(20, args.requests // 4), 1, tmp)
        throughput(args.latency, args.quota, args.requests, 8, tmp)
        if not args.skip_workflow:
            prefilter_savings(tmp)


if __name__ == "__main__":
    main()
