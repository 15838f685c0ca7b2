"""Triplet datasets made elsewhere, as the workflow's train or benchmark split.

Configuration (``datasets.<role>``, role ``train`` or ``bench``)::

    datasets:
      bench:
        kind: hub                          # or: mined (default), local
        repo_id: elaine1wan/MotionEdit-Bench
        revision: <commit sha>             # pin it; a branch name works but can move
        split: train                       # the released sets keep every row in "train"
        files: null                        # patterns; default data/<split>-*.parquet
        columns: {}                        # e.g. {prompt: instruction} when names differ
        max_rows: null                     # the first N ids only, for a quick look
      train:
        kind: local
        path: my_triplets/                 # a .parquet file, a folder of them, or an
                                           # imagefolder (metadata.jsonl + images)

The released MotionEdit-Bench and MotionEdit-Train have the columns ``id``, ``prompt``,
``input_image`` and ``target_image`` (Hugging Face ``Image`` cells) in one ``train``
split; the authors' inference script reads them with ``load_dataset(...)["train"]``, and
users' own sets come as an ``imagefolder`` with ``metadata.jsonl``, which the same script
accepts. Every row is checked (a missing column, an unreadable image or a repeated id is
an error naming the row and the fix) and its images are decoded once, turned upright
(EXIF), made RGB and stored as PNG in ``results/datasets/<role>/``, in the table layout of
the mined splits (motionedit/split_table.py), so no later stage asks where a split came
from. Optional columns ``category`` and ``video_id`` are kept when present.

Token and offline mode are huggingface_hub's (``HF_TOKEN``, ``HF_HUB_OFFLINE``,
``HF_ENDPOINT``); with ``HF_HUB_OFFLINE=1`` only the local cache is read.

This module imports no model stack and nothing heavy at import time: the Snakefile asks
it which table each role reads while it builds the DAG.
"""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

ROLES = ("train", "bench")
KINDS = ("mined", "hub", "local")
REQUIRED_COLUMNS = ("id", "prompt", "input_image", "target_image")
OPTIONAL_COLUMNS = ("category", "video_id")
#: Ids become file names (images, predictions' ``{id}.png``), so they must be safe ones.
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
UNLABELLED = "unlabelled"
#: Problems listed in one error message; the rest are counted.
MAX_LISTED = 10

log = logging.getLogger(__name__)


class DatasetError(ValueError):
    """A configured dataset that cannot be used as it is; the message names the fix."""


def dataset_table(config: dict[str, Any], role: str) -> str:
    """The table a role's readers take: the mined split's or the imported one's."""
    if config["datasets"][role]["kind"] == "mined":
        return f"results/dataset/{role}/data.parquet"
    return f"results/datasets/{role}/data.parquet"


def imported_roles(config: dict[str, Any]) -> list[str]:
    return [role for role in ROLES if config["datasets"][role]["kind"] != "mined"]


def mining_needed(config: dict[str, Any]) -> bool:
    """Mining runs when a mined split is read: by a train or SFT run (train split) or by a
    model to evaluate (bench split; MotionNFT's held-out curve reads it too), and in a
    config that only mines (no runs, no models), whose product is the dataset."""
    mined = {role for role in ROLES if config["datasets"][role]["kind"] == "mined"}
    if not (config["sft"] or config["train"] or config["models"]):
        return bool(mined)
    reads_train = bool(config["sft"] or config["train"])
    reads_bench = bool(config["models"] or config["train"])
    return ("train" in mined and reads_train) or ("bench" in mined and reads_bench)


def local_inputs(spec: dict[str, Any]) -> list[str]:
    """What a local dataset's import job depends on: its table files (metadata.jsonl or
    the parquet files), so that rewriting one imports again; the path itself when it is
    missing (Snakemake then names it). Images a table points to are not watched."""
    if spec["kind"] != "local":
        return []
    try:
        return [str(f) for f in _local_files(spec, "")[1]]
    except DatasetError:
        return [spec["path"]]


def _key(role: str, field: str | None = None) -> str:
    return f"datasets.{role}" + (f".{field}" if field else "")


def describe(spec: dict[str, Any]) -> str:
    """Where the rows came from, as the `source` column and the log say it."""
    if spec["kind"] == "hub":
        return f"hf://datasets/{spec['repo_id']}@{spec['revision']}"
    return f"local:{spec['path']}"


