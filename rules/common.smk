# Config validation (defaults filled), the static shard lists and wildcard constraints.
import functools
import re
import sys
from pathlib import Path

sys.path.insert(0, workflow.basedir)  # motionedit/ without installing it

# Only modules free of torch, diffusers, transformers, OpenCV and pydantic are imported
# here: the DAG is built where the model stack may be missing (docs/architecture.md).
from motionedit.config import evaluation_flow, validate_config
from motionedit.dataset_import import (
    dataset_table,
    imported_roles,
    local_inputs,
    mining_needed,
)
from motionedit.flow import UNIMATCH_CHECKPOINT_NAME
from motionedit.mllm import section_pricing
from motionedit.models import editor_settings
from motionedit.sources import shard_fingerprints, shard_names

validate_config(config)

# flow.unimatch.checkpoint left null: the `unimatch_weights` job downloads it here, and
# every job that runs UniMatch takes it as input.
UNIMATCH_WEIGHTS = f"results/weights/{UNIMATCH_CHECKPOINT_NAME}"
EVAL_FLOW = evaluation_flow(config)
if "unimatch" in (config["flow"]["backend"], EVAL_FLOW["backend"]):
    config["flow"]["unimatch"]["checkpoint"] = (
        config["flow"]["unimatch"]["checkpoint"] or UNIMATCH_WEIGHTS
    )

SOURCES = {s["name"]: s for s in config["sources"]}
SHARDS = {name: shard_names(s) for name, s in SOURCES.items()}


def _one_of(names):
    """A wildcard pattern matching exactly the configured names (none: matches nothing)."""
    return "|".join(re.escape(n) for n in sorted(names)) or "(?!)"


wildcard_constraints:
    src="[A-Za-z0-9][A-Za-z0-9_.-]*",
    shard=r"\d\d\d\d+",
    run=_one_of(config["sft"]),
    nft=_one_of(config["train"]),
    model=_one_of(config["models"]),
    role=_one_of(imported_roles(config)),


@functools.cache
def fingerprints(src):
    """Per shard, a digest of the files or URLs it would fetch (listed once per run)."""
    return shard_fingerprints(SOURCES[src])


def per_shard(pattern):
    """Every (source, shard) instance of an output pattern."""
    return [pattern.format(src=src, shard=s) for src in SHARDS for s in SHARDS[src]]


TRAIN_TABLE = dataset_table(config, "train")
BENCH_TABLE = dataset_table(config, "bench")


def local_dataset_files(wildcards):
    """A local dataset's table files, so that rewriting one imports it again."""
    return local_inputs(config["datasets"][wildcards.role])


def _made_here(path):
    """A path the workflow makes (an `sft` or `train` run's folder, or a folder inside one,
    such as a MotionNFT run's checkpoints/step-<k>/) needs the run that makes it; a hub id
    does not."""
    if isinstance(path, str) and path.startswith(("results/models/", "results/train/")):
        return [str(Path(*Path(path).parts[:3]))]
    return []


def sft_inputs(run):
    """What an SFT run starts from: its editor's weights, when another run made them."""
    spec = config["sft"][run]
    if spec["from_scratch"]:
        return []
    return _made_here(config["editors"][spec["editor"]]["source"])


def model_inputs(model):
    spec = config["models"][model]
    if spec["kind"] != "editor":
        return []
    return _made_here(config["editors"][spec["editor"]]["source"]) + _made_here(
        spec["lora"]
    )


def training_editor(section, run):
    """The editor of an `sft` or `train` run. SFT leaves out the user's inference settings,
    which it does not use, so changing the number of inference steps does not retrain an
    editor. MotionNFT keeps them: its held-out curve edits as the benchmark does.
    """
    name = config[section][run]["editor"]
    editor = dict(config["editors"][name])
    if section == "sft":
        editor.pop("inference", None)
    return editor_settings({"editors": {name: editor}}, name)


def train_inputs(run):
    """What a MotionNFT run starts from: its editor's weights and its initial LoRA."""
    spec = config["train"][run]
    return _made_here(config["editors"][spec["editor"]]["source"]) + _made_here(
        spec["init_lora"]
    )


def model_config(model):
    """Only this model's settings, so editing another model does not rerun this one."""
    spec = config["models"][model]
    editors = (
        {spec["editor"]: config["editors"][spec["editor"]]} if "editor" in spec else {}
    )
    return {"models": {model: spec}, "editors": editors}


def flow_weights(flow):
    """The UniMatch checkpoint as a job's input, when the job runs UniMatch and the
    workflow downloads it."""
    weights = flow["unimatch"]["checkpoint"]
    if flow["backend"] == "unimatch" and weights == UNIMATCH_WEIGHTS:
        return [weights]
    return []


def mllm_jobs(section):
    """1 for a job that calls an MLLM, so `--resources mllm=1` runs one at a time."""
    return 0 if section["backend"] in ("none", "offline") else 1


def mllm_pricing(section):
    """What the MLLM calls of a config section (judge, rewrite, evaluate.generative) cost,
    for the cost columns of its rows."""
    return section_pricing(section, config["mllm"])


def flow_gpus(flow):
    """A GPU for a job that runs UniMatch off the CPU (DIS is CPU-only)."""
    on_cpu = flow["unimatch"]["device"] == "cpu"
    return 1 if flow["backend"] == "unimatch" and not on_cpu else 0


def editor_gpus(name):
    """A GPU for an editor unless it is pinned to the CPU (the tiny default)."""
    return 0 if config["editors"][name]["device"] == "cpu" else 1


def editor_memory(name):
    """Host memory (MB) of a job that loads an editor: the tiny one fits in little."""
    return 8000 if config["editors"][name]["kind"] == "tiny" else 64000


def model_gpus(model):
    spec = config["models"][model]
    return editor_gpus(spec["editor"]) if spec["kind"] == "editor" else 0


def model_memory(model):
    spec = config["models"][model]
    return editor_memory(spec["editor"]) if spec["kind"] == "editor" else 4000


def conda_env(family):
    """The pinned environment of a rule family, CPU or CUDA build of torch (software.torch)."""
    cuda = "-cuda" if config["software"]["torch"] == "cuda" else ""
    return f"../envs/{family}{cuda}.yaml"
