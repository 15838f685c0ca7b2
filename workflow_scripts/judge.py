"""Judge one shard's prefiltered pairs."""

import sys
from pathlib import Path

import cv2

# The repository's motionedit/ package, whichever environment (venv, conda) runs the job.
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from motionedit.judge import make_judge
from motionedit.judge.stage import judge_shard
from motionedit.runlog import job_logger
from motionedit.tables import read_table, write_table

# OpenCV's flow uses the cores the job was given, not every core of the node.
cv2.setNumThreads(snakemake.threads)
log = job_logger(snakemake.log)
# The call layer's settings (quota, retries, cache) are read here rather than passed as
# params: they change no answer, so changing them must not re-run the stage.
table = judge_shard(
    read_table(snakemake.input.prefilter),
    read_table(snakemake.input.frames),
    make_judge(snakemake.params.config, snakemake.config["mllm"], log),
    snakemake.output.raw,
    log,
    snakemake.params.pricing,
)
write_table(table, snakemake.output.table)
