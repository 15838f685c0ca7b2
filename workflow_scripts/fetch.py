"""Fetch one source shard and write its probed manifest."""

import sys
from pathlib import Path

# The repository's motionedit/ package, whichever environment (venv, conda) runs the job.
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from motionedit.manifest import build_manifest
from motionedit.runlog import job_logger
from motionedit.tables import write_table

log = job_logger(snakemake.log)
manifest = build_manifest(
    snakemake.params.source,
    snakemake.wildcards.shard,
    snakemake.output.videos,
    snakemake.params.video,
    log,
)
write_table(manifest, snakemake.output.manifest)
