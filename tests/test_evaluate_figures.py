"""The report figures render from small synthetic inputs, broken ones included, and rerun
to the same bytes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Rectangle
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


@pytest.fixture
def drawn(monkeypatch) -> dict[str, Figure]:
    """Each Figure a drawing function saved, by file name.

    The functions only write PNGs; reading their Figure back checks what is drawn (which
    bars, how tall, which lines through which points) where pixel counts could only tell
    that something of a colour is there.
    """
    figs: dict[str, Figure] = {}
    save = figures._save

    def keep(fig: Figure, path: str | Path) -> None:
        figs[Path(path).name] = fig
        save(fig, path)

    monkeypatch.setattr(figures, "_save", keep)
    return figs


def rgb255(colour) -> tuple[int, int, int]:
    return tuple(round(255 * c) for c in to_rgb(colour))


def texts(fig: Figure) -> list[str]:
    """Every piece of text in the figure, legends and ticks included, spaces made plain."""
    found = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]
    return [t.replace("\xa0", " ") for t in found if isinstance(t, str) and t]


def bars(ax) -> dict[tuple[int, int, int], list[tuple[float, float]]]:
    """The bars of an axes by colour: (x centre, height) of each, left to right."""
    found: dict[tuple[int, int, int], list[tuple[float, float]]] = {}
    for patch in ax.patches:
        if isinstance(patch, Rectangle):
            centre = patch.get_x() + patch.get_width() / 2
            found.setdefault(rgb255(patch.get_facecolor()), []).append((centre, patch.get_height()))
    return {colour: sorted(b) for colour, b in found.items()}


def hbars(ax) -> dict[str, float]:
    """Horizontal bars as {y tick label: total width} (a row's stacked parts summed)."""
    labels = {
        round(t): label.get_text()
        for t, label in zip(ax.get_yticks(), ax.get_yticklabels(), strict=True)
    }
    widths: dict[str, float] = {}
    for patch in ax.patches:
        row = labels[round(patch.get_y() + patch.get_height() / 2)]
        widths[row] = widths.get(row, 0.0) + patch.get_width()
    return widths


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


def test_mas_curves_draws_every_run(tmp_path: Path, drawn) -> None:
    runs = {"nft": metrics(), "nft-lr": metrics(offset=1.5), "crashed": metrics().iloc[1:5]}
    figures.mas_curves(runs, tmp_path / "mas.png")
    image = png(tmp_path / "mas.png")
    assert count_colour(image, BLUE) > 200 and count_colour(image, ORANGE) > 200
    fig = drawn["mas.png"]
    [ax] = fig.axes
    curves = {line.get_label(): line for line in ax.lines if not line.get_label().startswith("_")}
    assert list(curves) == ["nft", "nft-lr"]
    for name, colour, offset in (("nft", BLUE, 0.0), ("nft-lr", ORANGE, 1.5)):
        # Only the evaluated steps, NaN rows skipped: the base model at 0, then every 10.
        assert list(curves[name].get_xdata()) == [0, 10, 20, 30]
        assert list(curves[name].get_ydata()) == pytest.approx(
            [80 + offset + s for s in (0, 1, 2, 3)]
        )
        assert rgb255(curves[name].get_color()) == colour
    # The run without an evaluation is still listed, and so is each run's base level.
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["nft", "nft-lr", "crashed (no evaluation)", "base model (step 0)"]
    assert {"base 80.00", "base 81.50"} <= set(texts(fig))


def test_reward_curves_draws_reward_band_and_skip_panel(tmp_path: Path, drawn) -> None:
    figures.reward_curves({"nft": metrics(), "empty": pd.DataFrame()}, tmp_path / "r.png")
    image = png(tmp_path / "r.png")
    assert count_colour(image, BLUE) > 500
    fig = drawn["r.png"]
    ax, ax_skip = fig.axes
    steps = np.arange(1, 31)
    mean = 0.8 + 0.003 * steps
    # The band: mean ± std (0.02) over every training step, in the run's colour.
    [band] = ax.collections
    ys = band.get_paths()[0].vertices[:, 1]
    assert (ys.min(), ys.max()) == pytest.approx((mean.min() - 0.02, mean.max() + 0.02))
    assert rgb255(band.get_facecolor()[0]) == BLUE
    # The mean and one line per reward component, not the reward_s timing.
    total, motion, appearance = ax.lines
    assert list(total.get_ydata()) == pytest.approx(mean)
    assert list(motion.get_ydata()) == pytest.approx(0.82 + 0.003 * steps)
    assert list(appearance.get_ydata()) == pytest.approx([0.78] * 30)
    styles = {motion.get_linestyle(), appearance.get_linestyle()}
    assert total.get_linestyle() == "-" and styles == {"--", ":"}
    # The skip panel: the share of groups the filter skipped, in percent.
    [skipped] = ax_skip.lines
    assert list(skipped.get_xdata()) == list(steps)
    assert list(skipped.get_ydata()) == pytest.approx(100 * (steps % 4) / 4)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:2] == ["nft", "empty (no training rows)"]
    assert "motion component (mean)" in legend and "appearance component (mean)" in legend
    assert not any(label.startswith("s component") for label in legend)


