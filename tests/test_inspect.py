"""``python -m motionedit.inspect`` on a results folder the real workflow wrote.

The workflow runs once (through the snakemake CLI, up to the dataset) on a tiny synthetic
corpus, so the tables the command reads have the columns, types and relative frame paths
that the stages really write, not ones a test imagined.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT
from PIL import Image
from test_workflow import snakemake

from motionedit.inspect import SECTIONS, describe, find_pair, flow_figure, main
from motionedit.tables import write_table

pytestmark = pytest.mark.e2e

TINY = {
    "sources": [
        {
            "name": "synth",
            "kind": "synthetic",
            "clips": 8,
            "shards": 1,
            "min_side": 64,
            "max_side": 96,
            "min_seconds": 6.0,
            "max_seconds": 6.5,
        }
    ]
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    wd = tmp_path_factory.mktemp("inspect")
    (wd / "config.yaml").write_text(yaml.safe_dump(TINY))
    snakemake(wd, "--until", "dataset")
    return wd


@pytest.fixture(scope="module")
def results(workdir) -> Path:
    return workdir / "results"


def table(results: Path, stage: str) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in sorted((results / stage).glob("*/0*.parquet"))])


def dataset_ids(results: Path, split: str) -> list[str]:
    path = results / "dataset" / split / "data.parquet"
    return pd.read_parquet(path, columns=["id"])["id"].tolist()


def report(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out = capsys.readouterr()
    return status, out.out, out.err


def section(text: str, name: str) -> str:
    """The lines of one ``== name`` section of a report."""
    part = text.split(f"\n== {name}", 1)[1]
    return part.split("\n== ", 1)[0]


@pytest.mark.parametrize("split", ["train", "bench"])
def test_a_kept_pair_reports_its_split_instruction_and_every_stage(results, capsys, split):
    pair_id = dataset_ids(results, split)[0]
    status, out, _ = report(capsys, pair_id, "--results", str(results), "--no-png")
    assert status == 0
    prompt = pd.read_parquet(results / "dataset" / split / "data.parquet").set_index("id")
    instruction = prompt.loc[pair_id, "prompt"]
    assert out.splitlines()[0] == f"kept: {split} split, instruction {instruction!r}"
    headers = [line.split()[1].rstrip(":") for line in out.splitlines() if line.startswith("== ")]
    assert headers == list(SECTIONS)
    for name in ("video", "frames", "prefilter", "judge", "rewrite", "dataset"):
        assert "no row" not in section(out, name), name
        assert "not " not in section(out, name).splitlines()[1], name
    assert f"== dataset: {split} split  ({results / 'dataset' / split / 'data.parquet'})" in out
    # The embedded images are neither read nor printed, only where the files are.
    assert "input_image" not in out and "bytes" not in section(out, "dataset")
    assert f"{pair_id}_input.png" in section(out, "dataset")
    evaluation = section(out, "evaluation")
    if split == "train":
        assert "not evaluated (train split" in evaluation
    else:
        assert "no row: the stage did not run or never saw this pair" in evaluation


def test_a_pair_the_prefilter_dropped_says_so_and_has_no_judge_row(results, capsys):
    pre = table(results, "prefilter")
    dropped = pre[~pre["keep"]].iloc[0]
    record = find_pair(results, dropped.pair_id)
    assert record["judge"] is None and record["rewrite"] is None and record["dataset"] is None
    assert record["prefilter"]["row"]["keep"] is False
    status, out, _ = report(capsys, dropped.pair_id, "--results", str(results), "--no-png")
    assert status == 0
    assert out.splitlines()[0] == f"dropped by prefilter: {dropped.reason}"
    assert f"not judged (prefilter dropped it: {dropped.reason})" in section(out, "judge")
    assert "not evaluated (not in the benchmark)" in section(out, "evaluation")
    # Its numbers are there, at 4 significant digits.
    assert f"motion_peak        {float(f'{dropped.motion_peak:.4g}')!r}" in out


def test_the_raw_judge_details_appear(results):
    judged = table(results, "judge").iloc[0]
    record = find_pair(results, judged.pair_id)
    raw = record["judge"]["raw"]
    assert raw["pair_id"] == judged.pair_id and raw["calls"] == []
    assert raw["details"] == json.loads(judged.details)
    text = section(describe(record), "judge")
    assert f"raw log ({results / 'judge'}" in text
    assert "calls    []" in text
    for key in json.loads(judged.details):
        assert f'"{key}": ' in text
    # Printed once, pretty: one detail per line, not the column's one-line JSON text.
    assert judged.details not in text
    assert text.count('"warp_error"') == 1


def test_an_unknown_id_exits_2_naming_where_it_looked_and_a_close_match(results, capsys):
    known = table(results, "frames")["pair_id"].iloc[3]
    typo = known[:-1] + ("7" if known[-1] != "7" else "8")
    status, out, err = report(capsys, typo, "--results", str(results))
    assert status == 2 and out == ""
    assert f"pair id {typo!r} not found" in err
    assert str(results / "frames" / "*" / "*.parquet") + " (1 table)" in err
    assert "Did you mean:" in err and known in err.split("Did you mean:")[1]
    assert not (results / "inspect" / f"{typo}.png").exists()

    status, _, err = report(capsys, "x", "--results", str(results / "missing"))
    assert status == 2 and "no results folder" in err


def ink_runs(row: np.ndarray, min_width: int = 50) -> list[tuple[int, int]]:
    """Runs of non-white columns along one pixel row: the panels a figure shows side by side."""
    ink = np.append(np.abs(row.astype(int) - 255).sum(-1) > 30, False)
    runs, start = [], None
    for x, on in enumerate(ink):
        if on and start is None:
            start = x
        elif not on and start is not None:
            runs.append((start, x))
            start = None
    return [(a, b) for a, b in runs if b - a >= min_width]


def test_the_png_shows_both_frames_the_flow_and_its_magnitude(results, tmp_path, capsys):
    pair_id = dataset_ids(results, "train")[0]
    target = tmp_path / "figs" / "pair.png"
    status, out, _ = report(capsys, pair_id, "--results", str(results), "--png", str(target))
    assert status == 0 and out.rstrip().endswith(f"figure: {target}")
    with Image.open(target) as png:
        assert "Software" not in png.info
        pixels = np.asarray(png.convert("RGB"))
    height, width = pixels.shape[:2]
    assert width > 2 * height
    panels = ink_runs(pixels[height * 6 // 10])
    assert len(panels) == 4, panels
    assert all(b - a > width // 6 for a, b in panels)
    # The first panel is the first frame; the third shows a moving pair's flow in colour.
    frame0 = table(results, "frames").set_index("pair_id").loc[pair_id, "frame0"]
    assert Path(results.parent / frame0).is_file()
    a, b = panels[2]
    flow = pixels[:, a:b].astype(int)
    saturated = (flow.max(-1) - flow.min(-1)) > 80
    assert saturated.sum() > 50


def test_the_figure_draws_the_trajectories_over_the_prefilters_own_motion(results, tmp_path):
    pair_id = dataset_ids(results, "train")[0]
    record = find_pair(results, pair_id)
    pre = record["prefilter"]["row"]
    assert len(pre["tracks"]) > 0 and Path(results.parent / pre["motion"]).is_file()
    flow_figure(record, tmp_path / "with.png")
    bare = json.loads(json.dumps(record, default=lambda v: v.tolist()))
    bare["prefilter"]["row"]["tracks"] = []
    flow_figure(bare, tmp_path / "without.png")
    with Image.open(tmp_path / "with.png") as a, Image.open(tmp_path / "without.png") as b:
        drawn, plain = np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB"))
    assert drawn.shape == plain.shape
    height = drawn.shape[0]
    panels = ink_runs(plain[height * 6 // 10])
    differs = np.abs(drawn.astype(int) - plain.astype(int)).sum(-1) > 60
    # Lines on the first frame, rings on the last; the motion panels are the same.
    (a0, b0), (a1, b1), (a2, b2), (a3, _) = panels
    assert differs[:, a0:b0].sum() > 30 and differs[:, a1:b1].sum() > 10
    assert not differs[height // 5 :, a2:].any()


def test_the_script_runs_from_the_workdir_and_writes_the_default_png(workdir):
    pair_id = dataset_ids(workdir / "results", "bench")[0]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "workflow_scripts" / "inspect_pair.py"), pair_id]
        + ["--results", "results"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("kept: bench split, instruction ")
    png = Path("results") / "inspect" / f"{pair_id}.png"
    assert proc.stdout.rstrip().endswith(f"figure: {png}")
    with Image.open(workdir / png) as image:
        assert image.width > 2 * image.height


def test_evaluation_rows_and_reasons_of_a_copied_results_folder(
    results, tmp_path, capsys, monkeypatch
):
    """A copy of the folder under another name, read from elsewhere: frame paths written as
    results/frames/... are found inside the copy; tables without pair_id are passed over."""
    copy = tmp_path / "copied"
    shutil.copytree(results, copy, ignore=shutil.ignore_patterns("inspect"))
    pair_id = dataset_ids(copy, "bench")[0]
    other = dataset_ids(copy, "bench")[-1]
    write_table(pd.DataFrame({"note": ["no pair_id column"]}), copy / "frames/zz/0009.parquet")
    scores = pd.DataFrame(
        {
            "id": [other, pair_id],
            "mas": [0.5, 0.123456],
            "static": [False, True],
            "error": ["", ""],
            "overall": [3.0, 4.25],
        }
    )
    write_table(scores, copy / "eval" / "m" / "scores.parquet")
    reasons = {"fidelity": "the figure bends as asked", "coherence": "no artefacts"}
    line = {"id": pair_id, "scores": {"overall": 4.25, "reasons": reasons}, "error": None}
    (copy / "eval" / "m" / "scores.raw.jsonl").write_text(json.dumps(line) + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = tmp_path / "copy.png"
    monkeypatch.chdir(elsewhere)
    status, out, err = report(capsys, pair_id, "--results", str(copy), "--png", str(target))
    assert status == 0, err
    assert target.is_file()
    record = find_pair(copy, pair_id)
    assert set(record["evaluation"]) == {"m"}
    assert record["evaluation"]["m"]["row"]["mas"] == pytest.approx(0.123456)
    evaluation = section(out, "evaluation")
    assert f"model m  ({copy / 'eval' / 'm' / 'scores.parquet'})" in evaluation
    assert "mas      0.1235" in evaluation and "static   True" in evaluation
    assert "overall  4.25" in evaluation
    assert "the figure bends as asked" in evaluation and "no artefacts" in evaluation


def test_a_judge_error_is_the_fate_and_explains_the_missing_rewrite():
    """Error rows leave keep empty: the report must call them errors, not discards."""
    pair = "clip_0001-0123456789_w002"
    found = {"path": "t.parquet"}
    record = {
        "pair_id": pair,
        "results": "results",
        "frames": found | {"row": {"pair_id": pair, "skip": None, "error": None}},
        "prefilter": found | {"row": {"pair_id": pair, "keep": True, "reason": "ok"}},
        "judge": found
        | {"row": {"keep": None, "reason": "error:timeout", "error": "timeout: 60 s"}, "raw": None},
        "rewrite": None,
        "dataset": None,
        "video": None,
        "evaluation": {},
    }
    text = describe(record)
    assert text.splitlines()[0] == "judge error: timeout: 60 s"
    assert "not rewritten (judge error: timeout: 60 s)" in section(text, "rewrite")
    assert "raw log: t.raw.jsonl does not exist" in section(text, "judge")
    assert "no row: the stage did not run" in section(text, "video")
