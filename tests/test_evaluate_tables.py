"""Win rates, bootstrap intervals and the Table 1 layout, on hand-made score tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from motionedit.evaluate.summary import write_summary
from motionedit.evaluate.tables import (
    dataset_motion,
    markdown_table1,
    mean_ci,
    per_category,
    resample_counts,
    summarize,
    win_basis,
)
from motionedit.evaluate.winrate import outcomes, pairwise_matrix, win_rates
from motionedit.runlog import setup_logging
from motionedit.tables import write_table

SETTINGS = {"draw_margin": 0.0, "resamples": 500, "level": 0.95, "seed": 0}


def test_win_rate_arithmetic_with_draws():
    # Three samples, three models. a vs b: win, draw, loss. a vs c: win, win, draw.
    # b vs c: win, win, win.
    values = pd.DataFrame(
        {"a": [3.0, 2.0, 1.0], "b": [2.0, 2.0, 4.0], "c": [1.0, 0.0, 1.0]},
        index=["s1", "s2", "s3"],
    )
    results = outcomes(values)
    assert results[("a", "b")].tolist() == [1.0, 0.5, 0.0]
    assert results[("b", "a")].tolist() == [0.0, 0.5, 1.0]
    table = win_rates(results, ["a", "b", "c"]).set_index("model")
    # a: (1 + 0.5 + 0) + (1 + 1 + 0.5) = 4 of 6 comparisons
    assert table.loc["a", "win_rate"] == pytest.approx(4 / 6)
    assert (table.loc["a", "wins"], table.loc["a", "draws"], table.loc["a", "losses"]) == (3, 2, 1)
    # b: (0 + 0.5 + 1) + 3 = 4.5 of 6; c: (0 + 0 + 0.5) + 0 = 0.5 of 6
    assert table.loc["b", "win_rate"] == pytest.approx(4.5 / 6)
    assert table.loc["c", "win_rate"] == pytest.approx(0.5 / 6)
    # Every comparison hands out exactly one point in total.
    assert table["win_rate"].sum() * 6 == pytest.approx(3 * 3)
    matrix = pairwise_matrix(results, ["a", "b", "c"])
    assert matrix.loc["a", "b"] == pytest.approx(0.5) and matrix.loc["b", "c"] == 1.0
    assert np.isnan(matrix.loc["a", "a"])


def test_draw_margin_turns_close_scores_into_draws():
    values = pd.DataFrame({"a": [50.0, 60.0], "b": [49.5, 50.0]})
    assert outcomes(values, draw_margin=1.0)[("a", "b")].tolist() == [0.5, 1.0]
    assert outcomes(values)[("a", "b")].tolist() == [1.0, 1.0]


def test_a_model_without_an_image_loses_but_an_unscored_sample_is_left_out():
    values = pd.DataFrame({"a": [np.nan, np.nan, 2.0], "b": [3.0, np.nan, np.nan]})
    failed = pd.DataFrame({"a": [True, False, False], "b": [False, True, True]})
    # s1: a made no image -> loses. s2: a's score is missing (MLLM error), b failed ->
    # no comparison (a's edit exists but is unscored). s3: b made no image -> a wins.
    assert outcomes(values, failed)[("a", "b")][[0, 2]].tolist() == [0.0, 1.0]
    assert np.isnan(outcomes(values, failed)[("a", "b")][1])
    both_failed = pd.DataFrame({"a": [np.nan], "b": [np.nan]})
    assert outcomes(both_failed, pd.DataFrame({"a": [True], "b": [True]}))[("a", "b")] == [0.5]


def test_bootstrap_interval_is_seeded_and_contains_the_mean():
    values = np.arange(20, dtype=float)
    counts = resample_counts(20, 1000, seed=3)
    assert counts.sum(axis=1).tolist() == [20.0] * 1000
    mean, lo, hi = mean_ci(values, counts, 0.95)
    assert mean == 9.5 and lo < 9.5 < hi and hi - lo < 10
    assert (lo, hi) == mean_ci(values, resample_counts(20, 1000, seed=3), 0.95)[1:]
    assert (lo, hi) != mean_ci(values, resample_counts(20, 1000, seed=4), 0.95)[1:]
    # Missing scores are left out of the mean and of every resample.
    with_nan = np.append(values, np.nan)
    assert mean_ci(with_nan, resample_counts(21, 1000, seed=3), 0.95)[0] == 9.5
    assert all(np.isnan(mean_ci(np.full(3, np.nan), resample_counts(3, 10, 0), 0.95)))


def _scores(model: str, mas: list[float], overall: list[float] | None = None, **extra) -> list:
    rows = []
    for i, m in enumerate(mas):
        rows.append(
            {
                "model": model,
                "id": f"s{i}",
                "category": "pose" if i % 2 == 0 else "position",
                "mas": m,
                "static": m == 0.0,
                "error": "",
                "mllm_error": "",
                "fidelity": None if overall is None else overall[i],
                "preservation": None if overall is None else overall[i],
                "coherence": None if overall is None else overall[i],
                "overall": None if overall is None else overall[i],
            }
            | {k: v[i] for k, v in extra.items()}
        )
    return rows


def test_table1_on_mas_when_no_mllm_scored_and_labelled_so():
    scores = pd.DataFrame(
        _scores("do-nothing", [0.0, 0.0, 0.0, 0.0])
        + _scores("editor", [60.0, 70.0, 0.0, 80.0])
        + _scores("broken", [90.0, float("nan"), 10.0, 10.0], error=["", "missing image", "", ""])
    ).astype({"fidelity": float, "preservation": float, "coherence": float, "overall": float})
    models = ["do-nothing", "editor", "broken"]
    assert win_basis(scores, "auto") == "mas"
    summary, matrix = summarize(scores, models, basis="mas", **SETTINGS)
    s = summary.set_index("model")
    assert s.loc["editor", "mas"] == 52.5 and s.loc["do-nothing", "static"] == 4
    assert s.loc["broken", "errors"] == 1 and s.loc["broken", "mas"] == pytest.approx(110 / 3)
    # editor vs do-nothing: 3 wins, 1 draw (both 0); vs broken: loss, win (no image), loss, win
    assert matrix.loc["editor", "do-nothing"] == pytest.approx(3.5 / 4)
    assert matrix.loc["editor", "broken"] == pytest.approx(2 / 4)
    assert s.loc["editor", "win_rate"] == pytest.approx(5.5 / 8)
    assert s.loc["editor", "win_rate_lo"] <= s.loc["editor", "win_rate"]
    assert s.loc["editor", "win_rate"] <= s.loc["editor", "win_rate_hi"]
    assert summary["overall"].isna().all()
    md = markdown_table1(summary, 0.95)
    assert "Win Rate on MAS (%)" in md and "compares MAS instead of Overall" in md
    assert "| `editor` | – | – | – | – | 52.50 [" in md
    assert "3 / 4" in md  # broken made 3 of 4 images


def test_win_rate_is_on_overall_when_the_mllm_scored():
    scores = pd.DataFrame(
        _scores("a", [10.0, 10.0], overall=[4.0, 3.0]) + _scores("b", [90.0, 90.0], [2.0, 3.0])
    )
    assert win_basis(scores, "auto") == "overall"
    summary, _ = summarize(scores, ["a", "b"], basis="overall", **SETTINGS)
    # a is better on Overall (win, draw) although much worse on MAS.
    assert summary.set_index("model").loc["a", "win_rate"] == 0.75
    assert "Win Rate on Overall (%)" in markdown_table1(summary, 0.95)


def test_per_category_tables_and_files_are_byte_identical(tmp_path):
    paths = {}
    for model, mas in (("a", [10.0, 20.0, 30.0, 40.0]), ("b", [15.0, 15.0, 35.0, 35.0])):
        df = pd.DataFrame(_scores(model, mas)).drop(columns="model")
        write_table(df, tmp_path / model / "scores.parquet")
        paths[model] = tmp_path / model / "scores.parquet"
    table = per_category(
        pd.concat(pd.DataFrame(_scores(m, v)) for m, v in (("a", [1, 2, 3, 4]), ("b", [2] * 4))),
        ["a", "b"],
        basis="mas",
        **SETTINGS,
    )
    assert table[["category", "model"]].values.tolist() == [
        ["pose", "a"], ["pose", "b"], ["position", "a"], ["position", "b"],
    ]  # fmt: skip
    assert table.set_index(["category", "model"]).loc[("position", "a"), "mas"] == 3.0

    settings = {
        "win_rate": {"basis": "auto", "draw_margin": 0.0},
        "bootstrap": {"resamples": 200, "level": 0.9},
    }
    log = setup_logging(None, "test-summary")
    written = []
    for run in ("one", "two"):
        out = {
            k: str(tmp_path / run / f"{k}.{'md' if k.endswith('_md') else 'csv'}")
            for k in ("summary", "summary_md", "per_category", "per_category_md", "winrate")
        }
        (tmp_path / run).mkdir()
        write_summary(paths, settings, 7, out, log)
        written.append({k: Path(v).read_bytes() for k, v in out.items()})
    assert written[0] == written[1]
    assert b"90% bootstrap interval" in written[0]["summary_md"]


def test_dataset_motion_statistics_per_split_and_category():
    train = pd.DataFrame(
        {
            "category": ["pose", "pose", None],
            "video_id": ["v1", "v1", "v2"],
            "motion_mean": [0.01, 0.03, 0.05],
            "motion_peak": [0.1, 0.2, 0.3],
        }
    )
    table = dataset_motion({"train": train}).set_index(["split", "category"])
    assert table.loc[("train", "all"), "pairs"] == 3 and table.loc[("train", "all"), "videos"] == 2
    assert table.loc[("train", "pose"), "motion_mean"] == pytest.approx(0.02)
    assert table.loc[("train", "unknown"), "pairs"] == 1


def test_the_papers_numbers_are_printed_beside_ours(tmp_path):
    """A model that names its row of the paper's Table 1 gets the published numbers beside
    its own; a model that names none gets an empty row; a name not in the table is refused."""
    paths = {}
    for model, mas in (("ours", [50.0, 60.0, 55.0, 65.0]), ("other", [20.0] * 4)):
        df = pd.DataFrame(_scores(model, mas)).drop(columns="model")
        write_table(df, tmp_path / model / "scores.parquet")
        paths[model] = tmp_path / model / "scores.parquet"
    settings = {
        "win_rate": {"basis": "auto", "draw_margin": 0.0},
        "bootstrap": {"resamples": 100, "level": 0.95},
    }
    out = {
        k: str(tmp_path / f"{k}.{'md' if k.endswith('_md') else 'csv'}")
        for k in ("summary", "summary_md", "per_category", "per_category_md", "winrate")
    }
    paper = {"ours": "Qwen-Image-Edit + MotionNFT", "other": None}
    summary = write_summary(paths, settings, 0, out, setup_logging(None, "test"), paper=paper)
    row = summary.set_index("model").loc["ours"]
    assert (row["paper_mas"], row["paper_overall"], row["paper_win_rate"]) == (57.23, 4.72, 73.67)
    assert pd.isna(summary.set_index("model").loc["other", "paper_mas"])
    text = Path(out["summary_md"]).read_text()
    assert "## Beside the paper's Table 1" in text
    assert "| `ours` | Qwen-Image-Edit + MotionNFT | – | 4.72 | 57.50 | 57.23 |" in text
    assert "`other`" not in text.split("## Beside the paper's Table 1")[1].split("## Pairwise")[0]

    write_summary(paths, settings, 0, out, setup_logging(None, "test"))
    assert "Beside the paper" not in Path(out["summary_md"]).read_text()
    assert "paper_mas" not in pd.read_csv(out["summary"]).columns


def test_a_paper_row_that_is_not_in_the_table_is_refused():
    from conftest import ROOT

    from motionedit.config import ConfigError, load_config, validate_config

    config = load_config(ROOT / "config.yaml")
    config["models"]["tiny"]["paper"] = "Qwen-Image-Edit (2509)"
    with pytest.raises(ConfigError, match=r"models\.tiny\.paper: .*use one of: Instruct-P2P"):
        validate_config(config)