@pytest.mark.parametrize("draw", [figures.mas_curves, figures.reward_curves])
def test_no_runs_gives_a_figure_not_an_exception(tmp_path: Path, draw, drawn) -> None:
    draw({}, tmp_path / "empty.png")
    png(tmp_path / "empty.png")
    assert "no MotionNFT runs configured" in texts(drawn["empty.png"])


def test_sample_grid_renders_missing_corrupt_and_mixed_size_edits(
    tmp_path: Path, grid_inputs, drawn
) -> None:
    samples, models = grid_inputs
    figures.sample_grid(samples, models, tmp_path / "grid.png")
    image = png(tmp_path / "grid.png")
    # 2 rows x 3 broken edits are grey tiles; each tile is ~1.55 in = ~230 px square.
    assert count_colour(image, GREY_TILE, tol=1) > 6 * 0.5 * 230 * 230
    # The 8x8 edit is blown up to the tile size, not drawn at 8 px.
    assert count_colour(image, (40, 40, 220)) > 2 * 0.8 * 230 * 230
    # Tile by tile (input, target, then the models): an image where there is one, at its
    # own pixel size, and otherwise the reason in the grey tile.
    fig = drawn["grid.png"]
    tiles = fig.axes
    assert len(tiles) == 2 * (2 + len(models))
    for row in range(2):
        inp, tgt, small, none, gone, corrupt = tiles[row * 6 : row * 6 + 6]
        shapes = [
            tile.images[0].get_array().shape[:2] if tile.images else None
            for tile in (inp, tgt, small)
        ]
        assert shapes == [(64, 96), (64, 96), (8, 8)]
        reasons = [
            " ".join(t.get_text() for t in tile.texts).replace("-\n", "-").replace("\n", " ")
            for tile in (none, gone, corrupt)
        ]  # unwrapped
        assert all(not tile.images for tile in (none, gone, corrupt))
        assert reasons[0].startswith("CUDA out of memory")  # the model's own error
        assert reasons[1] == "file not found: does-not-exist.png"
        assert reasons[2].startswith("unreadable image: UnidentifiedImageError")
    shown = texts(fig)
    assert "96×64 px" in shown and "8×8 px" in shown


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
def test_dataset_funnel_shows_what_is_there(tmp_path: Path, stats: dict, drawn) -> None:
    figures.dataset_funnel(stats, tmp_path / "funnel.png")
    png(tmp_path / "funnel.png")
    fig = drawn["funnel.png"]
    if not fig.axes:  # nothing but "ok" reasons, or nothing at all: a figure saying so
        assert stats in ({}, {"judge": {"reasons": {"ok": 3}}})
        assert "no dataset statistics recorded" in texts(fig)
        return
    stages, reasons = fig.axes[:2]
    expected_stages = {
        "full": {
            "videos": 160, "usable videos": 150, "clip windows": 322, "prefilter kept": 198,
            "judge kept": 152, "pairs (train + bench)": 138 + 14,
        },
        "partial": {"prefilter kept": 5},
    }  # fmt: skip
    expected_reasons = {"full": {"quality:noise": 46, "static": 29}, "partial": {}}
    kind = "full" if stats is STATS else "partial"
    assert hbars(stages) == expected_stages[kind]
    assert hbars(reasons) == expected_reasons[kind]  # "ok" is what was kept, not a drop
    if kind == "partial":
        assert "no drop reasons recorded" in texts(fig)


