"""Inference over the benchmark: one configured model, every benchmark id, one image each.

Models are editors (with an optional LoRA), folders of predictions made elsewhere, or the
do-nothing baseline. Whatever the kind, the result is the same layout, so evaluation
never needs to know where an image came from:
``results/eval/<model>/images/<id>.png`` and ``outputs.parquet`` (id, path, seconds,
seed, width, height, error). A missing or unreadable prediction is an error row.

Editor inference is resumable. Batches are formed from the sorted ids of one edit size,
so they are the same on every run; after each batch its images are written atomically
and a line goes to ``progress.jsonl``. A rerun after a kill skips the batches already
recorded under the same settings and redoes the rest, batch for batch as an
uninterrupted run would, so the images come out the same. The journal and images sit
outside the rule's declared output, which Snakemake would otherwise delete on rerun.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

from motionedit.images import image_from_cell
from motionedit.models import editor_settings, load_editor
from motionedit.runlog import progress
from motionedit.tables import write_table

OUTPUT_COLUMNS = ["id", "path", "seconds", "seed", "width", "height", "error"]
JOURNAL = "progress.jsonl"


def _bench_rows(bench_table: str | Path) -> list[dict[str, Any]]:
    df = pd.read_parquet(bench_table, columns=["id", "prompt", "input_image"]).sort_values("id")
    return df.to_dict("records")


def _save_png(image: Image.Image, path: Path) -> None:
    """Write next to the target and rename, so a killed job never leaves half a PNG."""
    tmp = path.with_name(path.name + ".tmp")
    image.save(tmp, format="PNG")
    os.replace(tmp, path)


def _row(id_: str, path: Path | None, seconds: float, seed: int | None, error: str = "") -> dict:
    width = height = None
    if path is not None:
        with Image.open(path) as im:
            width, height = im.size
    return {
        "id": id_,
        "path": f"images/{path.name}" if path is not None else None,
        "seconds": round(seconds, 4),
        "seed": seed,
        "width": width,
        "height": height,
        "error": error,
    }


def model_digest(model: dict[str, Any], settings: dict[str, Any] | None) -> str:
    """Settings a finished image depends on; a journal under other settings is discarded.

    The LoRA's bytes count too, so retraining an SFT run invalidates the images made
    with its previous weights.
    """
    parts: dict[str, Any] = {"model": model, "editor": settings}
    lora = model.get("lora")
    if isinstance(lora, str):  # a hub LoRA is named by its pinned revision, in `model`
        path = Path(lora)
        files = sorted(path.rglob("*.safetensors")) if path.is_dir() else [path] * path.is_file()
        parts["lora_sha256"] = [hashlib.sha256(p.read_bytes()).hexdigest() for p in files]
    if settings and Path(str(settings.get("source", ""))).is_dir():
        src = Path(settings["source"])
        parts["source_sha256"] = [
            hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(src.rglob("*.safetensors"))
        ]
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Journal:
    """Finished batches of one model's inference, line by line."""

    def __init__(self, path: Path, digest: str):
        self.path = path
        self.digest = digest
        self.rows: dict[str, dict[str, Any]] = {}
        kept: list[str] = []
        if path.is_file():
            lines = path.read_text().splitlines()
            if lines and lines[0] == json.dumps({"digest": digest}):
                for line in lines[1:]:
                    try:
                        batch = json.loads(line)["rows"]
                    except (json.JSONDecodeError, KeyError):
                        break  # a line cut by a kill: that batch is redone
                    kept.append(line)
                    self.rows.update({row["id"]: row for row in batch})
        # Rewritten without any cut tail, so the next line appended starts on a line of its own.
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(f"{x}\n" for x in [json.dumps({"digest": digest}), *kept]))
        os.replace(tmp, path)

    def done(self, ids: list[str], images_dir: Path) -> bool:
        return all(i in self.rows and (images_dir / f"{i}.png").is_file() for i in ids)

    def add(self, rows: list[dict[str, Any]]) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps({"rows": rows}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        for row in rows:
            self.rows[row["id"]] = row


def run_inference(
    name: str,
    config: dict[str, Any],
    bench_table: str | Path,
    output_table: str | Path,
    logger: logging.Logger,
) -> pd.DataFrame:
    """Run ``models.<name>`` over the benchmark and write its images and ``outputs.parquet``."""
    model = config["models"][name]
    out_dir = Path(output_table).parent
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    rows = _bench_rows(bench_table)
    root = Path(bench_table).parent
    kind = model["kind"]
    if kind == "editor":
        results = _run_editor(name, model, config, rows, root, images_dir, logger)
    else:
        results = [
            _copy_one(model, row, root, images_dir) for row in progress(rows, f"infer {name}")
        ]
    df = pd.DataFrame(results, columns=OUTPUT_COLUMNS)
    write_table(df, output_table)
    errors = int((df["error"] != "").sum())
    logger.info("%s: %d images, %d errors", name, len(df) - errors, errors)
    return df


def _copy_one(model: dict[str, Any], row: dict[str, Any], root: Path, images_dir: Path) -> dict:
    """The do-nothing baseline's or a predictions folder's image for one id, as PNG."""
    id_ = row["id"]
    target = images_dir / f"{id_}.png"
    t0 = time.perf_counter()
    try:
        if model["kind"] == "identity":
            image = image_from_cell(row["input_image"], root)
        else:
            source = Path(model["path"]) / model["pattern"].format(id=id_)
            if not source.is_file():
                return _row(id_, None, 0.0, None, f"missing prediction: {source}")
            with Image.open(source) as im:
                im.load()
                image = im.convert("RGB")
        _save_png(image, target)
    except (OSError, ValueError) as exc:
        return _row(id_, None, 0.0, None, f"unreadable image: {exc}")
    return _row(id_, target, time.perf_counter() - t0, None)


def _run_editor(
    name: str,
    model: dict[str, Any],
    config: dict[str, Any],
    rows: list[dict[str, Any]],
    root: Path,
    images_dir: Path,
    logger: logging.Logger,
) -> list[dict[str, Any]]:
    settings = editor_settings(config, model["editor"])
    journal = Journal(images_dir.parent / JOURNAL, model_digest(model, settings))
    inputs = {r["id"]: image_from_cell(r["input_image"], root) for r in rows}
    prompts = {r["id"]: r["prompt"] for r in rows}
    adapter = None
    seed = int(settings["inference"]["seed"])
    batch_size = int(settings["inference"]["batch_size"])
    batches = _batches(inputs, batch_size)
    skipped = sum(len(b) for b in batches if journal.done(b, images_dir))
    if skipped:
        logger.info(
            "%s: %d of %d images already made under these settings", name, skipped, len(rows)
        )
    for batch in progress(batches, f"infer {name}"):
        if journal.done(batch, images_dir):
            continue
        if adapter is None:
            adapter = load_model(name, model, settings)
        t0 = time.perf_counter()
        edited = adapter.edit([inputs[i] for i in batch], [prompts[i] for i in batch], seed)
        per_image = (time.perf_counter() - t0) / len(batch)
        out = []
        for id_, image in zip(batch, edited, strict=True):
            path = images_dir / f"{id_}.png"
            _save_png(image, path)
            out.append(_row(id_, path, per_image, seed))
        journal.add(out)
    return [journal.rows[r["id"]] for r in rows]


def load_model(name: str, model: dict[str, Any], settings: dict[str, Any]) -> Any:
    """The editor of ``models.<name>`` (an ``editor`` model), with its LoRA if it has one."""
    from motionedit.models.loading import resolve_lora

    adapter = load_editor(settings)
    if model.get("lora"):
        adapter.load_lora(resolve_lora(model["lora"], f"models.{name}.lora"))
    return adapter


def _batches(inputs: dict[str, Image.Image], batch_size: int) -> list[list[str]]:
    """Sorted ids grouped by input size, chunked: the same batches on every run."""
    groups: dict[tuple[int, int], list[str]] = {}
    for id_ in sorted(inputs):
        groups.setdefault(inputs[id_].size, []).append(id_)
    return [
        ids[i : i + batch_size]
        for _, ids in sorted(groups.items())
        for i in range(0, len(ids), batch_size)
    ]
