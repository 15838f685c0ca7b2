"""Parquet tables: the one format every stage reads and writes.

Writes go through a temporary file and a rename, so a job killed mid-write never leaves a
half-written table that a rerun would take for finished output.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def write_table(df: pd.DataFrame, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(df, preserve_index=False)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def read_table(path: str | Path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas()


def read_tables(paths: list[str | Path]) -> pd.DataFrame:
    frames = [read_table(p) for p in paths]
    frames = [f for f in frames if len(f)] or frames[:1]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