def test_category_histogram_counts_unknown_categories(tmp_path: Path, drawn) -> None:
    table = pd.DataFrame(
        {
            "split": ["train"] * 5 + ["bench"] * 2,
            "category": ["pose", "pose", None, np.nan, "locomotion", "pose", None],
        }
    )
    figures.category_histogram(table, tmp_path / "cat.png")
    png(tmp_path / "cat.png")
    [ax] = drawn["cat.png"].axes
    # Most pairs first, then the ones without a category (None and NaN alike) as "unknown".
    assert [t.get_text() for t in ax.get_xticklabels()] == ["pose", "locomotion", "unknown"]
    heights = {colour: [h for _, h in b] for colour, b in bars(ax).items()}
    assert heights == {rgb255("#4c72b0"): [2, 1, 2], rgb255("#dd8452"): [1, 0, 1]}
    legend = [t.get_text() for t in drawn["cat.png"].legends[0].get_texts()]
    assert legend == ["train (5 pairs)", "bench (2 pairs)"]
    figures.category_histogram(table.iloc[:0], tmp_path / "none.png")
    png(tmp_path / "none.png")
    assert "no pairs to count" in texts(drawn["none.png"])


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


def test_metric_by_category_leaves_nan_out(tmp_path: Path, drawn) -> None:
    figures.metric_by_category(scores([50.0, 55.0, 52.0]), "mas", tmp_path / "full.png")
    figures.metric_by_category(scores([math.nan] * 3), "mas", tmp_path / "nan.png", label="MAS")
    full, nan = png(tmp_path / "full.png"), png(tmp_path / "nan.png")
    # Model b's bars are orange; with NaN scores only its legend swatch remains.
    assert count_colour(full, ORANGE) > 5000
    assert count_colour(nan, ORANGE) < 1000
    assert count_colour(nan, BLUE) > 5000
    # One bar per category and model, as tall as its score; a NaN score has no bar at all
    # (a zero-height one would read as a score of 0).
    [ax_full], [ax_nan] = drawn["full.png"].axes, drawn["nan.png"].axes
    for ax in (ax_full, ax_nan):
        assert [t.get_text() for t in ax.get_xticklabels()] == [
            "pose\n(n=4)",
            "locomotion\n(n=6)",
            "all\n(n=10)",
        ]
    full_bars, nan_bars = bars(ax_full), bars(ax_nan)
    assert [h for _, h in full_bars[BLUE]] == [60.0, 70.0, 65.0]
    assert [h for _, h in full_bars[ORANGE]] == [50.0, 55.0, 52.0]
    # Side by side within each category: a's bar left of b's.
    assert all(
        a < b < a + 1 for (a, _), (b, _) in zip(full_bars[BLUE], full_bars[ORANGE], strict=True)
    )
    assert [h for _, h in nan_bars[BLUE]] == [60.0, 70.0, 65.0] and ORANGE not in nan_bars
    # Only a's scores have an interval, drawn as a whisker from lo to hi on each of its bars.
    [whiskers] = [c for c in ax_nan.collections if len(c.get_segments()) == 3]
    spans = sorted((seg[:, 1].min(), seg[:, 1].max()) for seg in whiskers.get_segments())
    assert spans == [(55.0, 65.0), (60.0, 70.0), (65.0, 75.0)]


def test_metric_by_category_with_no_values_gives_a_figure(tmp_path: Path, drawn) -> None:
    table = scores([math.nan] * 3).assign(mas=math.nan)
    figures.metric_by_category(table, "mas", tmp_path / "m.png")
    png(tmp_path / "m.png")
    assert "no mas values to show (all NaN)" in texts(drawn["m.png"])
    figures.metric_by_category(pd.DataFrame(), "mas", tmp_path / "e.png")
    png(tmp_path / "e.png")
    assert "no mas values to show" in texts(drawn["e.png"])


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
