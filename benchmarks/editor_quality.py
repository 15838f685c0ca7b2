"""Does the tiny editor trained here beat doing nothing? And how long does its SFT take?

Runs the workflow (the real snakemake CLI) on a config (the default config.yaml unless
--config is given), optionally with a larger synthetic corpus (--clips), so that the
benchmark split holds enough pairs for an interval to mean something. Then compares every
editor model's benchmark outputs with the do-nothing baseline (output = input frame) on
pixel distance to the target frame: PSNR and mean absolute error, per sample, paired, with
a bootstrap 95% interval of the mean difference. Also prints each SFT run's wall time
(the rule's benchmark table) against the 10-minute budget on two cores.

    .venv/bin/python benchmarks/editor_quality.py [--config FILE [FILE ...]] [--clips 160]
        [--workdir DIR]
"""

from __future__ import annotations

import argparse
import copy
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from motionedit.config import layered, validate_config
from motionedit.images import image_from_cell, to_pil
from motionedit.metrics.pixels import bootstrap_ci, pixel_distances

ROOT = Path(__file__).resolve().parent.parent


def run_workflow(config: dict, workdir: Path, cores: int) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "editor_quality.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [
        str(Path(sys.executable).with_name("snakemake")),
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "editor_quality.yaml"),
        "--cores",
        str(cores),
        "-q",
    ]
    subprocess.run(cmd, check=True)


def paired_distances(workdir: Path, model: str, bench: pd.DataFrame, root: Path) -> pd.DataFrame:
    """Per sample: the model's edit and the do-nothing baseline, both at the edit's size.

    Resizing smooths, so an editor working at 32x32 must be compared with the input frame
    resized to 32x32, not with the full-size frame.
    """
    out = pd.read_parquet(workdir / "results" / "eval" / model / "outputs.parquet").set_index("id")
    rows = []
    for r in bench.itertuples():
        if r.id not in out.index or out.loc[r.id, "error"]:
            continue
        edited = to_pil(workdir / "results" / "eval" / model / out.loc[r.id, "path"])
        target = image_from_cell(r.target_image, root)
        unchanged = image_from_cell(r.input_image, root).resize(
            edited.size, Image.Resampling.BICUBIC
        )
        ours = pixel_distances(edited, target)
        base = pixel_distances(unchanged, target)
        rows.append(
            {
                "id": r.id,
                "psnr": ours["psnr"],
                "l1": ours["l1"],
                "base_psnr": base["psnr"],
                "base_l1": base["l1"],
                "size": f"{edited.size[0]}x{edited.size[1]}",
            }
        )
    return pd.DataFrame(rows).set_index("id")


def job_seconds(workdir: Path, rule: str, name: str) -> float | None:
    """Wall time of one job from its rule's benchmark table, None if it did not run."""
    tsv = workdir / "results" / "benchmarks" / rule / f"{name}.tsv"
    return float(pd.read_csv(tsv, sep="\t")["s"].iloc[0]) if tsv.is_file() else None


def workflow_arguments(
    doc: str, more: Callable[[argparse.ArgumentParser], None] | None = None
) -> tuple[argparse.Namespace, dict, dict]:
    """The options of a benchmark that runs the workflow (``more`` adds its own): (args, the
    config as written with --clips applied, the same validated with its defaults)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--config",
        nargs="+",
        default=[str(ROOT / "config.yaml")],
        help="config file(s); a later one's keys go over an earlier one's, as with "
        "snakemake --configfile A B",
    )
    ap.add_argument("--clips", type=int, default=None, help="synthetic clips (default: config's)")
    ap.add_argument("--workdir", default=None, help="keep the run here (default: a temp folder)")
    ap.add_argument("--cores", type=int, default=2)
    if more is not None:
        more(ap)
    args = ap.parse_args()
    config: dict = {}
    for path in args.config:
        config = layered(config, yaml.safe_load(Path(path).read_text()) or {})
    if args.clips:
        for source in config["sources"]:
            if source["kind"] == "synthetic":
                source["clips"] = args.clips
    return args, config, validate_config(copy.deepcopy(config))


def main() -> None:
    args, config, full = workflow_arguments(__doc__)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="editor-quality-"))
    run_workflow(config, workdir, args.cores)

    bench_table = workdir / "results" / "dataset" / "bench" / "data.parquet"
    bench = pd.read_parquet(bench_table)
    editors = [m for m, spec in full["models"].items() if spec["kind"] == "editor"]
    if not editors:
        sys.exit("the config has no `editor` model to compare with doing nothing")
    train_pairs = len(pd.read_parquet(workdir / "results" / "dataset" / "train" / "data.parquet"))
    print(f"workdir: {workdir}")
    print(f"train pairs: {train_pairs}, benchmark pairs: {len(bench)}\n")
    print("Pixel distance to the target; do nothing = the input frame, at the edit's size.\n")
    print(
        "| model | edit size | PSNR dB (do nothing) | PSNR gain [95% CI] | L1 (do nothing) "
        "| L1 change [95% CI] |"
    )
    print("|---|---|---|---|---|---|")
    for model in editors:
        d = paired_distances(workdir, model, bench, bench_table.parent)
        gain, g_lo, g_hi = bootstrap_ci((d["psnr"] - d["base_psnr"]).to_numpy())
        dl1, l_lo, l_hi = bootstrap_ci((d["l1"] - d["base_l1"]).to_numpy())
        sizes = ", ".join(sorted(set(d["size"])))
        print(
            f"| {model} | {sizes} | {d['psnr'].mean():.2f} ({d['base_psnr'].mean():.2f}) | "
            f"{gain:+.2f} [{g_lo:+.2f}, {g_hi:+.2f}] | {d['l1'].mean():.4f} "
            f"({d['base_l1'].mean():.4f}) | {dl1:+.4f} [{l_lo:+.4f}, {l_hi:+.4f}] |"
        )
    print()
    for run in full["sft"]:
        seconds = job_seconds(workdir, "sft", run)
        if seconds is not None:
            print(f"sft {run}: {seconds:.0f} s wall ({seconds / 600:.2f} of the 10-minute budget)")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
