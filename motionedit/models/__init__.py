"""Editors: adapters over diffusers pipelines, and the models the benchmark runs.

An *editor* (``editors.<name>`` in config) is a base pipeline: its kind, where its weights
are, and how to run it. A *model* (``models.<name>``) is what inference and evaluation
see: an editor plus an optional LoRA, a folder of predictions made elsewhere, or the
do-nothing baseline that returns the input.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from motionedit.devices import resolve_device
from motionedit.models.base import Conditioning, EditorAdapter, ModelError

__all__ = [
    "INFERENCE_DEFAULTS",
    "Conditioning",
    "EditorAdapter",
    "ModelError",
    "editor_settings",
    "load_editor",
]

#: The paper's inference settings per editor kind (28 steps; Kontext guidance 2.5; Qwen
#: true CFG 4.0 with guidance 1.0), and the pixel budget each family was trained at.
INFERENCE_DEFAULTS: dict[str, dict[str, Any]] = {
    "flux-kontext": {
        "max_area": 1024 * 1024,
        "max_sequence_length": 512,
        "inference": {"steps": 28, "guidance_scale": 2.5, "true_cfg_scale": 1.0},
    },
    "qwen-image-edit": {
        "max_area": 1024 * 1024,
        "inference": {"steps": 28, "guidance_scale": 1.0, "true_cfg_scale": 4.0},
    },
    "qwen-image-edit-plus": {
        "max_area": 1024 * 1024,
        "inference": {"steps": 28, "guidance_scale": 1.0, "true_cfg_scale": 4.0},
    },
    # Trained here at 32x32 (see motionedit/models/tiny.py). One step suits an editor trained
    # with sigma_one_fraction 0.5; config.yaml's flow-trained editor sets 2.
    "tiny": {
        "max_area": 32 * 32,
        "max_sequence_length": 16,
        "inference": {"steps": 1, "guidance_scale": 1.0, "true_cfg_scale": 1.0},
    },
}


def editor_settings(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The editor's config block with the kind's paper defaults under what the user set."""
    if name not in config.get("editors", {}):
        known = ", ".join(sorted(config.get("editors", {}))) or "none"
        raise ModelError(f"editors.{name}: no such editor (configured: {known})")
    user = copy.deepcopy(config["editors"][name])
    defaults = copy.deepcopy(INFERENCE_DEFAULTS[user["kind"]])
    inference = {**defaults.pop("inference"), **user.get("inference", {})}
    settings = {**defaults, **user, "inference": inference, "name": name}
    return settings


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def load_pipeline(
    pipeline_class: type,
    settings: dict[str, Any],
    components: Callable[..., dict[str, Any]] | None = None,
) -> Any:
    """``from_pretrained`` with the source, revision and dtype; errors that name the key.

    A local folder is used as is; anything else is a hub id, looked up in the local cache
    only when ``HF_HUB_OFFLINE`` is set, so an offline job fails at once with the fix
    instead of hanging on the network. ``components(source, **hub)`` loads parts the
    pipeline cannot load itself, under the same error handling.
    """
    import torch

    source = str(settings["source"])
    key = f"editors.{settings.get('name', '?')}.source"
    local = Path(source).exists()
    if not local and (source.startswith(("/", ".", "results")) or source.count("/") != 1):
        raise ModelError(
            f"{key}: {source!r} is neither a folder here nor a hub id (owner/name); "
            f"point it at a diffusers {pipeline_class.__name__} folder or a hub repository"
        )
    hub = {
        "revision": None if local else settings.get("revision"),
        "local_files_only": local or _offline(),
    }
    try:
        extra = components(source, **hub) if components else {}
        pipe = pipeline_class.from_pretrained(
            source, dtype=getattr(torch, settings.get("dtype", "float32")), **hub, **extra
        )
    except (OSError, ValueError) as exc:
        hint = (
            f"HF_HUB_OFFLINE is set: download it first (hf download {source}) or point "
            f"{key} at a local folder"
            if _offline() and not local
            else "check the path or hub id, and your hub login for gated models"
        )
        raise ModelError(
            f"{key}: cannot load {source!r} ({exc.__class__.__name__}); {hint}"
        ) from exc
    return place(pipe, settings)


def place(pipe: Any, settings: dict[str, Any]) -> Any:
    """Move a pipeline to its device or set up CPU offload, as ``editors.<name>.offload`` says."""
    offload = settings.get("offload", "none")
    device = settings.setdefault(
        "device_resolved", str(resolve_device(settings.get("device", "auto")))
    )
    if offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_editor(settings: dict[str, Any]) -> EditorAdapter:
    """The adapter for an editor's settings (see :func:`editor_settings`)."""
    settings = dict(settings)
    kind = settings["kind"]
    if kind in ("tiny", "flux-kontext"):
        from diffusers import FluxKontextPipeline

        from motionedit.models.flux_kontext import FluxKontextAdapter, TinyKontextAdapter

        adapter_class = TinyKontextAdapter if kind == "tiny" else FluxKontextAdapter
        return adapter_class(load_pipeline(FluxKontextPipeline, settings), settings)
    if kind in ("qwen-image-edit", "qwen-image-edit-plus"):
        from motionedit.models.qwen_image_edit import load_qwen_image_edit

        return load_qwen_image_edit(settings)
    raise ModelError(f"editors.{settings.get('name', '?')}.kind: unknown kind {kind!r}")
