"""Config validation: defaults filled, mistakes named by their key path."""

from __future__ import annotations

import copy

import pytest
import yaml
from conftest import ROOT

from motionedit.config import ConfigError, key_path, layered, load_config, validate_config


def minimal(**extra):
    return {"sources": [{"name": "s", "kind": "synthetic"}], **extra}


def test_default_config_is_valid_and_complete():
    config = load_config(ROOT / "config.yaml")
    assert config["frames"]["window_seconds"] == 3.0
    assert config["dataset"]["bench_fraction"] == 0.1
    assert config["sources"][0]["fps"] == 24  # per-kind defaults are filled too
    assert config["judge"]["backend"] == "offline"


def test_defaults_differ_per_source_kind():
    config = validate_config(
        {"sources": [{"name": "a", "kind": "synthetic"},
                     {"name": "b", "kind": "url_list", "list": "u.txt"}]}
    )  # fmt: skip
    assert config["sources"][0]["shards"] == 2 and config["sources"][1]["shards"] == 1
    assert config["sources"][1]["retries"] == 4


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (minimal(framez={}), "framez: unknown key(s) 'framez'"),
        (minimal(frames={"window_seconds": "3"}), "frames.window_seconds: '3' is not of type"),
        (
            minimal(frames={"window_seconds": 0}),
            "frames.window_seconds: 0 is less than the minimum",
        ),
        (minimal(flow={"backend": "raft"}), "flow.backend: 'raft' is not one of"),
        (minimal(judge={"gemini": {"modle": "x"}}), "judge.gemini.modle: unknown key(s)"),
        (minimal(mllm={"api_key": "x"}), "mllm.api_key: unknown key(s) 'api_key'"),
        (
            minimal(
                editors={"t": {"kind": "tiny", "source": "m"}},
                sft={"s": {"editor": "t", "videos": {"of": 2}}},
            ),
            "sft.s.videos: 'part' is a required",
        ),
        ({"sources": [{"name": "s", "kind": "synthetic", "clipz": 3}]}, "sources[0].clipz"),
        ({"sources": [{"name": "s", "kind": "url_list"}]}, "sources[0]: 'list' is a required"),
        ({"sources": [{"name": "s", "kind": "ftp"}]}, "sources[0].kind: 'ftp' is not one of"),
        ({"sources": [{"name": "a b", "kind": "synthetic"}]}, "sources[0].name"),
        ({"sources": [{"name": "s", "kind": "synthetic"}] * 2}, "names must be unique"),
        ({}, "'sources' is a required property"),
    ],
)
def test_mistakes_are_named_by_their_path(config, message):
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    assert message in str(err.value)
    assert "config.schema.yaml" in str(err.value) or "unique" in message


def test_a_video_part_past_the_last_is_named():
    config = minimal(
        editors={"t": {"kind": "tiny", "source": "m"}},
        train={"n": {"editor": "t", "rewards": {"motion": 1}, "videos": {"part": 3, "of": 2}}},
    )
    with pytest.raises(ConfigError, match=r"train\.n\.videos\.part: 3 is more than the 2 parts"):
        validate_config(config)


def test_a_config_file_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(["a", "b"]))
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(path)


#: Configs meant as a layer over others (`--configfile base.yaml ... layer.yaml`).
LAYERS = {
    "paper.yaml": ["mining-hub.yaml"],
    "ablation-rewards.yaml": ["mining-hub.yaml", "paper.yaml"],
    "tiny-unseen-pairs.yaml": ["../config.yaml"],
    "corpus-seed1.yaml": ["../config.yaml"],
    "tiny-editor-6-steps.yaml": ["../config.yaml", "tiny-unseen-pairs.yaml"],
    "tiny-one-step-editor.yaml": ["../config.yaml", "tiny-unseen-pairs.yaml"],
    "open-mllm.yaml": ["../config.yaml"],
    "editscore.yaml": ["../config.yaml"],
}


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    config: dict = {}
    for base in LAYERS.get(path.name, []):
        config = layered(config, yaml.safe_load((path.parent / base).read_text()))
    validate_config(layered(config, yaml.safe_load(path.read_text())))


def test_every_mistake_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        validate_config({"seed": "x", "sources": [{"name": "s", "kind": "synthetic", "clipz": 3}]})
    assert "seed: 'x' is not of type" in str(err.value) and "sources[0].clipz" in str(err.value)


def test_batch_mode_on_vertex_fails_at_start_with_what_to_use_instead():
    with pytest.raises(ConfigError, match="mllm.mode: batch .* Use mode: online with vertexai"):
        validate_config(minimal(mllm={"mode": "batch", "vertexai": True}))


def _numeric_properties(node, path=""):
    """(path, schema) of every number or integer property in the schema."""
    if isinstance(node, dict):
        kinds = node.get("type")
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if {"number", "integer"} & set(kinds) and "enum" not in node:
            yield path, node
        for key, sub in node.items():
            yield from _numeric_properties(sub, f"{path}/{key}")
    elif isinstance(node, list):
        for i, sub in enumerate(node):
            yield from _numeric_properties(sub, f"{path}[{i}]")


