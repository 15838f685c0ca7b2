"""Score one model's benchmark edits: MAS, and the MLLM generative scores when configured."""

import sys
from pathlib import Path

# The repository's motionedit/ package, whichever environment (venv, conda) runs the job.
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

import torch

from motionedit.evaluate.scores import score_model
from motionedit.flow import make_flow
from motionedit.runlog import job_logger

log = job_logger(snakemake.log)
torch.set_num_threads(snakemake.threads)
generative = snakemake.params.generative
scorer = None
if generative["backend"] != "none":
    from motionedit.evaluate.generative import GenerativeScorer

    # The call layer's settings (quota, retries, cache) are read here, not passed as
    # params: they change no answer, so changing them must not re-score.
    scorer = GenerativeScorer(generative, snakemake.config["mllm"], log)
score_model(
    snakemake.input.bench,
    snakemake.input.outputs,
    make_flow(snakemake.params.flow),
    snakemake.params.metrics,
    snakemake.output.scores,
    snakemake.output.raw,
    log,
    scorer=scorer,
    pricing=snakemake.params.pricing,
)
