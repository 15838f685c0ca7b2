"""A split on disk, as the mined dataset writes it and every later stage reads it.

``data.parquet`` holds one row per triplet with the two images embedded as Hugging Face
``Image`` cells (``{bytes, path}``) and the features in the schema metadata, so
``datasets.load_dataset("parquet", ...)`` reads it as the released MotionEdit-Bench is
read; ``metadata.jsonl`` next to ``images/`` is the same split in the ``imagefolder``
layout. The mined splits and imported datasets (motionedit/dataset_import.py) both go
through here, so inference, scoring and training never ask where a split came from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def _list(feature: dict[str, Any]) -> dict[str, Any]:
    return {"feature": feature, "_type": "List"}


_FLOAT32 = {"dtype": "float32", "_type": "Value"}

HF_FEATURES = {
    "id": {"dtype": "string", "_type": "Value"},
    "prompt": {"dtype": "string", "_type": "Value"},
    "input_image": {"_type": "Image"},
    "target_image": {"_type": "Image"},
    "category": {"dtype": "string", "_type": "Value"},
    "source": {"dtype": "string", "_type": "Value"},
    "video_id": {"dtype": "string", "_type": "Value"},
    "t0": {"dtype": "float64", "_type": "Value"},
    "t1": {"dtype": "float64", "_type": "Value"},
    "motion_mean": {"dtype": "float64", "_type": "Value"},
    "motion_peak": {"dtype": "float64", "_type": "Value"},
    # Point trajectories (TV-Edit's drag annotation): per track, (x, y) in the input
    # image's pixels at each sampled time; whether the point was followed at that time;
    # the sampled times in seconds after t0.
    "tracks": _list(_list(_list(_FLOAT32))),
    "track_visible": _list(_list({"dtype": "bool", "_type": "Value"})),
    "track_times": _list({"dtype": "float64", "_type": "Value"}),
}


def _arrow(feature: dict[str, Any]) -> pa.DataType:
    kind = feature["_type"]
    if kind == "List":
        return pa.list_(_arrow(feature["feature"]))
    if kind == "Image":
        return pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    return pa.from_numpy_dtype(feature["dtype"]) if feature["dtype"] != "string" else pa.string()


#: Rows per parquet row group: the images of one group are in memory at a time, so a split
#: of ten thousand pairs at a few MB each is written in bounded memory.
ROWS_PER_GROUP = 64


def write_split_tables(records: list[dict[str, Any]], split_dir: Path) -> None:
    """``metadata.jsonl`` and ``data.parquet`` of rows whose images are already in place.

    Each record has the ``HF_FEATURES`` keys but the two image ones, and ``image``: the
    input and target paths relative to ``split_dir``. Unknown numbers are ``None``.
    """
    split_dir = Path(split_dir)
    lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in records]
    (split_dir / "metadata.jsonl").write_text("".join(lines))
    schema = pa.schema(
        [(k, _arrow(v)) for k, v in HF_FEATURES.items()],
        metadata={"huggingface": json.dumps({"info": {"features": HF_FEATURES}})},
    )
    with pq.ParquetWriter(split_dir / "data.parquet", schema, compression="zstd") as writer:
        for start in range(0, max(len(records), 1), ROWS_PER_GROUP):
            rows = []
            for r in records[start : start + ROWS_PER_GROUP]:
                row = {k: r.get(k) for k in HF_FEATURES}
                for key, rel in zip(("input_image", "target_image"), r["image"], strict=True):
                    row[key] = {"bytes": (split_dir / rel).read_bytes(), "path": rel}
                rows.append(row)
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))