# -- finding the files ------------------------------------------------------------------
def _hub_files(spec: dict[str, Any], role: str) -> tuple[Path, list[Path]]:
    """Download (or find in the cache) the split's parquet files: (snapshot root, files)."""
    from huggingface_hub import snapshot_download  # not needed to build the DAG

    patterns = spec["files"] or [f"data/{spec['split']}-*.parquet"]
    try:
        root = Path(
            snapshot_download(
                repo_id=spec["repo_id"],
                repo_type="dataset",
                revision=spec["revision"],
                allow_patterns=patterns,
                cache_dir=spec["cache_dir"],
            )
        )
    except Exception as exc:  # every Hub failure ends here, with what to do about it
        raise DatasetError(_hub_error(spec, role, exc)) from exc
    files = sorted(p for p in root.rglob("*.parquet") if p.is_file())
    if not files:
        raise DatasetError(
            f"{_key(role, 'files')}: no parquet file of {spec['repo_id']}@{spec['revision']} "
            f"matches {patterns}; list the split's files on the repository's 'Files and "
            "versions' page and set `files` to patterns that match them"
        )
    return root, files


def _hub_error(spec: dict[str, Any], role: str, exc: Exception) -> str:
    name = type(exc).__name__
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    where = f"{_key(role)}: {spec['repo_id']}@{spec['revision']}"
    command = f"hf download {spec['repo_id']} --repo-type dataset --revision {spec['revision']}"
    if name in ("LocalEntryNotFoundError", "OfflineModeIsEnabled"):
        return (
            f"{where} is not in the local Hugging Face cache and the Hub cannot be reached "
            f"(HF_HUB_OFFLINE set, or no network). Download it where there is a network "
            f"with `{command}` (same HF_HOME), or unset HF_HUB_OFFLINE ({name}: {first})"
        )
    if name in ("RepositoryNotFoundError", "GatedRepoError"):
        return (
            f"{where}: repository not found, or private/gated without a token; check "
            f"repo_id, accept its terms on the Hub and set HF_TOKEN ({name}: {first})"
        )
    if name == "RevisionNotFoundError":
        return f"{where}: no such revision in the repository; check `revision` ({first})"
    return f"{where}: download failed ({name}: {first})"


def _local_files(spec: dict[str, Any], role: str) -> tuple[Path, list[Path]]:
    path = Path(spec["path"])
    if path.is_file():
        if path.suffix.lower() not in (".parquet", ".jsonl"):
            raise DatasetError(
                f"{_key(role, 'path')}: {path} is neither a .parquet table nor a "
                "metadata.jsonl; point it at one, or at the folder that holds them"
            )
        return path.parent, [path]
    if not path.is_dir():
        raise DatasetError(
            f"{_key(role, 'path')}: {path} does not exist; give a .parquet file, a folder of "
            "them, or an imagefolder (a folder with metadata.jsonl and the images)"
        )
    if (path / "metadata.jsonl").is_file():
        return path, [path / "metadata.jsonl"]
    split = sorted(path.glob(f"data/{spec['split']}-*.parquet"))
    files = split or sorted(p for p in path.rglob("*.parquet") if p.is_file())
    if not files:
        raise DatasetError(
            f"{_key(role, 'path')}: {path} has neither metadata.jsonl nor any .parquet file"
        )
    return path, files


# -- reading rows -----------------------------------------------------------------------
def _read_jsonl(path: Path, role: str) -> list[dict[str, Any]]:
    """An imagefolder's metadata: ``input_image_file_name``/``target_image_file_name``
    (the ``datasets`` convention for two image columns), a two-item ``image`` list (the
    mined splits' own metadata.jsonl) or the two columns as paths."""
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{_key(role)}: {path} line {n} is not JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise DatasetError(f"{_key(role)}: {path} line {n} is not a JSON object")
        for column in ("input_image", "target_image"):
            if f"{column}_file_name" in row:
                row[column] = row.pop(f"{column}_file_name")
        image = row.pop("image", None)
        if isinstance(image, list) and len(image) == 2:
            row.setdefault("input_image", image[0])
            row.setdefault("target_image", image[1])
        rows.append(row)
    return rows


def _columns(spec: dict[str, Any]) -> dict[str, str]:
    """Each field's source column: its own name unless ``columns`` maps it."""
    return {**{c: c for c in REQUIRED_COLUMNS + OPTIONAL_COLUMNS}, **spec["columns"]}


