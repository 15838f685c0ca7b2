"""Split the instructed pairs by source video and write the train and bench sets."""

from pathlib import Path

from motionedit.dataset import build_dataset
from motionedit.runlog import job_logger

log = job_logger(snakemake.log)
stats = build_dataset(
    list(snakemake.input.manifests),
    list(snakemake.input.frames),
    list(snakemake.input.prefilter),
    list(snakemake.input.judge),
    list(snakemake.input.instructions),
    Path(snakemake.output.stats).parent,
    snakemake.params.dataset,
    snakemake.params.seed,
)
log.info("dataset: %s", stats["dataset"])
log.info("categories: %s", stats["categories"]["all"])
