"""benchmarks/gpu_check.py, the one-shot GPU sizing run, works: its --small mode runs every
section on the CPU at toy sizes, and without a GPU the full run says to pass --small."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys

from conftest import ROOT

SCRIPT = ROOT / "benchmarks/gpu_check.py"


def run(*args: str) -> subprocess.CompletedProcess:
    # No GPU visible, whatever the machine: the full-size run must never start from a test.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def seconds(line: str, phase: str) -> float:
    match = re.search(rf"{phase} ([0-9.]+) s", line)
    assert match, f"no {phase} time in {line!r}"
    return float(match.group(1))


def test_small_run_times_every_phase_and_reports_memory():
    proc = run("--small")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("gpu_check: CPU") and "diffusers" in lines[0]
    for key in ("flux", "qwen"):
        steps = [line for line in lines if line.startswith(f"{key} step ")]
        assert len(steps) == 2 and "warm-up" in steps[0] and "timed" in steps[1], steps
        (phases,) = [line for line in lines if line.startswith(f"{key} phases")]
        for phase in ("rollout", "reward", "optimisation", "step"):
            value = seconds(phases, phase)
            assert math.isfinite(value) and value >= 0, phases
        (memory,) = [line for line in lines if line.startswith(f"{key} memory: peak")]
        assert float(memory.split()[3]) > 0, memory
    for dtype in ("float32", "bfloat16"):
        assert any(line.startswith(f"unimatch {dtype}: ") and "pairs/s" in line for line in lines)
    (diff,) = [line for line in lines if line.startswith("unimatch bfloat16 - float32")]
    assert "max |diff|" in diff and "mean |diff|" in diff
    # The summary tables have a number in every cell of both models and both precisions.
    table = [line for line in lines if line.startswith("| ")]
    assert any(line.startswith("| rollout:") for line in table)
    assert not [line for line in table if "not run" in line or "failed" in line], table


def test_full_run_without_a_gpu_says_to_pass_small():
    proc = run()
    assert proc.returncode == 2
    assert "--small" in proc.stderr and "no CUDA GPU" in proc.stderr
    assert proc.stdout == ""