def _read_rows(files: list[Path], spec: dict[str, Any], role: str) -> list[dict[str, Any]]:
    """Every row's id, prompt and optional fields, and where its images are (``_file``,
    ``_row``): images are read later, a few rows at a time, so a large set is imported in
    bounded memory. Rows of an imagefolder carry their image file names already."""
    import pyarrow.parquet as pq

    wanted = _columns(spec)
    light = [wanted[c] for c in ("id", "prompt", *OPTIONAL_COLUMNS)]
    rows: list[dict[str, Any]] = []
    for file in files:
        if file.suffix == ".jsonl":
            raw = _read_jsonl(file, role)
            present = set().union(*raw) if raw else set()
        else:
            parquet = pq.ParquetFile(file)
            present = set(parquet.schema_arrow.names)
            raw = parquet.read(columns=[c for c in light if c in present]).to_pylist()
        missing = [c for c in REQUIRED_COLUMNS if wanted[c] not in present]
        if missing:
            mapped = [f"{c} (read from '{wanted[c]}')" if wanted[c] != c else c for c in missing]
            raise DatasetError(
                f"{_key(role)}: {file} has no column {', '.join(mapped)}; its columns are "
                f"{sorted(present)}. Name the ones to use in {_key(role, 'columns')}, "
                "e.g. {prompt: instruction}"
            )
        for n, r in enumerate(raw):
            rows.append({c: r.get(src) for c, src in wanted.items()} | {"_file": file, "_row": n})
    return rows


