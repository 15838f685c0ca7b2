"""Scoring a model's benchmark edits: MAS per sample with the DIS flow, error rows for what
is missing, and the MLLM scores through the real SDK against the local Gemini server."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT
from gemini_stub import GeminiStub, motion_answers
from PIL import Image
from test_mllm_gemini import SENTINEL, transport

from motionedit.config import validate_config
from motionedit.evaluate.generative import GenerativeScorer
from motionedit.evaluate.scores import SCORE_COLUMNS, score_model
from motionedit.evaluate.summary import write_summary
from motionedit.flow import make_flow
from motionedit.inference import run_inference

LOG = logging.getLogger("test-evaluate-scores")
DEFAULTS = validate_config(yaml.safe_load((ROOT / "config.yaml").read_text()))
IDS = ["s00", "s01", "s02", "s03"]


def scene(shift: int) -> Image.Image:
    """A textured background with a textured square 16 px wide at x = 20 + shift."""
    rng = np.random.default_rng(0)
    bg = (rng.random((64, 96, 3)) * 60 + 60).astype(np.uint8)
    patch = (np.random.default_rng(1).random((16, 16, 3)) * 155 + 100).astype(np.uint8)
    bg[24:40, 20 + shift : 36 + shift] = patch
    return Image.fromarray(bg)


def make_bench(folder, n: int = 4):
    """``n`` pairs whose target moves the square 10 px right, with images on disk."""
    (folder / "images").mkdir(parents=True)
    rows = []
    for i in range(n):
        id_ = f"s{i:02d}"
        scene(0).save(folder / "images" / f"{id_}_input.png")
        scene(10).save(folder / "images" / f"{id_}_target.png")
        rows.append(
            {
                "id": id_,
                "prompt": "Move the square to the right.",
                "category": "position" if i % 2 else "pose",
                "input_image": {"bytes": None, "path": f"images/{id_}_input.png"},
                "target_image": {"bytes": None, "path": f"images/{id_}_target.png"},
            }
        )
    pd.DataFrame(rows).to_parquet(folder / "data.parquet")
    return folder / "data.parquet"


def predictions(tmp_path, bench, name: str, images: dict) -> str:
    """Run inference for a folder of predictions; ``images`` maps id to an image, bytes
    (written as they are) or None (no file)."""
    folder = tmp_path / f"pred-{name}"
    folder.mkdir()
    for id_, image in images.items():
        if isinstance(image, Image.Image):
            image.save(folder / f"{id_}.png")
        elif image is not None:
            (folder / f"{id_}.png").write_bytes(image)
    model = {"kind": "predictions", "path": str(folder), "pattern": "{id}.png"}
    out = tmp_path / "eval" / name / "outputs.parquet"
    run_inference(name, {"models": {name: model}}, bench, out, LOG)
    return str(out)


def score(tmp_path, bench, outputs, **kw) -> pd.DataFrame:
    folder = tmp_path / "eval" / outputs.split("/")[-2]
    return score_model(
        bench,
        outputs,
        make_flow(DEFAULTS["flow"]),
        DEFAULTS["metrics"],
        folder / "scores.parquet",
        folder / "scores.raw.jsonl",
        LOG,
        **kw,
    ).set_index("id")


def test_mas_per_sample_ranks_the_right_motion_first(tmp_path):
    bench = make_bench(tmp_path / "bench")
    right, wrong, still = (
        score(tmp_path, bench, predictions(tmp_path, bench, name, dict.fromkeys(IDS, scene(shift))))
        for name, shift in (("right", 10), ("wrong", -10), ("still", 0))
    )
    assert list(right.reset_index().columns) == SCORE_COLUMNS
    assert (right["error"] == "").all() and (right["mas"] > 80).all()
    assert (wrong["mas"] < right["mas"] - 10).all()
    # The do-nothing edit is flagged static and scores 0.
    assert still["static"].all() and (still["mas"] == 0).all()
    assert not right["static"].any()
    assert right["category"].tolist() == ["pose", "position", "pose", "position"]
    # No MLLM configured: the generative columns stay empty, the raw log too.
    assert right["overall"].isna().all() and right["mllm_model"].isna().all()
    assert (tmp_path / "eval" / "right" / "scores.raw.jsonl").read_text() == ""


def test_missing_and_unreadable_edits_are_error_rows_and_the_tables_still_render(tmp_path):
    bench = make_bench(tmp_path / "bench")
    outputs = predictions(
        tmp_path, bench, "closed", {"s00": scene(10), "s01": b"not a png", "s02": None}
    )
    # An image deleted after inference and an id inference never wrote a row for.
    table = pd.read_parquet(outputs)
    (tmp_path / "eval" / "closed" / table.set_index("id").loc["s00", "path"]).unlink()
    ok = table.iloc[0].to_dict() | {"id": "s03", "path": "images/s03.png", "error": ""}
    scene(10).save(tmp_path / "eval" / "closed" / "images" / "s03.png")
    table = pd.concat([table[table["id"] != "s03"], pd.DataFrame([ok])], ignore_index=True)
    table.to_parquet(outputs)
    scores = score(tmp_path, bench, outputs)
    assert scores.loc["s00", "error"].startswith("missing image: ")
    assert scores.loc["s01", "error"].startswith("inference: unreadable image")
    assert scores.loc["s02", "error"].startswith("inference: missing prediction")
    assert scores.loc["s03", "error"] == "" and scores.loc["s03", "mas"] > 80
    assert scores.loc[["s00", "s01", "s02"], "mas"].isna().all()

    # A row inference never wrote is an error row too.
    table[table["id"] != "s03"].to_parquet(outputs)
    scores = score(tmp_path, bench, outputs)
    assert scores.loc["s03", "error"].startswith("no output row for this id")

    right = predictions(tmp_path, bench, "right", dict.fromkeys(IDS, scene(10)))
    score(tmp_path, bench, right)
    out = {k: str(tmp_path / f"{k}.txt") for k in
           ("summary", "summary_md", "per_category", "per_category_md", "winrate")}  # fmt: skip
    settings = {
        "win_rate": {"basis": "auto", "draw_margin": 0.0},
        "bootstrap": {"resamples": 100, "level": 0.95},
    }
    paths = {m: tmp_path / "eval" / m / "scores.parquet" for m in ("closed", "right")}
    summary = write_summary(paths, settings, 0, out, LOG).set_index("model")
    assert summary.loc["closed", "errors"] == 4
    assert np.isnan(summary.loc["closed", "mas"])
    # Every sample is a loss for the model that made no image.
    assert summary.loc["right", "win_rate"] == 1.0 and summary.loc["closed", "win_rate"] == 0.0
    assert "| `closed` | – | – | – | – | – | 0.0 [" in Path(out["summary_md"]).read_text()


@pytest.fixture
def key(monkeypatch):
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", SENTINEL)


def test_generative_scores_through_gemini_and_a_rerun_makes_no_call(tmp_path, key):
    bench = make_bench(tmp_path / "bench")
    outputs = predictions(
        tmp_path, bench, "model", {"s00": scene(10), "s01": scene(4), "s02": scene(-3)}
    )
    cfg = DEFAULTS["evaluate"]["generative"] | {"backend": "gemini"}
    pricing = {"price": {"input": 0.3, "output": 2.5}, "batch_discount": 0.5}
    with GeminiStub(motion_answers) as stub:
        stub.script.append({"finish": "SAFETY"})  # one of the three calls is refused
        mllm = transport(tmp_path, stub.url)
        first = score(
            tmp_path, bench, outputs, scorer=GenerativeScorer(cfg, mllm, LOG), pricing=pricing
        )
        assert stub.count == 3  # s03 has no image: no call
        refused = first[first["mllm_error"].str.startswith("finish")]
        assert len(refused) == 1 and refused["mas"].notna().all()
        assert refused["overall"].isna().all()
        for id_ in {"s00", "s01", "s02"} - set(refused.index):
            row = first.loc[id_]
            assert row["mllm_error"] == "" and 0 <= row["fidelity"] <= 5
            mean = (row["fidelity"] + row["preservation"] + row["coherence"]) / 3
            assert row["overall"] == pytest.approx(mean, abs=1e-4)
            assert row["input_tokens"] > 0 and row["cost_usd"] > 0
        assert first.loc["s03", "error"].startswith("inference: missing prediction")
        assert first.loc["s03", "mllm_error"].startswith("images: ")
        assert first.loc["s01", "mllm_model"] == "gemini-2.5-flash"
        assert first.loc["s01", "prompt_version"] == "gen-v1"

        second = score(tmp_path, bench, outputs, scorer=GenerativeScorer(cfg, mllm, LOG))
        # Every answer, the refusal included, comes from the cache.
        assert stub.count == 3
    pd.testing.assert_frame_equal(
        first.drop(columns=["cost_usd"]), second.drop(columns=["cost_usd"])
    )
    raw = [
        json.loads(line)
        for line in (tmp_path / "eval" / "model" / "scores.raw.jsonl").read_text().splitlines()
    ]
    assert [r["id"] for r in raw] == ["s00", "s01", "s02", "s03"]
    scored = next(r for r in raw if r["scores"])
    assert scored["scores"]["reasons"]["fidelity"] and len(scored["calls"]) == 1
    text = (tmp_path / "eval" / "model" / "scores.raw.jsonl").read_text()
    assert SENTINEL not in text and "base64" not in text
