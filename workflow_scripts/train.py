"""Post-train one editor with MotionNFT: one process, one per GPU through accelerate, or
one accelerate launch per machine of a Slurm allocation (train.<run>.nodes)."""

import sys
from pathlib import Path

# The repository's motionedit/ package, whichever environment (venv, conda) runs the job.
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

import torch

from motionedit.nft.launch import launch
from motionedit.runlog import job_logger

log = job_logger(snakemake.log)
torch.set_num_threads(snakemake.threads)
run = snakemake.params.run
settings = {
    "name": snakemake.wildcards.nft,
    "run": run,
    "editor": snakemake.params.editor,
    # The call layer's settings (key, quota, cache) change no answer: read, not a param.
    "config": snakemake.params.config | {"mllm": snakemake.config["mllm"]},
    "train_table": snakemake.input.train,
    "bench_table": snakemake.input.bench,
    "out_dir": snakemake.output[0],
    "state_dir": snakemake.params.state_dir,
}
processes = max(1, run["gpus"])
if processes > 1 or run["nodes"] > 1:
    settings["log"] = snakemake.log[0]
# Machines without GPUs run one CPU process each.
cpu = run["gpus"] == 0
summary = launch(settings, processes, log, cpu=cpu, machines=run["nodes"])
log.info("motionnft: %s", summary)
