"""Pairwise win rates: every model against every other, sample by sample.

For two models and one benchmark sample the one with the higher score wins (1) and the
other loses (0); equal scores, within ``draw_margin``, are a draw (0.5 each). A model's win
rate is (wins + 0.5 draws) / comparisons, summed over all other models, as the paper
defines it.

Two kinds of missing score are told apart, because they mean different things:

* the model produced no image (``failed``): it loses to any model that did, and draws
  with another model that failed too. Leaving the sample out would reward a model for
  failing on the hard samples.
* the image exists but was not scored (an MLLM call failed): the sample is left out of
  every comparison with that model, since the failure says nothing about the edit.

Outcomes are kept per sample, so a bootstrap over samples (:func:`resampled_win_rates`)
gives the win rate's interval from the same resamples as every other metric.
"""

from __future__ import annotations

from itertools import permutations

import numpy as np
import pandas as pd


def outcomes(
    values: pd.DataFrame, failed: pd.DataFrame | None = None, draw_margin: float = 0.0
) -> dict[tuple[str, str], np.ndarray]:
    """Per sample, the result of model ``a`` against model ``b``: 1, 0.5, 0 or NaN (no
    comparison), keyed ``(a, b)``.

    ``values`` is samples x models (NaN: not scored); ``failed`` the same shape, True where
    the model made no image.
    """
    if failed is None:
        failed = pd.DataFrame(False, index=values.index, columns=values.columns)
    failed = failed.reindex_like(values).fillna(False).astype(bool)
    out = {}
    for a, b in permutations(values.columns, 2):
        va, vb = values[a].to_numpy(float), values[b].to_numpy(float)
        fa, fb = failed[a].to_numpy(), failed[b].to_numpy()
        diff = va - vb
        result = np.where(diff > draw_margin, 1.0, np.where(diff < -draw_margin, 0.0, 0.5))
        result = np.where(np.isnan(diff), np.nan, result)
        result = np.where(fa & ~fb & ~np.isnan(vb), 0.0, result)
        result = np.where(fb & ~fa & ~np.isnan(va), 1.0, result)
        result = np.where(fa & fb, 0.5, result)
        out[(a, b)] = result
    return out


def win_rates(results: dict[tuple[str, str], np.ndarray], models: list[str]) -> pd.DataFrame:
    """Per model: wins, draws, losses, comparisons and win rate (NaN with no comparisons)."""
    rows = []
    for a in models:
        per = [r for (x, _), r in results.items() if x == a]
        s = np.concatenate(per) if per else np.array([])
        s = s[~np.isnan(s)]
        n = int(s.size)
        rows.append(
            {
                "model": a,
                "wins": int((s == 1).sum()),
                "draws": int((s == 0.5).sum()),
                "losses": int((s == 0).sum()),
                "comparisons": n,
                "win_rate": float(s.sum() / n) if n else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def pairwise_matrix(results: dict[tuple[str, str], np.ndarray], models: list[str]) -> pd.DataFrame:
    """Row model's win rate against the column model alone (NaN on the diagonal)."""
    matrix = pd.DataFrame(np.nan, index=pd.Index(models, name="model"), columns=models)
    for (a, b), r in results.items():
        r = r[~np.isnan(r)]
        if r.size:
            matrix.loc[a, b] = float(r.mean())
    return matrix


def resampled_win_rates(
    results: dict[tuple[str, str], np.ndarray], models: list[str], counts: np.ndarray
) -> dict[str, np.ndarray]:
    """Each model's win rate under each bootstrap resample of the samples.

    ``counts`` is resamples x samples: how often each sample was drawn.
    """
    out = {}
    n = counts.shape[1]
    for a in models:
        score, valid = np.zeros(n), np.zeros(n)
        for (x, _), r in results.items():
            if x == a:
                ok = ~np.isnan(r)
                score += np.where(ok, r, 0.0)
                valid += ok
        with np.errstate(invalid="ignore", divide="ignore"):
            out[a] = (counts @ score) / (counts @ valid)
    return out
