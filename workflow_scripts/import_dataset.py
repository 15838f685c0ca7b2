"""Import a train or benchmark split from the Hub or a local folder (datasets.<role>)."""

import json
import sys
from pathlib import Path

# The repository's motionedit/ package, whichever environment (venv, conda) runs the job.
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from motionedit.dataset_import import import_dataset
from motionedit.runlog import job_logger, progress

log = job_logger(snakemake.log)
role = snakemake.wildcards.role
summary = import_dataset(
    snakemake.params.spec,
    role,
    Path(snakemake.output.table).parent,
    progress=lambda items, total: progress(items, f"import {role}", total),
    logger=log,
)
Path(snakemake.output.summary).write_text(json.dumps(summary, indent=2) + "\n")
log.info("import %s: %s", role, summary)
