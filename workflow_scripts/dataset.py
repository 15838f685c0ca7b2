"""Split the instructed pairs by source video and write the train and bench sets."""

import sys
from pathlib import Path

# The repository's motionedit/ package, whichever environment (venv, conda) runs the job.
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

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
    snakemake.params.flow_backend,
)
log.info("dataset: %s", stats["dataset"])
log.info("categories: %s", stats["categories"]["all"])
dup = stats["duplicates"]
log.info(
    "copies of one video split together: %d groups of %d videos (%s)",
    dup["groups"],
    dup["videos_in_groups"],
    ", ".join(f"{k} {v}" for k, v in dup["duplicate_videos"].items()),
)
if "motion_magnitude" in stats:
    log.info("mean input->target motion: %s", stats["motion_magnitude"]["mean"])
