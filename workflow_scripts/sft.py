"""Fine-tune (or, for the tiny editor, train from scratch) one `sft` run."""

import sys
from pathlib import Path

# The repository's motionedit/ package, whichever environment (venv, conda) runs the job.
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

import torch

from motionedit.runlog import job_logger
from motionedit.sft import run_sft

log = job_logger(snakemake.log)
torch.set_num_threads(snakemake.threads)
summary = run_sft(
    snakemake.wildcards.run,
    snakemake.params.run,
    snakemake.params.editor,
    snakemake.input.train,
    snakemake.output[0],
    snakemake.params.checkpoints,
    log,
)
log.info("sft: %s", summary)
