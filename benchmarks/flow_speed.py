"""Flow backends side by side: pairs per second, and what the reward costs on top of a flow.

Times the `dis` and `unimatch` backends on the same textured image pairs in one process:
on the CPU at 256x256 and 512x512 (batch 1), and on a GPU at 512x512 with batch 8 when one is
present (float32 and bfloat16). Then times `motion_reward` + `mas` on the flows of one call
and prints that as a fraction of the flow call (the reward should be a rounding error next to
the flow). UniMatch's speed does not depend on its weights, so without `--checkpoint` it runs
on the random test weights of the official layout.

    .venv/bin/python benchmarks/flow_speed.py [--checkpoint gmflow-...pth] [--repeat 3]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from motionedit.flow.dis import DISFlow
from motionedit.flow.unimatch import UniMatchFlow
from motionedit.metrics import mas, motion_reward

FIXTURE = Path(__file__).resolve().parent.parent / "tests/fixtures/unimatch"


def pairs(n: int, side: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random textures and the same with a block moved: a flow worth estimating."""
    rng = np.random.default_rng(seed)
    a = np.stack(
        [
            cv2.resize(
                (rng.random((side // 8, side // 8, 3)) * 255).astype(np.uint8),
                (side, side),
                interpolation=cv2.INTER_CUBIC,
            )
            for _ in range(n)
        ]
    )
    b = a.copy()
    s = slice(side // 4, side // 2)
    b[:, s, s] = np.roll(a, side // 32, axis=2)[:, s, s]
    return a, b


def timed(fn, repeat: int) -> float:
    """Best of ``repeat`` wall times, after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=str(FIXTURE / "unimatch_random_weights.pth"))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print(f"{'backend':<22} {'device':<6} {'size':>7} {'batch':>5} {'pairs/s':>9} {'ms/pair':>9}")
    dis = DISFlow()
    cpu = UniMatchFlow(args.checkpoint, device="cpu")
    rows = []
    for side in (256, 512):
        a, b = pairs(1, side)
        for name, flow in (("dis", dis), ("unimatch", cpu)):
            t = timed(lambda f=flow, a=a, b=b: f.estimate(a, b), args.repeat)
            rows.append((name, "cpu", side, 1, t))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    if torch.cuda.is_available():
        a, b = pairs(8, 512)
        ta = torch.from_numpy(a).permute(0, 3, 1, 2).float().cuda()
        tb = torch.from_numpy(b).permute(0, 3, 1, 2).float().cuda()
        for dtype in ("float32", "bfloat16"):
            gpu = UniMatchFlow(args.checkpoint, device="cuda", dtype=dtype, batch_size=8)
            t = timed(lambda g=gpu: g.estimate_tensors(ta, tb), args.repeat)
            rows.append((f"unimatch {dtype}", "cuda", 512, 8, t))
        gpu_peak = torch.cuda.max_memory_allocated() / 2**30
    for name, device, side, batch, t in rows:
        size, rate, ms = f"{side}x{side}", batch / t, 1000 * t / batch
        print(f"{name:<22} {device:<6} {size:>7} {batch:>5} {rate:>9.2f} {ms:>9.1f}")
    print(f"peak process memory after the CPU runs: {rss:.2f} GiB")
    if torch.cuda.is_available():
        print(f"peak GPU memory: {gpu_peak:.2f} GiB")
    by_key = {(r[0], r[2]): r[4] for r in rows}
    for side in (256, 512):
        ratio = by_key[("unimatch", side)] / by_key[("dis", side)]
        print(f"unimatch / dis time at {side}x{side} on the CPU: {ratio:.0f}x")

    # The reward and MAS of one image pair, against the flow call that produced their input.
    a, b = pairs(1, 512)
    flows = torch.from_numpy(dis.estimate(np.concatenate([a, a]), np.concatenate([b, a])))
    score = timed(lambda: (motion_reward(flows[:1], flows[1:]), mas(flows[:1], flows[1:])), 5)
    for name, side in (("dis", 512), ("unimatch", 512)):
        flow_time = by_key[(name, side)]
        print(
            f"reward + MAS at 512x512: {1000 * score:.2f} ms = "
            f"{score / flow_time:.3f} of one {name} flow of one pair"
        )


if __name__ == "__main__":
    main()
