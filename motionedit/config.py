"""Loading and validating the workflow configuration.

The JSON schema in ``schemas/config.schema.yaml`` is the single place where keys, types,
ranges and defaults live. Validation fills in the defaults, so every job sees a complete
config, and it fails before any job runs with the dotted path of the offending key, so a
typo in a 200-line config is found in seconds.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from motionedit.evaluate.paper import paper_rows
from motionedit.flow import unimatch_checkpoint_problem
from motionedit.models.kinds import EDITOR_KINDS

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration mistake; the message names the key path and how to fix it."""


def _with_defaults(validator_class: type) -> type:
    """A validator class that writes ``default`` values into the instance as it validates."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema) -> Iterator:
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def key_path(parts) -> str:
    """``sources[0].kind`` style path of a location in the config."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "oneOf" and error.context:
        # A value of several allowed forms (a path, or a mapping): the form of the same
        # type as what was given says what is wrong with it.
        same_type = [e for e in error.context if e.validator != "type"]
        if same_type:
            return _describe(jsonschema.exceptions.best_match(same_type))
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        where = key_path(path + [extra[0]]) if len(extra) == 1 else key_path(path)
        return (
            f"{where}: unknown key(s) {', '.join(map(repr, extra))}; "
            f"allowed here: {', '.join(allowed)}"
        )
    return f"{key_path(path)}: {error.message}"


#: Values a config may hold once YAML aliases are expanded. A real config has a few
#: thousand (a long list of hub files included); an alias "bomb" of a few lines has
#: billions, and validating it would exhaust memory before any error is printed.
MAX_CONFIG_VALUES = 200_000


def check_values(config: Any, limit: int = MAX_CONFIG_VALUES) -> None:
    """Refuse a config that expands past ``limit`` values or holds a NaN or infinity.

    Runs before the schema: JSON Schema compares numbers with ``<`` and ``>``, which are
    false for NaN, so ``.nan`` passes every range (a NaN threshold then keeps every pair);
    and the validator walks the expanded tree, which is what an alias bomb blows up.
    The walk counts shared (aliased) values each time they appear, as validation would.
    """
    seen = 0
    bad: list[str] = []
    stack: list[tuple[Any, tuple]] = [(config, ())]
    while stack:
        value, path = stack.pop()
        seen += 1
        if seen > limit:
            while path and isinstance(path[-1], int):  # name the key, not a list position
                path = path[:-1]
            raise ConfigError(
                f"{key_path(path)}: the configuration expands to more than {limit} values; "
                "YAML aliases (*name) repeat their anchor's whole value each time they "
                "appear, so a few nested aliases can expand to billions. Write the values out "
                "or use fewer nested aliases"
            )
        if isinstance(value, float) and not math.isfinite(value):
            bad.append(f"{key_path(path)}: {value} is not a finite number; give a number")
        elif isinstance(value, dict):
            stack.extend((v, (*path, k)) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, (*path, i)) for i, v in enumerate(value))
    if bad:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(sorted(bad)))


def validate_config(config: dict[str, Any], schema_path: Path = SCHEMA_PATH) -> dict[str, Any]:
    """Validate ``config`` in place (defaults filled) and return it; raise ConfigError."""
    check_values(config)
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = _Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        lines = [_describe(e) for e in errors]
        raise ConfigError(
            "invalid configuration:\n  "
            + "\n  ".join(dict.fromkeys(lines))
            + f"\n(the allowed keys, types and defaults are documented in {schema_path.name})"
        )
    names = [s["name"] for s in config["sources"]]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"sources[].name: names must be unique; repeated: {', '.join(dupes)}")
    for i, src in enumerate(config["sources"]):
        if src["kind"] == "synthetic" and src["min_side"] > src["max_side"]:
            raise ConfigError(f"sources[{i}].min_side: larger than max_side ({src['max_side']})")
        if src["kind"] == "synthetic" and src["min_seconds"] > src["max_seconds"]:
            raise ConfigError(f"sources[{i}].min_seconds: larger than max_seconds")
    # One server can serve every MLLM: the reward's takes the stages' when it names none.
    reward = config["rewards"]["mllm"]
    reward["base_url"] = reward["base_url"] or config["mllm"]["openai"]["base_url"]
    _check_models(config)
    if config["mllm"]["mode"] == "batch" and config["mllm"]["vertexai"]:
        raise ConfigError(
            "mllm.mode: batch runs through the Gemini API's inline batch jobs; Vertex AI batch "
            "jobs read from Cloud Storage, which this workflow does not write. Use mode: online "
            "with vertexai: true, or batch mode with an API key (vertexai: false)"
        )
    _check_open_server(config)
    backends = {config["flow"]["backend"], config["evaluate"]["flow_backend"]}
    checkpoint = config["flow"]["unimatch"]["checkpoint"]
    if "unimatch" in backends and checkpoint is not None:
        # null: the workflow's `unimatch_weights` job downloads it (rules/weights.smk)
        problem = unimatch_checkpoint_problem(checkpoint)
        if problem:
            raise ConfigError(problem)
    return config


def evaluation_flow(config: dict[str, Any]) -> dict[str, Any]:
    """The `flow` section the MAS is measured with: `evaluate.flow_backend` over `flow`."""
    backend = config["evaluate"]["flow_backend"] or config["flow"]["backend"]
    return config["flow"] | {"backend": backend}


