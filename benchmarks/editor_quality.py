"""Does the tiny editor trained here beat doing nothing? And how long does its SFT take?

Runs the workflow (the real snakemake CLI) on a config (the default config.yaml unless
--config is given), optionally with a larger synthetic corpus (--clips), so that the
benchmark split holds enough pairs for an interval to mean something. Then compares every
editor model's benchmark outputs with the do-nothing baseline (output = input frame) on
pixel distance to the target frame: PSNR and mean absolute error, per sample, paired, with
a bootstrap 95% interval of the mean difference. Also prints each SFT run's wall time
(the rule's benchmark table) against the 10-minute budget on two cores.

    .venv/bin/python benchmarks/editor_quality.py [--config FILE] [--clips 160] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import copy
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from motionedit.config import validate_config
from motionedit.metrics.pixels import bootstrap_ci, pixel_distances
from motionedit.models.base import image_from_cell

ROOT = Path(__file__).resolve().parent.parent
BASELINE_KIND = "identity"


def run_workflow(config: dict, workdir: Path, cores: int) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [
        str(Path(sys.executable).with_name("snakemake")),
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        "--cores",
        str(cores),
        "-q",
    ]
    subprocess.run(cmd, check=True)


def distances(workdir: Path, model: str, targets: dict[str, object]) -> pd.DataFrame:
    out = pd.read_parquet(workdir / "results" / "eval" / model / "outputs.parquet")
    rows = []
    for r in out.itertuples():
        if r.error:
            continue
        d = pixel_distances(workdir / "results" / "eval" / model / r.path, targets[r.id])
        rows.append({"id": r.id, **d})
    return pd.DataFrame(rows).set_index("id")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "config.yaml"))
    ap.add_argument("--clips", type=int, default=None, help="synthetic clips (default: config's)")
    ap.add_argument("--workdir", default=None, help="keep the run here (default: a temp folder)")
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()

    config = yaml.safe_load(Path(args.config).read_text())
    if args.clips:
        for source in config["sources"]:
            if source["kind"] == "synthetic":
                source["clips"] = args.clips
    full = validate_config(copy.deepcopy(config))
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="editor-quality-"))
    run_workflow(config, workdir, args.cores)

    bench_table = workdir / "results" / "dataset" / "bench" / "data.parquet"
    bench = pd.read_parquet(bench_table)
    targets = {
        r.id: image_from_cell(r.target_image, bench_table.parent) for r in bench.itertuples()
    }
    baselines = [m for m, spec in full["models"].items() if spec["kind"] == BASELINE_KIND]
    editors = [m for m, spec in full["models"].items() if spec["kind"] == "editor"]
    if not baselines or not editors:
        sys.exit("the config needs an `identity` model and at least one `editor` model")
    base = distances(workdir, baselines[0], targets)
    train_pairs = len(pd.read_parquet(workdir / "results" / "dataset" / "train" / "data.parquet"))
    print(f"workdir: {workdir}")
    print(f"train pairs: {train_pairs}, benchmark pairs: {len(bench)}\n")
    print(f"| model | PSNR dB | L1 | PSNR gain vs {baselines[0]} [95% CI] | L1 ratio |")
    print("|---|---|---|---|---|")
    print(f"| {baselines[0]} | {base['psnr'].mean():.2f} | {base['l1'].mean():.4f} | | 1 |")
    for model in editors:
        d = distances(workdir, model, targets).reindex(base.index)
        gain, low, high = bootstrap_ci((d["psnr"] - base["psnr"]).to_numpy())
        l1_ratio = d["l1"].mean() / base["l1"].mean()
        print(
            f"| {model} | {d['psnr'].mean():.2f} | {d['l1'].mean():.4f} | "
            f"{gain:+.2f} [{low:+.2f}, {high:+.2f}] | {l1_ratio:.3f} |"
        )
        better = (d["l1"] < base["l1"]).mean()
        print(f"|   (share of samples with lower L1 than the baseline: {better:.0%}) | | | | |")
    print()
    for run in full["sft"]:
        tsv = workdir / "results" / "benchmarks" / "sft" / f"{run}.tsv"
        if tsv.is_file():
            seconds = float(pd.read_csv(tsv, sep="\t")["s"].iloc[0])
            print(f"sft {run}: {seconds:.0f} s wall ({seconds / 600:.2f} of the 10-minute budget)")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
