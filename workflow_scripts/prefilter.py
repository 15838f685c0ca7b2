"""Flow statistics and keep/drop decisions for one shard's candidate pairs."""

import sys
from pathlib import Path

import cv2

# The repository's motionedit/ package, whichever environment (venv, conda) runs the job.
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from motionedit.prefilter import prefilter_shard
from motionedit.runlog import job_logger
from motionedit.tables import read_table, write_table

# OpenCV's flow uses the cores the job was given, not every core of the node.
cv2.setNumThreads(snakemake.threads)
log = job_logger(snakemake.log)
table = prefilter_shard(
    read_table(snakemake.input.frames),
    snakemake.params.prefilter,
    snakemake.params.flow,
    log,
    motion_dir=snakemake.output.motion,
)
write_table(table, snakemake.output.table)
