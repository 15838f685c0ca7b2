"""Loading a diffusers pipeline for an editor, and placing it on its device.

Every adapter module's loader goes through :func:`load_pipeline`, so the rules for a
source (a local folder or a hub id, the offline cache, the revision and dtype) and the
errors that name the config key to change are written once. It lives apart from the
package ``__init__`` so adapter modules import it without importing the package's
registry, and the registry (motionedit/models/kinds.py) stays free of torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from motionedit.devices import resolve_device
from motionedit.models.kinds import ModelError


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


def resolve_lora(lora: str | dict[str, Any], key: str) -> str:
    """A LoRA as a local path: a folder or file as given, or a file of a hub repository
    (``{repo_id, weight_name, revision}``, e.g. the released ``elaine1wan/motionedit``),
    downloaded into the hub cache (the cache only under ``HF_HUB_OFFLINE``)."""
    if isinstance(lora, str):
        return lora
    from huggingface_hub import hf_hub_download

    where = f"{lora['repo_id']}/{lora['weight_name']}@{lora['revision']}"
    try:
        return hf_hub_download(
            repo_id=lora["repo_id"],
            filename=lora["weight_name"],
            revision=lora["revision"],
            local_files_only=_offline(),
        )
    except Exception as exc:  # every hub failure: name the key and the fix
        hint = (
            f"HF_HUB_OFFLINE is set: download it first (hf download {lora['repo_id']} "
            f"{lora['weight_name']} --revision {lora['revision']})"
            if _offline()
            else "check repo_id, weight_name and revision, and your hub login"
        )
        raise ModelError(f"{key}: cannot fetch {where} ({type(exc).__name__}); {hint}") from exc


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
