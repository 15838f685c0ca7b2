"""Imported datasets: the released column layout from the Hub double, a local parquet file and
an imagefolder, each made into the split table that inference, scoring and training read;
every kind of broken row is an error that names the row and the fix."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ROOT
from hub_stub import COMMIT, point_client_at, serve_hub
from matplotlib import cbook
from PIL import Image

from motionedit.config import load_config, validate_config
from motionedit.dataset_import import (
    DatasetError,
    dataset_table,
    import_dataset,
    mining_needed,
)
from motionedit.images import image_from_cell
from motionedit.training import load_pairs

REPO = "someone/MotionEdit-Bench-like"
PARQUET = "data/train-00000-of-00001.parquet"
PHOTO = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
PROMPTS = ["Make her turn her head to the left.", "Have her lower her chin.", "Raise her hand."]


def jpeg(image: Image.Image, **save: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90, **save)
    return buf.getvalue()


def photo_pair(k: int) -> tuple[bytes, bytes]:
    """A crop of a real photograph and the same crop a few pixels on: a plausible pair."""
    with Image.open(PHOTO) as im:
        photo = im.convert("RGB")
    box = (40 + 20 * k, 60, 40 + 20 * k + 160, 60 + 120)
    moved = (box[0] + 6, box[1] + 3, box[2] + 6, box[3] + 3)
    return jpeg(photo.crop(box)), jpeg(photo.crop(moved))


def released_table(n: int = 3, **override: list) -> pa.Table:
    """The released MotionEdit-Bench layout: integer ids, prompts and two Image cells."""
    pairs = [photo_pair(k) for k in range(n)]
    columns = {
        "id": list(range(n)),
        "prompt": PROMPTS[:n],
        "input_image": [{"bytes": a, "path": f"{k}_in.jpg"} for k, (a, _) in enumerate(pairs)],
        "target_image": [{"bytes": b, "path": f"{k}_out.jpg"} for k, (_, b) in enumerate(pairs)],
    }
    return pa.table(columns | override)


def parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def hub_spec(**extra) -> dict:
    spec = {"bench": {"kind": "hub", "repo_id": REPO, "revision": COMMIT, **extra}}
    return validate_config(load_config_with(spec))["datasets"]["bench"]


def local_spec(path: Path, role: str = "bench", **extra) -> dict:
    spec = {role: {"kind": "local", "path": str(path), **extra}}
    return validate_config(load_config_with(spec))["datasets"][role]


def load_config_with(datasets: dict) -> dict:
    return load_config(ROOT / "config.yaml") | {"datasets": datasets}


@pytest.fixture
def hub(tmp_path, monkeypatch):
    with serve_hub({REPO: {PARQUET: parquet_bytes(released_table()), "README.md": b"#"}}) as srv:
        point_client_at(monkeypatch, srv.base, tmp_path / "hf_home")
        yield srv


def test_the_released_layout_from_the_hub_becomes_a_split_every_stage_reads(hub, tmp_path):
    out = tmp_path / "results" / "datasets" / "bench"
    summary = import_dataset(hub_spec(), "bench", out)
    assert summary["rows"] == 3 and summary["categories"] == ["unlabelled"]
    assert summary["files"] == [PARQUET]
    assert ("GET", f"/api/datasets/{REPO}/tree/{COMMIT}") in hub.seen

    table = pd.read_parquet(out / "data.parquet")
    assert list(table["id"]) == ["0", "1", "2"]
    assert list(table["prompt"]) == PROMPTS
    assert set(table["source"]) == {f"hf://datasets/{REPO}@{COMMIT}"}
    assert list(table["video_id"]) == ["0", "1", "2"]  # each row its own unit
    first_input = image_from_cell(table["input_image"][0], out)
    with Image.open(io.BytesIO(photo_pair(0)[0])) as original:
        # Decoded once to PNG: the pixels of the JPEG as PIL reads them, not re-compressed.
        assert np.array_equal(np.asarray(first_input), np.asarray(original.convert("RGB")))
    assert (out / "images" / "0_input.png").is_file()
    meta = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert meta[1]["image"] == ["images/1_input.png", "images/1_target.png"]

    pairs = load_pairs(out / "data.parquet")
    assert [p.id for p in pairs] == ["0", "1", "2"] and pairs[0].prompt == PROMPTS[0]


def test_offline_reads_the_cache_and_says_what_to_download_when_it_is_empty(
    hub, tmp_path, monkeypatch
):
    import huggingface_hub.constants as constants

    import_dataset(hub_spec(), "bench", tmp_path / "first")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    n_requests = len(hub.seen)
    assert import_dataset(hub_spec(), "bench", tmp_path / "again")["rows"] == 3
    assert len(hub.seen) == n_requests  # the cache alone

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    with pytest.raises(DatasetError) as err:
        import_dataset(hub_spec(), "bench", tmp_path / "none")
    message = str(err.value)
    assert "datasets.bench" in message and "not in the local Hugging Face cache" in message
    assert f"hf download {REPO} --repo-type dataset --revision {COMMIT}" in message


def test_an_unknown_repository_and_unmatched_files_are_named(hub, tmp_path):
    spec = hub_spec() | {"repo_id": "someone/absent"}
    with pytest.raises(DatasetError, match=r"datasets\.bench: someone/absent@.*repository not"):
        import_dataset(spec, "bench", tmp_path / "a")
    with pytest.raises(DatasetError, match=r"datasets\.bench\.files: no parquet file"):
        import_dataset(hub_spec(files=["data/test-*.parquet"]), "bench", tmp_path / "b")


def test_a_local_parquet_and_an_imagefolder_give_the_same_rows(hub, tmp_path):
    from_hub = tmp_path / "hub"
    import_dataset(hub_spec(), "bench", from_hub)

    (tmp_path / "mine.parquet").write_bytes(parquet_bytes(released_table()))
    from_file = tmp_path / "file"
    import_dataset(local_spec(tmp_path / "mine.parquet"), "bench", from_file)

    folder = tmp_path / "imagefolder"
    (folder / "pics").mkdir(parents=True)
    lines = []
    for k in range(3):
        a, b = photo_pair(k)
        (folder / "pics" / f"{k}_a.jpg").write_bytes(a)
        (folder / "pics" / f"{k}_b.jpg").write_bytes(b)
        row = {"id": k, "prompt": PROMPTS[k], "input_image_file_name": f"pics/{k}_a.jpg",
               "target_image_file_name": f"pics/{k}_b.jpg", "category": "pose"}  # fmt: skip
        lines.append(json.dumps(row) + "\n")
    (folder / "metadata.jsonl").write_text("".join(lines))
    from_folder = tmp_path / "folder"
    summary = import_dataset(local_spec(folder, role="train"), "train", from_folder)
    assert summary["categories"] == ["pose"]

    tables = [pd.read_parquet(d / "data.parquet") for d in (from_hub, from_file, from_folder)]
    for t in tables[1:]:
        assert list(t["id"]) == list(tables[0]["id"])
        assert list(t["prompt"]) == list(tables[0]["prompt"])
        for column in ("input_image", "target_image"):
            assert [c["bytes"] for c in t[column]] == [c["bytes"] for c in tables[0][column]]


def test_columns_maps_other_names(tmp_path):
    table = released_table().rename_columns(["uid", "instruction", "source_image", "edited"])
    (tmp_path / "other.parquet").write_bytes(parquet_bytes(table))
    with pytest.raises(DatasetError) as err:
        import_dataset(local_spec(tmp_path / "other.parquet"), "bench", tmp_path / "a")
    assert "has no column id, prompt, input_image, target_image" in str(err.value)
    assert "datasets.bench.columns" in str(err.value)
    columns = {"id": "uid", "prompt": "instruction", "input_image": "source_image",
               "target_image": "edited"}  # fmt: skip
    spec = local_spec(tmp_path / "other.parquet", columns=columns)
    assert import_dataset(spec, "bench", tmp_path / "b")["rows"] == 3


def test_broken_rows_are_named_and_nothing_is_written(tmp_path):
    good = released_table()
    cells = good.column("input_image").to_pylist()
    cells[1] = {"bytes": b"\xff\xd8 not really a jpeg", "path": "1_in.jpg"}
    broken = good.set_column(2, "input_image", pa.array(cells, good.schema.field(2).type))
    broken = broken.set_column(0, "id", pa.array([0, 1, 1]))
    broken = broken.set_column(1, "prompt", pa.array(["turn", "", "lift"]))
    (tmp_path / "broken.parquet").write_bytes(parquet_bytes(broken))
    out = tmp_path / "out"
    with pytest.raises(DatasetError) as err:
        import_dataset(local_spec(tmp_path / "broken.parquet"), "bench", out)
    message = str(err.value)
    assert "broken.parquet row 2: id '1' repeats broken.parquet row 1" in message
    assert "broken.parquet row 1 (id 1): empty or missing prompt" in message
    assert not (out / "data.parquet").exists()

    unreadable = good.set_column(2, "input_image", pa.array(cells, good.schema.field(2).type))
    (tmp_path / "unreadable.parquet").write_bytes(parquet_bytes(unreadable))
    with pytest.raises(DatasetError) as err:
        import_dataset(local_spec(tmp_path / "unreadable.parquet"), "bench", out)
    assert "1 of 3 rows cannot be used" in str(err.value)
    assert "id '1': input_image: UnidentifiedImageError" in str(err.value)
    assert not (out / "data.parquet").exists() and not (out / "images").exists()


def test_a_hub_file_name_cannot_reach_outside_the_snapshot(tmp_path, monkeypatch):
    (tmp_path / "secret.png").write_bytes(jpeg(Image.new("RGB", (8, 8))))
    table = released_table(1)
    escape = [{"bytes": None, "path": "../../../../../secret.png"}]
    table = table.set_column(2, "input_image", pa.array(escape, table.schema.field(2).type))
    with serve_hub({REPO: {PARQUET: parquet_bytes(table)}}) as srv:
        point_client_at(monkeypatch, srv.base, tmp_path / "hf_home")
        with pytest.raises(DatasetError, match="points outside the dataset's folder"):
            import_dataset(hub_spec(), "bench", tmp_path / "out")


def test_phone_photos_are_turned_upright(tmp_path):
    table = released_table(1)
    with Image.open(io.BytesIO(photo_pair(0)[0])) as im:
        exif = Image.Exif()
        exif[0x0112] = 6  # "rotate 90 CW to view": how phones store portrait shots
        sideways = jpeg(im, exif=exif.tobytes())
    cells = pa.array([{"bytes": sideways, "path": "0.jpg"}], table.schema.field(2).type)
    (tmp_path / "exif.parquet").write_bytes(
        parquet_bytes(table.set_column(2, "input_image", cells))
    )
    import_dataset(local_spec(tmp_path / "exif.parquet"), "bench", tmp_path / "out")
    with Image.open(tmp_path / "out" / "images" / "0_input.png") as upright:
        assert upright.size == (120, 160)  # the 160x120 crop, stood up


def test_max_rows_keeps_the_first_ids(tmp_path):
    (tmp_path / "mine.parquet").write_bytes(parquet_bytes(released_table()))
    spec = local_spec(tmp_path / "mine.parquet", max_rows=2)
    import_dataset(spec, "bench", tmp_path / "out")
    assert list(pd.read_parquet(tmp_path / "out" / "data.parquet")["id"]) == ["0", "1"]


def test_mining_runs_only_when_a_mined_split_is_read():
    cfg = validate_config(load_config_with({}))
    assert (
        mining_needed(cfg) and dataset_table(cfg, "bench") == "results/dataset/bench/data.parquet"
    )
    hub_bench = {"kind": "hub", "repo_id": REPO}
    scoring_only = {"sft": {}, "train": {}, "models": {"do-nothing": {"kind": "identity"}}}
    imported = validate_config(load_config_with({"bench": hub_bench}) | scoring_only)
    assert dataset_table(imported, "bench") == "results/datasets/bench/data.parquet"
    assert not mining_needed(imported)  # only models read a split, and theirs is imported
    assert mining_needed(validate_config(load_config_with({"bench": hub_bench})))  # sft reads train
    mining_only = {"sft": {}, "train": {}, "models": {}}
    assert mining_needed(validate_config(load_config_with({}) | mining_only))


def distinct_pair(k: int) -> tuple[bytes, bytes]:
    """Pair ``k`` of forty, each input a different crop of the photograph."""
    with Image.open(PHOTO) as im:
        photo = im.convert("RGB")
    x, y = 40 + 9 * (k % 8), 40 + 9 * (k // 8)
    return jpeg(photo.crop((x, y, x + 96, y + 72))), jpeg(photo.crop((x + 4, y, x + 100, y + 72)))


def test_many_rows_in_several_files_keep_each_image_with_its_id(tmp_path):
    """Images are read a few rows at a time, file by file, while rows are ordered by id:
    each id must still get its own images, past batch and file boundaries."""
    folder = tmp_path / "data"
    folder.mkdir()
    order = list(range(40))
    np.random.default_rng(0).shuffle(order)
    crops = {}
    for part, ks in enumerate((order[:23], order[23:])):
        pairs = [distinct_pair(k) for k in ks]
        crops |= {f"r{k:02d}": a for k, (a, _) in zip(ks, pairs, strict=True)}
        table = pa.table(
            {
                "id": [f"r{k:02d}" for k in ks],
                "prompt": [PROMPTS[0]] * len(ks),
                "input_image": [{"bytes": a, "path": None} for a, _ in pairs],
                "target_image": [{"bytes": b, "path": None} for _, b in pairs],
            }
        )
        pq.write_table(table, folder / f"part{part}.parquet", row_group_size=7)
    spec = local_spec(folder, max_rows=25)
    assert import_dataset(spec, "bench", tmp_path / "out")["rows"] == 25
    table = pd.read_parquet(tmp_path / "out" / "data.parquet")
    assert list(table["id"]) == [f"r{k:02d}" for k in range(25)]
    for id_, cell in zip(table["id"], table["input_image"], strict=True):
        with Image.open(io.BytesIO(crops[id_])) as expected:
            got = image_from_cell(cell, tmp_path / "out")
            assert np.array_equal(np.asarray(got), np.asarray(expected.convert("RGB"))), id_
