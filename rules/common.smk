# Config validation (defaults filled), the static shard lists and wildcard constraints.
import sys

sys.path.insert(0, workflow.basedir)  # motionedit/ without installing it

from motionedit.config import validate_config
from motionedit.sources import shard_names

validate_config(config)

SOURCES = {s["name"]: s for s in config["sources"]}
SHARDS = {name: shard_names(s) for name, s in SOURCES.items()}


wildcard_constraints:
    src="[A-Za-z0-9][A-Za-z0-9_.-]*",
    shard=r"\d\d\d\d+",


def per_shard(pattern):
    """Every (source, shard) instance of an output pattern."""
    return [pattern.format(src=src, shard=s) for src in SHARDS for s in SHARDS[src]]
