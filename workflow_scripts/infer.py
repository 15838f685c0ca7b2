"""Run one configured model over the benchmark (resumable; see motionedit/inference.py)."""

import sys
from pathlib import Path

# The repository's motionedit/ package, whichever environment (venv, conda) runs the job.
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

import torch

from motionedit.inference import run_inference
from motionedit.runlog import job_logger

log = job_logger(snakemake.log)
torch.set_num_threads(snakemake.threads)
run_inference(
    snakemake.wildcards.model,
    snakemake.params.config,
    snakemake.input.bench,
    snakemake.output[0],
    log,
)
