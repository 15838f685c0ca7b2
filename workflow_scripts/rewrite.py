"""Rewrite one shard's kept summaries into imperative instructions."""

import sys
from pathlib import Path

# The repository's motionedit/ package, whichever environment (venv, conda) runs the job.
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from motionedit.judge import make_rewriter
from motionedit.judge.stage import rewrite_shard
from motionedit.runlog import job_logger
from motionedit.tables import read_table, write_table

log = job_logger(snakemake.log)
table = rewrite_shard(
    read_table(snakemake.input.judge),
    make_rewriter(snakemake.params.config, snakemake.config["mllm"], log),
    snakemake.output.raw,
    log,
    snakemake.params.pricing,
)
write_table(table, snakemake.output.table)
