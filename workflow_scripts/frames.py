"""Cut one shard's videos into windows and save each window's first and last frame."""

import sys
from pathlib import Path

# The repository's motionedit/ package, whichever environment (venv, conda) runs the job.
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from motionedit.frames import extract_shard
from motionedit.runlog import job_logger
from motionedit.tables import read_table, write_table

log = job_logger(snakemake.log)
table = extract_shard(
    read_table(snakemake.input.manifest),
    snakemake.output.frames,
    snakemake.params.frames,
    log,
    strip_side=snakemake.params.strip_side,
)
write_table(table, snakemake.output.table)