def test_every_number_in_the_schema_has_a_range():
    schema = yaml.safe_load((ROOT / "schemas" / "config.schema.yaml").read_text())
    unbounded = [
        path
        for path, node in _numeric_properties(schema)
        if not ({"minimum", "exclusiveMinimum"} & set(node))
        or not ({"maximum", "exclusiveMaximum"} & set(node))
    ]
    assert unbounded == []


def _number_paths(value, path=()):
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield path
    elif isinstance(value, dict):
        for key, sub in value.items():
            yield from _number_paths(sub, (*path, key))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            yield from _number_paths(sub, (*path, i))


def _set(config, path, value):
    for part in path[:-1]:
        config = config[part]
    config[path[-1]] = value


def test_nan_or_infinity_anywhere_is_named_by_its_path():
    """JSON Schema ranges let NaN through (every comparison with it is false); a NaN
    threshold would keep every pair, so each number of the full config is tried."""
    full = load_config(ROOT / "config.yaml")
    paths = list(_number_paths(full))
    assert len(paths) > 100  # the whole config, defaults included
    for path in paths:
        for bad in (float("nan"), float("inf")):
            config = copy.deepcopy(full)
            _set(config, path, bad)
            with pytest.raises(ConfigError) as err:
                validate_config(config)
            assert f"{key_path(path)}: {bad} is not a finite number" in str(err.value)


def test_nan_from_yaml_fails_before_the_schema(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("sources: [{name: s, kind: synthetic}]\ndataset: {bench_fraction: .nan}\n")
    with pytest.raises(ConfigError, match=r"dataset\.bench_fraction: nan is not a finite"):
        load_config(path)


def test_an_alias_bomb_is_refused_without_expanding_it(tmp_path):
    """Nine nested aliases of ten make 10**9 values; the check stops at its limit."""
    anchors = ["&a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        anchors.append(f"&a{level} [{anchors[-1]}" + f", *a{level - 1}" * 9 + "]")
    path = tmp_path / "bomb.yaml"
    path.write_text(
        f"sources:\n  - {{name: s, kind: huggingface, repo_id: a/b, files: {anchors[-1]}}}\n"
    )
    with pytest.raises(ConfigError, match=r"^sources\[0\]\.files: the configuration expands"):
        load_config(path)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"sources": [{"name": "s", "kind": "synthetic", "shards": 10**6}]}, "sources[0].shards"),
        (minimal(frames={"stride_seconds": 1e-6}), "frames.stride_seconds: 1e-06 is less than"),
        (minimal(frames={"max_windows_per_video": 10**6}), "frames.max_windows_per_video"),
        (minimal(video={"max_pixels": 10**12}), "video.max_pixels"),
    ],
)
def test_sizes_that_would_hang_or_exhaust_a_job_are_refused(config, message):
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    assert message in str(err.value)


def test_the_paper_config_trains_as_section_8_states():
    config: dict = {}
    for name in ("mining-hub.yaml", "paper.yaml", "ablation-rewards.yaml"):
        config = layered(config, yaml.safe_load((ROOT / "configs" / name).read_text()))
    train = validate_config(config)["train"]
    assert train["flux-kontext-motionnft"]["steps"] == 300
    assert train["qwen-image-edit-motionnft"]["steps"] == 210
    for run in train.values():
        assert (run["groups"], run["group_size"], run["sampling_steps"]) == (24, 8, 6)
        assert (run["lr"], run["kl_weight"], run["micro_batch"]) == (3e-4, 1e-4, 2)
        # The released recipe where the paper is silent, and the paper's training guidance.
        assert (run["solver"], run["resolution"], run["guidance"]) == ("dpm2", 512, 1.0)
        assert (run["sigma_sampling"], run["timestep_fraction"]) == ("sampler", 0.99)
        assert run["ema_warmup"] and run["ema_decay"] == 0.9
    mixes = {(r["editor"], r["rewards"]["motion"], r["rewards"]["mllm"]) for r in train.values()}
    assert mixes == {
        (e, m, round(1.0 - m, 1))
        for e in ("flux-kontext", "qwen-image-edit")
        for m in (0, 0.3, 0.5, 0.7, 1)
    }


def test_groups_that_do_not_split_over_the_gpus_fail_at_start():
    config = minimal(
        editors={"t": {"kind": "tiny", "source": "m"}},
        train={"n": {"editor": "t", "rewards": {"motion": 1}, "groups": 24, "gpus": 5}},
    )
    with pytest.raises(ConfigError, match=r"train\.n\.groups: 24 groups .* multiple of 5"):
        validate_config(config)
    config["train"]["n"]["gpus"] = 8
    assert validate_config(config)["train"]["n"]["groups"] == 24
