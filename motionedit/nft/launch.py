"""Running a MotionNFT job in one process, or in several through ``accelerate launch``.

A Snakemake job is one Python process. With ``train.<run>.gpus`` above 1 it writes its
settings to a JSON file and starts ``accelerate launch --multi_gpu --num_processes N -m
motionedit.nft <file>``, one process per GPU; otherwise it trains in-process. The processes
share each step: ``train.<run>.groups`` counts the prompt groups of a step over all of them,
each makes and trains on ``groups / N`` of them, rewards are gathered before they are
normalised and LoRA gradients are summed. Multi-node runs use the same entry point under
``srun`` with accelerate's machine-rank options (README, "MotionNFT").
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from motionedit.models import ModelError
from motionedit.nft.trainer import groups_error, run_motionnft


def launch(
    settings: dict[str, Any], processes: int, logger: logging.Logger, cpu: bool = False
) -> dict[str, Any]:
    """Train with ``settings`` (the keyword arguments of ``run_motionnft`` but the logger)."""
    if processes <= 1:
        return run_motionnft(**settings, logger=logger)
    groups = settings["run"]["groups"]
    if groups % processes:  # refused here, before any process starts and loads a model
        raise ModelError(groups_error(settings["name"], groups, processes))
    state_dir = Path(settings["state_dir"])
    state_dir.mkdir(parents=True, exist_ok=True)
    spec = state_dir / "launch.json"
    spec.write_text(json.dumps(settings, indent=1, default=str))
    if cpu:
        # accelerate's CPU multi-process launch goes through MPI; torch's own launcher (what
        # `accelerate launch --multi_gpu` runs underneath) starts the gloo processes directly.
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   "--nproc_per_node", str(processes)]  # fmt: skip
    else:
        accelerate = shutil.which("accelerate") or str(Path(sys.executable).with_name("accelerate"))
        command = [accelerate, "launch", "--multi_gpu", "--num_processes", str(processes),
                   "--num_machines", "1", "--mixed_precision", "no",
                   "--dynamo_backend", "no"]  # fmt: skip
    command += ["-m", "motionedit.nft", str(spec)]
    logger.info("launching %d processes: %s", processes, " ".join(command))
    subprocess.run(command, check=True)
    summary_file = Path(settings["out_dir"]) / "summary.json"
    return json.loads(summary_file.read_text()) if summary_file.is_file() else {}
