"""The report's MotionNFT figures: held-out MAS and reward against training step."""

import sys
from pathlib import Path

# The repository's motionedit/ package, whichever environment (venv, conda) runs the job.
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from motionedit.evaluate.report import training_figures
from motionedit.runlog import job_logger

log = job_logger(snakemake.log)
training_figures(
    dict(zip(snakemake.params.runs, snakemake.input, strict=True)),
    dict(snakemake.output.items()),
)
