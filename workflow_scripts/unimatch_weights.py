"""Download the UniMatch checkpoint that `flow.unimatch.checkpoint: null` asks for."""

import sys
from pathlib import Path

# The repository's motionedit/ package, whichever environment (venv, conda) runs the job.
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from motionedit.flow import download_unimatch_checkpoint
from motionedit.runlog import job_logger

log = job_logger(snakemake.log)
download_unimatch_checkpoint(snakemake.output[0], log)
