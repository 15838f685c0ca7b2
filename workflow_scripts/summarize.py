"""Table 1 over all models, per motion category, and the pairwise win rates."""

import sys
from pathlib import Path

# The repository's motionedit/ package, whichever environment (venv, conda) runs the job.
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from motionedit.evaluate.summary import write_summary
from motionedit.runlog import job_logger

log = job_logger(snakemake.log)
write_summary(
    dict(zip(snakemake.params.models, snakemake.input, strict=True)),
    snakemake.params.settings,
    snakemake.params.seed,
    dict(snakemake.output.items()),
    log,
    paper=snakemake.params.paper,
)
