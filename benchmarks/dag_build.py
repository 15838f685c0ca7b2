"""Dry-run DAG build time for a url_list source of 100,000 videos (target: under 10 s).

Writes a URL list and a config into a temporary folder and times `snakemake --dry-run`
(the real CLI, nothing is downloaded). Shards keep the DAG small: the job count depends on
`--shards`, not on the number of videos.

    .venv/bin/python benchmarks/dag_build.py [--videos 100000] [--shards 200]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=100_000)
    ap.add_argument("--shards", type=int, default=200)
    args = ap.parse_args()
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "urls.txt").write_text(
            "".join(f"https://videos.example.org/clip/{i:07d}.mp4\n" for i in range(args.videos))
        )
        cfg = {
            "sources": [
                {"name": "web", "kind": "url_list", "list": "urls.txt", "shards": args.shards}
            ]
        }
        (tmp / "config.yaml").write_text(yaml.safe_dump(cfg))
        cmd = [
            snakemake,
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--directory",
            str(tmp),
            "--configfile",
            str(tmp / "config.yaml"),
            "--dry-run",
            "--quiet",
            "rules",
        ]
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        elapsed = time.perf_counter() - t
        if proc.returncode != 0:
            print(proc.stdout, proc.stderr)
            return 1
        print(proc.stdout.strip())
        print(
            f"{args.videos} videos in {args.shards} shards: dry-run DAG build {elapsed:.2f} s "
            f"(target < 10 s)"
        )
        return 0 if elapsed < 10 else 1


if __name__ == "__main__":
    sys.exit(main())