def _with_images(
    rows: list[dict[str, Any]], spec: dict[str, Any]
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """``(row, {input_image, target_image} cells)`` for ``rows``, file by file, reading a
    parquet file's two image columns in small batches."""
    import pyarrow.parquet as pq

    wanted = _columns(spec)
    by_file: dict[Path, dict[int, dict[str, Any]]] = {}
    for r in rows:
        by_file.setdefault(r["_file"], {})[r["_row"]] = r
    for file, chosen in by_file.items():
        if file.suffix == ".jsonl":
            for r in chosen.values():
                yield r, {"input_image": r["input_image"], "target_image": r["target_image"]}
            continue
        columns = [wanted["input_image"], wanted["target_image"]]
        n = 0
        for batch in pq.ParquetFile(file).iter_batches(batch_size=16, columns=columns):
            for cells in batch.to_pylist():
                if n in chosen:
                    yield chosen[n], {"input_image": cells[columns[0]],
                                      "target_image": cells[columns[1]]}  # fmt: skip
                n += 1


def _image_bytes(cell: Any, base: Path, allow_outside: bool) -> bytes:
    """The encoded image of a cell: embedded bytes, or a file named relative to ``base``."""
    if isinstance(cell, dict):
        if cell.get("bytes"):
            return bytes(cell["bytes"])
        cell = cell.get("path")
    if isinstance(cell, (bytes, bytearray)):
        return bytes(cell)
    if not isinstance(cell, str) or not cell:
        raise ValueError("empty cell (neither image bytes nor a file name)")
    path = Path(cell) if Path(cell).is_absolute() else base / cell
    if not allow_outside and not path.resolve().is_relative_to(base.resolve()):
        raise ValueError(f"file name {cell!r} points outside the dataset's folder")
    if not path.is_file():
        raise ValueError(f"no file {path}")
    return path.read_bytes()


def _decode(data: bytes) -> Any:
    """An upright RGB image from encoded bytes (raises on anything PIL cannot read)."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return ImageOps.exif_transpose(im).convert("RGB")


def _problem_summary(role: str, problems: list[str], rows: int) -> str:
    listed = "\n  ".join(problems[:MAX_LISTED])
    more = len(problems) - MAX_LISTED
    tail = f"\n  ... and {more} more" if more > 0 else ""
    return (
        f"{_key(role)}: {len(problems)} of {rows} rows cannot be used; fix or drop them in the "
        f"source (a benchmark with rows silently left out is not the benchmark):\n  "
        f"{listed}{tail}"
    )


def _check_ids(rows: list[dict[str, Any]], role: str) -> list[str]:
    """Every id and prompt problem, each named by its file and row there."""
    problems: list[str] = []
    seen: dict[str, str] = {}
    for r in rows:
        where = f"{r['_file'].name} row {r['_row']}"
        raw = r["id"]
        r["id"] = "" if raw is None else str(raw)
        if not ID_RE.match(r["id"]):
            problems.append(
                f"{where}: id {raw!r} is not a file-name-safe id (letters, digits, '_', '.', "
                "'-'; at most 128)"
            )
        elif r["id"] in seen:
            problems.append(f"{where}: id {r['id']!r} repeats {seen[r['id']]}")
        else:
            seen[r["id"]] = where
        if not isinstance(r["prompt"], str) or not r["prompt"].strip():
            problems.append(f"{where} (id {raw!r}): empty or missing prompt")
    return problems


# -- the import -------------------------------------------------------------------------
def import_dataset(
    spec: dict[str, Any],
    role: str,
    out_dir: str | Path,
    progress: Callable[[Iterable, int], Iterable] | None = None,
    logger: logging.Logger = log,
) -> dict[str, Any]:
    """Write ``datasets.<role>`` to ``out_dir`` as a split (images/, data.parquet,
    metadata.jsonl) and return a summary; raise :class:`DatasetError` on any bad row,
    writing no table."""
    from motionedit.split_table import write_split_tables

    if spec["kind"] == "hub":
        if not COMMIT_RE.match(spec["revision"]):
            logger.warning(
                "%s: revision %r is not a commit sha, so the rows are not pinned: a new upload "
                "changes them. Pin the commit shown on the repository's 'Files and versions' "
                "page.", _key(role, "revision"), spec["revision"],
            )  # fmt: skip
        base, files = _hub_files(spec, role)
    elif spec["kind"] == "local":
        base, files = _local_files(spec, role)
    else:
        raise DatasetError(f"{_key(role, 'kind')}: {spec['kind']!r} is not imported")
    rows = _read_rows(files, spec, role)
    if not rows:
        raise DatasetError(f"{_key(role)}: {describe(spec)} has no rows")
    problems = _check_ids(rows, role)
    if problems:
        raise DatasetError(_problem_summary(role, problems, len(rows)))
    rows.sort(key=lambda r: r["id"])
    if spec["max_rows"]:
        rows = rows[: spec["max_rows"]]

    out_dir = Path(out_dir)
    images = out_dir / "images"
    if images.exists():
        shutil.rmtree(images)
    images.mkdir(parents=True)
    source = describe(spec)
    made: dict[str, tuple[dict[str, Any], tuple[int, int]]] = {}
    pairs = _with_images(rows, spec)
    for r, cells in progress(pairs, len(rows)) if progress else pairs:
        rel = [f"images/{r['id']}_input.png", f"images/{r['id']}_target.png"]
        try:
            pair = []
            for column in ("input_image", "target_image"):
                try:
                    data = _image_bytes(cells[column], r["_file"].parent, spec["kind"] == "local")
                    pair.append(_decode(data))
                except Exception as exc:  # PIL raises several kinds; all mean "unreadable"
                    raise ValueError(f"{column}: {type(exc).__name__}: {exc}") from exc
        except ValueError as exc:
            problems.append(f"id {r['id']!r}: {exc}")
            continue
        for image, name in zip(pair, rel, strict=True):
            image.save(out_dir / name, format="PNG")
        record = {
            "id": r["id"],
            "prompt": r["prompt"].strip(),
            "image": rel,
            "category": str(r["category"]) if r["category"] else UNLABELLED,
            "source": source,
            "video_id": str(r["video_id"]) if r["video_id"] else r["id"],
            "t0": None,
            "t1": None,
            "motion_mean": None,
            "motion_peak": None,
        }
        made[r["id"]] = (record, pair[0].size)
    if problems:
        shutil.rmtree(images)
        raise DatasetError(_problem_summary(role, problems, len(rows)))
    records = [made[r["id"]][0] for r in rows]  # in id order
    write_split_tables(records, out_dir)
    widths, heights = zip(*(made[r["id"]][1] for r in rows), strict=True)
    return {
        "role": role,
        "source": source,
        "files": [str(f.relative_to(base)) if f.is_relative_to(base) else str(f) for f in files],
        "rows": len(records),
        "categories": sorted({r["category"] for r in records}),
        "width": [min(widths), max(widths)],
        "height": [min(heights), max(heights)],
    }
