"""Inference over a benchmark table: baselines, prediction folders, editors, resume after a kill."""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest
import tiny_flux
import yaml
from PIL import Image

from motionedit.inference import JOURNAL, Journal, run_inference

LOG = logging.getLogger("test")


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def make_bench(folder, n=4, sizes=((60, 80), (64, 48))):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        frame = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        rows.append(
            {
                "id": f"s{i:02d}",
                "prompt": "make the red subject move left",
                "input_image": {"bytes": png(frame), "path": None},
                "target_image": {"bytes": png(255 - frame), "path": None},
            }
        )
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(folder / "data.parquet")
    return folder / "data.parquet", rows


def test_identity_returns_the_input(tmp_path):
    bench, rows = make_bench(tmp_path / "bench")
    out = tmp_path / "eval" / "nothing" / "outputs.parquet"
    df = run_inference("nothing", {"models": {"nothing": {"kind": "identity"}}}, bench, out, LOG)
    assert list(df["id"]) == [r["id"] for r in rows] and (df["error"] == "").all()
    for r, path in zip(rows, df["path"], strict=True):
        got = np.asarray(Image.open(out.parent / path))
        assert np.array_equal(got, np.asarray(Image.open(io.BytesIO(r["input_image"]["bytes"]))))


def test_predictions_folder_missing_and_broken_images_are_error_rows(tmp_path):
    bench, rows = make_bench(tmp_path / "bench")
    preds = tmp_path / "closed-model"
    preds.mkdir()
    Image.new("RGB", (32, 24), "red").save(preds / "s00.jpg")
    (preds / "s01.jpg").write_bytes(b"not an image")
    Image.new("RGBA", (30, 20)).save(preds / "s02.jpg.png")  # wrong name: counts as missing
    model = {"kind": "predictions", "path": str(preds), "pattern": "{id}.jpg"}
    out = tmp_path / "eval" / "closed" / "outputs.parquet"
    df = run_inference("closed", {"models": {"closed": model}}, bench, out, LOG).set_index("id")
    assert df.loc["s00", "error"] == "" and (df.loc["s00", "width"], df.loc["s00", "height"]) == (
        32,
        24,
    )
    assert df.loc["s01", "error"].startswith("unreadable image")
    assert df.loc["s02", "error"].startswith("missing prediction")
    assert pd.read_parquet(out).shape[0] == len(rows)


@pytest.fixture(scope="module")
def editor_config(tmp_path_factory):
    root = tmp_path_factory.mktemp("editor")
    tiny_flux.build().save_pretrained(root / "pipe")
    return {
        "editors": {
            "kontext": tiny_flux.editor(
                root / "pipe", inference={"steps": 12, "seed": 0, "batch_size": 2}
            )
        },
        "models": {"kontext": {"kind": "editor", "editor": "kontext", "lora": None}},
    }


def test_editor_inference_writes_images_and_times(tmp_path, editor_config):
    bench, _ = make_bench(tmp_path / "bench")
    out = tmp_path / "eval" / "kontext" / "outputs.parquet"
    df = run_inference("kontext", editor_config, bench, out, LOG)
    assert (df["error"] == "").all() and (df["seconds"] > 0).all() and (df["seed"] == 0).all()
    assert set(zip(df["width"], df["height"], strict=True)) == {(64, 48), (48, 64)}
    # A rerun makes nothing new: every batch is in the journal.
    stamp = {p: p.stat().st_mtime_ns for p in (out.parent / "images").iterdir()}
    run_inference("kontext", editor_config, bench, out, LOG)
    assert {p: p.stat().st_mtime_ns for p in (out.parent / "images").iterdir()} == stamp
    # Other settings, other images: the journal of the old settings is not reused.
    changed = yaml.safe_load(yaml.safe_dump(editor_config))
    changed["editors"]["kontext"]["inference"]["steps"] = 2
    run_inference("kontext", changed, bench, out, LOG)
    assert any(p.stat().st_mtime_ns != t for p, t in stamp.items())


def test_a_killed_run_resumes_to_the_same_images(tmp_path, editor_config):
    bench, rows = make_bench(tmp_path / "bench", n=12)
    full = tmp_path / "full" / "outputs.parquet"
    run_inference("kontext", editor_config, bench, full, LOG)

    killed = tmp_path / "killed" / "outputs.parquet"
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(editor_config))
    script = textwrap.dedent(
        f"""
        import logging, yaml
        from motionedit.inference import run_inference
        cfg = yaml.safe_load(open({str(tmp_path / "cfg.yaml")!r}))
        run_inference("kontext", cfg, {str(bench)!r}, {str(killed)!r}, logging.getLogger())
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    journal = killed.parent / JOURNAL
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if journal.is_file() and len(journal.read_text().splitlines()) >= 3:  # header + 2 batches
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not killed.exists()
    done_before = len(journal.read_text().splitlines()) - 1
    assert 2 <= done_before < 6  # 12 images in batches of 2: it really stopped half-way

    df = run_inference("kontext", editor_config, bench, killed, LOG)
    assert list(df["id"]) == [r["id"] for r in rows] and (df["error"] == "").all()
    for id_ in df["id"]:
        a = (full.parent / "images" / f"{id_}.png").read_bytes()
        b = (killed.parent / "images" / f"{id_}.png").read_bytes()
        assert a == b, id_


def test_journal_drops_a_line_cut_by_a_kill_and_appends_cleanly(tmp_path):
    path = tmp_path / JOURNAL
    journal = Journal(path, "abc")
    journal.add([{"id": "a"}])
    with open(path, "a") as fh:
        fh.write('{"rows": [{"id": "b"')  # killed mid-write
    again = Journal(path, "abc")
    assert set(again.rows) == {"a"}
    again.add([{"id": "c"}])
    assert set(Journal(path, "abc").rows) == {"a", "c"}
    assert Journal(path, "other settings").rows == {}