def _check_open_server(config: dict[str, Any]) -> None:
    """A stage on the `openai` backend needs the server's URL."""
    stages = {
        "judge.backend": config["judge"]["backend"],
        "rewrite.backend": config["rewrite"]["backend"],
        "evaluate.generative.backend": config["evaluate"]["generative"]["backend"],
    }
    users = [key for key, backend in stages.items() if backend == "openai"]
    if not users:
        return
    if not config["mllm"]["openai"]["base_url"]:
        raise ConfigError(
            f"mllm.openai.base_url: not set, and {', '.join(users)} is openai; give the "
            "chat-completions server's URL, e.g. http://127.0.0.1:8000/v1 for `vllm serve`"
        )


def _check_models(config: dict[str, Any]) -> None:
    """Cross-references between editors, sft runs and models, which a schema cannot check."""
    editors = config["editors"]
    known = ", ".join(sorted(editors)) or "none configured"
    for name, run in config["sft"].items():
        if run["editor"] not in editors:
            raise ConfigError(f"sft.{name}.editor: no editor {run['editor']!r} ({known})")
        kind = editors[run["editor"]]["kind"]
        if run["from_scratch"] and kind != "tiny":
            raise ConfigError(
                f"sft.{name}.from_scratch: only a `tiny` editor is trained from scratch; "
                f"editors.{run['editor']} is {kind} (set from_scratch: false for a LoRA run)"
            )
    for name, run in config["train"].items():
        if run["editor"] not in editors:
            raise ConfigError(f"train.{name}.editor: no editor {run['editor']!r} ({known})")
        init = run.get("init_lora") or ""
        if init.startswith("results/models/") and init.split("/")[2] not in config["sft"]:
            raise ConfigError(
                f"train.{name}.init_lora: {init} is made by an sft run that is not configured"
            )
        if run["rewards"].get("mllm", 0) > 0 and not config["rewards"]["mllm"]["base_url"]:
            raise ConfigError(
                f"train.{name}.rewards.mllm: set rewards.mllm.base_url to the OpenAI-compatible "
                "server (e.g. `vllm serve Qwen/Qwen2.5-VL-32B-Instruct` at http://host:8000/v1), "
                "or give the mllm reward weight 0"
            )
        processes = max(1, run["gpus"])
        if run["groups"] % processes:
            raise ConfigError(
                f"train.{name}.groups: {run['groups']} groups per step cannot be split over "
                f"gpus: {processes} processes; use a multiple of {processes}"
            )
        if sum(run["rewards"].values()) <= 0:
            raise ConfigError(f"train.{name}.rewards: the weights must add up to more than 0")
    for section in ("sft", "train"):
        for name, run in config[section].items():
            kind = editors[run["editor"]]["kind"]
            if not EDITOR_KINDS[kind].trainable:
                raise ConfigError(
                    f"{section}.{name}.editor: editors.{run['editor']} is a `{kind}` editor, "
                    "which edits but is not trained here (SFT and MotionNFT train flow-matching "
                    "editors); train a flux-kontext, qwen-image-edit or tiny editor instead"
                )
            videos = run.get("videos")
            if videos and videos["part"] > videos["of"]:
                raise ConfigError(
                    f"{section}.{name}.videos.part: {videos['part']} is more than the "
                    f"{videos['of']} parts of `of`; parts are numbered 1 to {videos['of']}"
                )
            if editors[run["editor"]].get("offload", "none") != "none":
                raise ConfigError(
                    f"editors.{run['editor']}.offload: {section}.{name} trains this editor, and "
                    "diffusers CPU offload moves the transformer off the GPU between calls; set "
                    "it to none (a train run can keep its text encoders on the CPU instead: "
                    "offload_text_encoders: true, with gradient_checkpointing)"
                )
    for name, model in config["models"].items():
        if model["kind"] == "editor" and model["editor"] not in editors:
            raise ConfigError(f"models.{name}.editor: no editor {model['editor']!r} ({known})")
        if model.get("paper") and model["paper"] not in (rows := paper_rows()):
            raise ConfigError(
                f"models.{name}.paper: {model['paper']!r} is not a row of the paper's Table 1; "
                f"use one of: {', '.join(rows)}"
            )
        if model["kind"] == "predictions" and "{id}" not in model["pattern"]:
            raise ConfigError(f"models.{name}.pattern: must contain {{id}}, e.g. '{{id}}.png'")
        for key in ("lora",):
            path = model.get(key)
            if not isinstance(path, str):  # none, or a hub file
                continue
            for prefix, section in (("results/models/", "sft"), ("results/train/", "train")):
                if path and path.startswith(prefix) and path.split("/")[2] not in config[section]:
                    raise ConfigError(
                        f"models.{name}.{key}: {path} is made by a {section} run "
                        f"{path.split('/')[2]!r}, which is not configured under `{section}`"
                    )


def layered(base: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    """``layer`` over ``base`` as Snakemake merges several ``--configfile``: mappings merge
    key by key, anything else (lists included) is replaced."""
    out = dict(base)
    for key, value in layer.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = layered(out[key], value) if both else value
    return out


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file and validate it."""
    with open(path) as fh:
        config = yaml.safe_load(fh) or {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: the config must be a mapping of keys to values")
    return validate_config(config)
