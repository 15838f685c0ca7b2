"""Pixel distances and the paired bootstrap used by the editor-quality benchmark."""

import numpy as np
import pytest
from PIL import Image

from motionedit.metrics.pixels import bootstrap_ci, pixel_distances


def test_pixel_distances_of_known_images():
    black = np.zeros((8, 8, 3), np.uint8)
    grey = np.full((8, 8, 3), 51, np.uint8)  # 0.2
    d = pixel_distances(black, grey)
    assert d["l1"] == pytest.approx(0.2) and d["psnr"] == pytest.approx(10 * np.log10(1 / 0.04))
    assert pixel_distances(grey, grey)["psnr"] == pytest.approx(120.0)


def test_target_is_resized_to_the_edit():
    target = Image.new("RGB", (64, 32), (10, 20, 30))
    edited = Image.new("RGB", (32, 16), (10, 20, 30))
    assert pixel_distances(edited, target)["l1"] == 0.0


def test_bootstrap_interval_covers_the_mean_and_narrows_with_data():
    rng = np.random.default_rng(1)
    small = rng.normal(1.0, 1.0, 20)
    large = rng.normal(1.0, 1.0, 2000)
    m, lo, hi = bootstrap_ci(small)
    assert lo < m < hi and m == pytest.approx(small.mean())
    _, lo2, hi2 = bootstrap_ci(large)
    assert hi2 - lo2 < (hi - lo) / 4 and lo2 < 1.0 < hi2
    assert bootstrap_ci(small, seed=3) == bootstrap_ci(small, seed=3)
