"""The report's dataset figures and its motion-magnitude table."""

import sys
from pathlib import Path

# The repository's motionedit/ package, whichever environment (venv, conda) runs the job.
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from motionedit.evaluate.report import dataset_figures
from motionedit.runlog import job_logger

log = job_logger(snakemake.log)
dataset_figures(
    snakemake.input.stats,
    snakemake.input.train,
    snakemake.input.bench,
    dict(snakemake.output.items()),
    log,
)
