"""The report's benchmark figures: a grid of samples and MAS per motion category."""

import sys
from pathlib import Path

# The repository's motionedit/ package, whichever environment (venv, conda) runs the job.
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from motionedit.evaluate.report import benchmark_figures
from motionedit.runlog import job_logger

log = job_logger(snakemake.log)
benchmark_figures(
    snakemake.input.bench,
    dict(zip(snakemake.params.models, snakemake.input.scores, strict=True)),
    snakemake.input.per_category,
    snakemake.params.samples,
    dict(snakemake.output.items()),
)
