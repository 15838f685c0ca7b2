"""The registries of sources, editors, rewards and metrics agree with the schema and resolve.

The schema validates a config before any job runs, so a kind, reward or metric that is
registered but missing from its enum could never be configured, and one in the enum but
not registered would pass validation and fail hours later. Each test compares a registry's
keys with the schema's list in both directions.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, unimportable

from motionedit.config import SCHEMA_PATH
from motionedit.evaluate.metrics import HEADLINES, TABLE1
from motionedit.models import EDITOR_KINDS, INFERENCE_DEFAULTS, ModelError, editor_settings
from motionedit.rewards import REWARDS
from motionedit.sources import KINDS, SHARD_COUNTERS

SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())


def resolve(reference: str):
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


def test_editor_kinds_are_the_schema_enum():
    enum = SCHEMA["$defs"]["editor"]["properties"]["kind"]["enum"]
    assert sorted(enum) == sorted(EDITOR_KINDS)


def test_train_run_rewards_are_the_registry():
    properties = SCHEMA["$defs"]["train_run"]["properties"]["rewards"]["properties"]
    assert sorted(properties) == sorted(REWARDS)


def test_source_kinds_are_the_schema_enum():
    enum = SCHEMA["$defs"]["source"]["properties"]["kind"]["enum"]
    assert sorted(enum) == sorted(KINDS) and set(SHARD_COUNTERS) <= set(KINDS)


def test_win_rate_bases_are_auto_and_the_metrics_headlines():
    basis = SCHEMA["properties"]["evaluate"]["properties"]["win_rate"]["properties"]["basis"]
    assert basis["enum"] == ["auto", *HEADLINES]


@pytest.mark.parametrize("kind", sorted(EDITOR_KINDS))
def test_every_editor_kind_has_its_loader(kind):
    assert EDITOR_KINDS[kind].name == kind
    assert callable(resolve(EDITOR_KINDS[kind].loader))


@pytest.mark.parametrize("name", sorted(REWARDS))
def test_every_reward_has_its_factory(name):
    assert callable(resolve(REWARDS[name]))


def test_unknown_editor_kind_names_the_key_and_the_known_kinds():
    with pytest.raises(ModelError, match=r"editors\.e\.kind: unknown kind 'sdxl'.*tiny"):
        editor_settings({"editors": {"e": {"kind": "sdxl", "source": "x"}}}, "e")


def test_metrics_declare_table1_once_in_the_papers_order():
    assert [c.header for c in TABLE1] == [
        "Overall",
        "Fidelity",
        "Preservation",
        "Coherence",
        "MAS",
        "Win Rate (%)",
    ]
    assert len({c.position for c in TABLE1}) == len(TABLE1)


def test_the_editor_registry_reads_without_torch(tmp_path: Path):
    """The Snakemake DAG build reads editor settings where none of these may import."""
    unimportable(tmp_path)
    code = (
        "from motionedit.models import editor_settings, ModelError\n"
        "import json\n"
        "print(json.dumps(editor_settings({'editors': {'e': {'kind': 'tiny'}}}, 'e')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    expected = {**INFERENCE_DEFAULTS["tiny"], "kind": "tiny", "name": "e"}
    assert json.loads(proc.stdout) == expected


INFERENCE_ONLY = sorted(name for name, kind in EDITOR_KINDS.items() if not kind.trainable)


@pytest.mark.parametrize("kind", INFERENCE_ONLY)
@pytest.mark.parametrize(("section", "run"), [("sft", "tiny-sft"), ("train", "tiny-nft")])
def test_a_training_run_on_an_inference_only_kind_is_refused_at_config_time(kind, section, run):
    from motionedit.config import ConfigError, load_config, validate_config

    config = load_config(ROOT / "config.yaml")
    config["editors"]["other"] = {"kind": kind, "source": "someone/some-model"}
    config[section][run]["editor"] = "other"
    with pytest.raises(ConfigError, match=rf"{section}\.{run}\.editor: .*`{kind}` editor"):
        validate_config(config)


def test_the_inference_only_kinds():
    assert INFERENCE_ONLY == ["chronoedit", "instruct-pix2pix"]
