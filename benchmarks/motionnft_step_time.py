"""Where a MotionNFT step spends its time: sampling, reward, optimisation; CPU and GPU side by side.

Builds a FLUX.1-Kontext-architecture pipeline from configs (tests/tiny_flux.py, widened with
--width/--layers for a heavier transformer), random training pairs at --size, and runs the
trainer for --steps steps on each available device (the CPU, and CUDA when present) with
the motion + appearance rewards. Prints seconds per step, the share of each phase and the
peak memory, per device, and the GPU/CPU step-time ratio. On a GPU it also runs with the
text encoders kept on the CPU (``offload_text_encoders``) and gradient checkpointing, and
prints that run's peak-memory and step-time ratios to the plain one.

    .venv/bin/python benchmarks/motionnft_step_time.py [--steps 4] [--size 64] [--width 128]
"""

from __future__ import annotations

import argparse
import copy
import io
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import tiny_flux  # noqa: E402

from motionedit.config import validate_config  # noqa: E402
from motionedit.models import editor_settings  # noqa: E402
from motionedit.nft.trainer import run_motionnft  # noqa: E402


def pairs_table(folder: Path, n: int, size: int) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        frame = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        moved = np.roll(frame, size // 8, axis=1)
        cells = []
        for image in (frame, moved):
            buf = io.BytesIO()
            Image.fromarray(image).save(buf, format="PNG")
            cells.append({"bytes": buf.getvalue(), "path": None})
        rows.append({"id": f"p{i:03d}", "prompt": tiny_flux.PROMPTS[i % 3],
                     "input_image": cells[0], "target_image": cells[1]})  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(folder / "data.parquet")
    return folder / "data.parquet"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--size", type=int, default=64, help="frame side in pixels")
    ap.add_argument("--groups", type=int, default=4)
    ap.add_argument("--group-size", type=int, default=4)
    ap.add_argument("--sampling-steps", type=int, default=6)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tiny_flux.build().save_pretrained(tmp / "pipe")
        train = pairs_table(tmp / "train", 16, args.size)
        results = {}
        runs = [(d, False) for d in devices] + ([("cuda", True)] if "cuda" in devices else [])
        for device, lean in runs:
            config = validate_config({
                "sources": [{"name": "s", "kind": "synthetic"}],
                "flow": {"backend": "dis", "max_side": 256},
                "editors": {"k": {"kind": "flux-kontext", "source": str(tmp / "pipe"),
                                  "max_area": args.size * args.size, "max_sequence_length": 16,
                                  "device": device}},
                "train": {"run": {"editor": "k", "steps": args.steps, "groups": args.groups,
                                  "group_size": args.group_size, "eval_every": 0,
                                  "sampling_steps": args.sampling_steps,
                                  "resolution": args.size, "checkpoint_every": 10**6,
                                  "lora": {"rank": 8, "alpha": 8},
                                  "group_filter": {"enabled": False},
                                  "rewards": {"motion": 0.5, "appearance": 0.5}}},
            })  # fmt: skip
            run = copy.deepcopy(config["train"]["run"])
            run |= {"offload_text_encoders": lean, "gradient_checkpointing": lean}
            name = f"{device}{' (text encoders on the CPU, checkpointing)' if lean else ''}"
            out = tmp / f"out-{device}-{lean}"
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            run_motionnft("run", run, editor_settings(config, "k"), config, train, train,
                          out, tmp / f"state-{device}-{lean}", logging.getLogger())  # fmt: skip
            m = pd.read_csv(out / "metrics.csv")
            m = m[m["step"] > 1]  # the first step pays for warm-up
            phases = m[["sampling_s", "reward_s", "optimisation_s"]].mean()
            total = phases.sum()
            results[(device, lean)] = (total, m["peak_memory_mb"].max())
            print(
                f"{name}: {total:.3f} s/step; sampling {phases['sampling_s'] / total:.0%}"
                f", reward {phases['reward_s'] / total:.0%}, optimisation "
                f"{phases['optimisation_s'] / total:.0%}; peak memory "
                f"{m['peak_memory_mb'].max():.0f} MB ({args.groups}x{args.group_size} edits of "
                f"{args.size}x{args.size}, {args.sampling_steps} sampling steps)"
            )
        if ("cuda", False) in results:
            (cpu, _), (gpu, peak), (lean, lean_peak) = (
                results[("cpu", False)],
                results[("cuda", False)],
                results[("cuda", True)],
            )
            print(f"GPU/CPU step time: {gpu / cpu:.2f}")
            print(f"text encoders on the CPU + checkpointing / plain, on the GPU: peak memory "
                  f"{lean_peak / peak:.2f}, step time {lean / gpu:.2f}")  # fmt: skip
        else:
            print("no GPU here: run this on a GPU machine for the GPU column")


if __name__ == "__main__":
    main()
