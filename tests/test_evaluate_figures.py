"""The report figures render from small synthetic inputs, broken ones included, and rerun
to the same bytes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.font_manager import FontProperties
from PIL import Image

from motionedit.evaluate import figures
from motionedit.evaluate.figures import GridSample

#: Colour of a missing-edit tile (matplotlib grey "0.82" as 8-bit RGB).
GREY_TILE = (209, 209, 209)
#: First two colours of matplotlib's tab10 palette: the first and second model or run.
BLUE, ORANGE = (31, 119, 180), (255, 127, 14)


def png(path: Path) -> Image.Image:
    """The figure as RGB pixels, after checking it is a finished PNG of a sensible size."""
    assert path.is_file()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert "Software" not in image.info  # no version stamp that would change the bytes
        image.load()
        rgb = image.convert("RGB")
    assert 300 <= rgb.width <= 4000 and 200 <= rgb.height <= 20000, rgb.size
    assert not list(path.parent.glob(f".{path.name}*")), "temporary file left behind"
    return rgb


def count_colour(image: Image.Image, colour: tuple[int, int, int], tol: int = 2) -> int:
    pixels = np.asarray(image, dtype=int)
    return int((np.abs(pixels - np.array(colour)).max(axis=-1) <= tol).sum())


def metrics(steps: int = 30, eval_every: int = 10, offset: float = 0.0) -> pd.DataFrame:
    rows = [{"step": 0, "eval_mas": 80.0 + offset}]
    for step in range(1, steps + 1):
        rows.append(
            {
                "step": step,
                "loss": 0.1,
                "reward_mean": 0.8 + 0.003 * step + offset / 100,
                "reward_std": 0.02,
                "filtered_fraction": (step % 4) / 4,
                "reward_s": 0.1,  # a timing, not a reward component
                "reward_motion": 0.82 + 0.003 * step,
                "reward_appearance": 0.78,
                "eval_mas": 80.0 + offset + step / 10 if step % eval_every == 0 else math.nan,
            }
        )
    return pd.DataFrame(rows)


def write_image(path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> Path:
    Image.new("RGB", size, colour).save(path)
    return path


@pytest.fixture
def grid_inputs(tmp_path: Path) -> tuple[list[GridSample], list[str]]:
    """Two samples: mixed image sizes, and every way an edit can be missing."""
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    samples = []
    for i in range(2):
        inp = write_image(tmp_path / f"in{i}.png", (96, 64), (200, 60, 60))
        tgt = write_image(tmp_path / f"tg{i}.png", (96, 64), (60, 200, 60))
        small = write_image(tmp_path / f"small{i}.png", (8, 8), (40, 40, 220))
        samples.append(
            GridSample(
                id=f"clip_{i:04d}-abcdef_w000",
                instruction="Make the red subject turn left by about 45 degrees. " * (1 + 5 * i),
                category="orientation" if i == 0 else None,
                input=inp,
                target=tgt,
                edits={
                    "small": small,
                    "none": None,
                    "gone": tmp_path / "does-not-exist.png",
                    "corrupt": corrupt,
                },
                labels={"small": "MAS 81.2 | Overall 3.7", "corrupt": "MAS n/a"},
                errors={"none": "CUDA out of memory while decoding " + "x" * 300},
            )
        )
    return samples, ["small", "none", "gone", "corrupt"]


def test_mas_curves_draws_every_run(tmp_path: Path) -> None:
    runs = {"nft": metrics(), "nft-lr": metrics(offset=1.5), "crashed": metrics().iloc[1:5]}
    figures.mas_curves(runs, tmp_path / "mas.png")
    image = png(tmp_path / "mas.png")
    assert count_colour(image, BLUE) > 200 and count_colour(image, ORANGE) > 200


def test_reward_curves_draws_reward_band_and_skip_panel(tmp_path: Path) -> None:
    figures.reward_curves({"nft": metrics(), "empty": pd.DataFrame()}, tmp_path / "r.png")
    image = png(tmp_path / "r.png")
    assert count_colour(image, BLUE) > 500


@pytest.mark.parametrize("draw", [figures.mas_curves, figures.reward_curves])
def test_no_runs_gives_a_figure_not_an_exception(tmp_path: Path, draw) -> None:
    draw({}, tmp_path / "empty.png")
    png(tmp_path / "empty.png")


def test_sample_grid_renders_missing_corrupt_and_mixed_size_edits(
    tmp_path: Path, grid_inputs
) -> None:
    samples, models = grid_inputs
    figures.sample_grid(samples, models, tmp_path / "grid.png")
    image = png(tmp_path / "grid.png")
    # 2 rows x 3 broken edits are grey tiles; each tile is ~1.55 in = ~230 px square.
    assert count_colour(image, GREY_TILE, tol=1) > 6 * 0.5 * 230 * 230
    # The 8x8 edit is blown up to the tile size, not drawn at 8 px.
    assert count_colour(image, (40, 40, 220)) > 2 * 0.8 * 230 * 230


def test_sample_grid_grows_with_samples_and_models(tmp_path: Path, grid_inputs) -> None:
    samples, models = grid_inputs
    figures.sample_grid(samples[:1], models[:1], tmp_path / "a.png")
    figures.sample_grid(samples[:1], models, tmp_path / "b.png")
    figures.sample_grid(samples[:1] * 3, models, tmp_path / "c.png")
    a, b, c = (png(tmp_path / f"{n}.png") for n in "abc")
    assert b.width > a.width + 2 * 200 and b.height == a.height
    assert c.width == b.width and c.height > 2.5 * b.height


def test_sample_grid_without_samples_gives_a_figure(tmp_path: Path) -> None:
    figures.sample_grid([], ["a"], tmp_path / "none.png")
    png(tmp_path / "none.png")


def test_rerun_gives_identical_bytes(tmp_path: Path, grid_inputs) -> None:
    samples, models = grid_inputs
    for name in ("one", "two"):
        figures.sample_grid(samples, models, tmp_path / f"grid-{name}.png")
        figures.mas_curves({"nft": metrics()}, tmp_path / f"mas-{name}.png")
    for kind in ("grid", "mas"):
        one = (tmp_path / f"{kind}-one.png").read_bytes()
        assert one == (tmp_path / f"{kind}-two.png").read_bytes()


STATS = {
    "videos": {"total": 160, "usable": 150},
    "windows": {"total": 322, "extracted": 322},
    "prefilter": {"candidates": 322, "kept": 198, "reasons": {"ok": 198, "static": 29}},
    "judge": {"judged": 198, "kept": 152, "reasons": {"ok": 152, "quality:noise": 46}},
    "dataset": {"train": {"pairs": 138}, "bench": {"pairs": 14}},
}


@pytest.mark.parametrize(
    "stats",
    [STATS, {}, {"judge": {"reasons": {"ok": 3}}}, {"prefilter": {"kept": 5, "reasons": None}}],
    ids=["full", "empty", "only-ok", "partial"],
)
def test_dataset_funnel_shows_what_is_there(tmp_path: Path, stats: dict) -> None:
    figures.dataset_funnel(stats, tmp_path / "funnel.png")
    png(tmp_path / "funnel.png")


def test_category_histogram_counts_unknown_categories(tmp_path: Path) -> None:
    table = pd.DataFrame(
        {
            "split": ["train"] * 5 + ["bench"] * 2,
            "category": ["pose", "pose", None, np.nan, "locomotion", "pose", None],
        }
    )
    figures.category_histogram(table, tmp_path / "cat.png")
    png(tmp_path / "cat.png")
    figures.category_histogram(table.iloc[:0], tmp_path / "none.png")
    png(tmp_path / "none.png")


def scores(b_values: list[float]) -> pd.DataFrame:
    cats = ["pose", "locomotion", "all"]
    a = [60.0, 70.0, 65.0]
    return pd.DataFrame(
        {
            "model": ["a"] * 3 + ["b"] * 3,
            "category": cats * 2,
            "n": [4, 6, 10] * 2,
            "mas": a + b_values,
            "mas_lo": [v - 5 for v in a] + [math.nan] * 3,
            "mas_hi": [v + 5 for v in a] + [math.nan] * 3,
        }
    )


def test_metric_by_category_leaves_nan_out(tmp_path: Path) -> None:
    figures.metric_by_category(scores([50.0, 55.0, 52.0]), "mas", tmp_path / "full.png")
    figures.metric_by_category(scores([math.nan] * 3), "mas", tmp_path / "nan.png", label="MAS")
    full, nan = png(tmp_path / "full.png"), png(tmp_path / "nan.png")
    # Model b's bars are orange; with NaN scores only its legend swatch remains.
    assert count_colour(full, ORANGE) > 5000
    assert count_colour(nan, ORANGE) < 1000
    assert count_colour(nan, BLUE) > 5000


def test_metric_by_category_with_no_values_gives_a_figure(tmp_path: Path) -> None:
    table = scores([math.nan] * 3).assign(mas=math.nan)
    figures.metric_by_category(table, "mas", tmp_path / "m.png")
    png(tmp_path / "m.png")
    figures.metric_by_category(pd.DataFrame(), "mas", tmp_path / "e.png")
    png(tmp_path / "e.png")


def test_wrapped_text_never_runs_past_its_width() -> None:
    # Measured as the figures draw it: with the Agg renderer at their dpi.
    renderer = RendererAgg(1, 1, figures.DPI)

    def width_pt(line: str, size: float, **font) -> float:
        prop = FontProperties(size=size, **font)
        return renderer.get_text_width_height_descent(line, prop, False)[0] * 72 / figures.DPI

    text = "Make the yellow subject_with_a_very_long_identifier_name rotate " * 6
    for font in ({}, {"weight": "bold"}, {"style": "italic"}):
        lines = figures._wrap(text, 150.0, 9.0, 3, **font)
        assert len(lines) == 3 and lines[-1].endswith("…")
        assert all(width_pt(line, 9.0, **font) <= 150.0 for line in lines)
    # Glyphs much wider than the average still fit.
    assert all(width_pt(line, 7.0) <= 100.0 for line in figures._wrap("W" * 80, 100.0, 7.0, 9))
    # Score labels break at their " | " separators, never inside "MAS 81.2".
    label = figures._score_lines("MAS 81.2 | Overall 3.7 | Win 0.53", 110.0)
    assert [line.replace("\xa0", " ") for line in label] == ["MAS 81.2 | Overall 3.7", "Win 0.53"]
