"""Does MotionNFT raise the benchmark MAS of the editor it post-trains? Where does a step go?

Runs the workflow (the real snakemake CLI) on a config (the default config.yaml unless
--config is given; --clips enlarges its synthetic corpus), then, for every `train` run and
the model that evaluates its LoRA, compares benchmark MAS with the models of the same
editor without it and with each SFT LoRA (the supervised baseline on the same pairs): per
benchmark pair, from the `evaluate` stage's scores, paired bootstrap 95% intervals of each
mean and of the difference. Prints the run's training curve (held-out MAS per evaluation
step, reward per step), the share of step time spent in sampling, reward and optimisation
(from its metrics.csv), and the wall time of the train job.

With --seeds N every model edits each pair with sampling seeds 0..N-1 (the workflow uses
seed 0) and a pair's MAS is the mean over them: on a benchmark of a dozen pairs the seed
alone moves the tiny editor's MAS by up to a point. Each model is also scored on every 4th
of the train pairs MotionNFT trained on (same seeds), which shows how far its benchmark MAS
lags what it does on those pairs.

With --train-seeds N each compared `train` run is trained N times, with seeds seed,
seed+1, ... (runs `<run>-seed<k>` added to the config, each with its model): a pair's
MotionNFT MAS is then the mean over those runs, and each run's own mean is printed, since
one training seed can move the benchmark MAS by as much as the effect being measured.

Last, it measures how much of the motion reward's spread within a prompt group, the
ranking DiffusionNFT learns from, survives an imperceptible jitter of the edits.

    .venv/bin/python benchmarks/motionnft_gain.py [--config FILE [FILE ...]] [--clips N]
        [--workdir DIR] [--seeds N] [--train-seeds N]
"""

from __future__ import annotations

import copy
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.editor_quality import (  # noqa: E402
    job_seconds,
    run_workflow,
    workflow_arguments,
)
from motionedit.config import evaluation_flow, validate_config  # noqa: E402
from motionedit.flow import make_flow  # noqa: E402
from motionedit.metrics import score_edits  # noqa: E402
from motionedit.metrics.pixels import bootstrap_ci  # noqa: E402
from motionedit.models import editor_settings, load_editor  # noqa: E402
from motionedit.training import load_pairs  # noqa: E402


def model_mas(workdir: Path, model: str) -> pd.Series:
    """MAS per benchmark id, from the workflow's own scores (samples without an image
    left out)."""
    scores = pd.read_parquet(workdir / "results" / "eval" / model / "scores.parquet")
    return scores[scores["error"] == ""].set_index("id")["mas"].rename(model)


_LOADED: dict[tuple[Path, str], Any] = {}


def loaded_model(workdir: Path, config: dict, model: str) -> Any:
    """The editor of `models.<model>` with its LoRA, loaded once per run of this script
    (the benchmark and the train pairs, and the reward-noise probe, all edit with it)."""
    key = (workdir, model)
    if key not in _LOADED:
        spec = config["models"][model]
        settings = editor_settings(config, spec["editor"])
        settings["source"] = str(workdir / settings["source"])
        adapter = load_editor(settings)
        if spec.get("lora"):
            adapter.load_lora(workdir / spec["lora"])
        _LOADED[key] = adapter
    return _LOADED[key]


_FLOW: dict[str, Any] = {}


def scoring_flow(config: dict) -> Any:
    """The evaluate stage's flow estimator, built once per run of this script (UniMatch
    loads its weights when built)."""
    spec = evaluation_flow(config)
    key = repr(spec)
    if key not in _FLOW:
        _FLOW[key] = make_flow(spec)
    return _FLOW[key]


def seed_mean_mas(
    workdir: Path, config: dict, model: str, split: str, seeds: int, videos: dict | None = None
) -> pd.Series:
    """MAS per pair of a split (of its `videos` part), averaged over sampling seeds
    0..seeds-1, edited and scored here with the evaluate stage's settings (its flow, its
    metric constants)."""
    adapter = loaded_model(workdir, config, model)
    pairs = load_pairs(workdir / "results" / "dataset" / split / "data.parquet", videos)
    if split == "train":
        pairs = pairs[::4]
    flow = scoring_flow(config)
    metrics = config["metrics"]
    total = np.zeros(len(pairs))
    for seed in range(seeds):
        with torch.no_grad():
            edited = [adapter.edit([p.input], [p.prompt], seed=seed)[0] for p in pairs]
        rows = score_edits(
            [p.input for p in pairs], edited, [p.target for p in pairs], flow,
            metrics["motion_reward"], metrics["mas"],
        )  # fmt: skip
        total += [r["mas"] for r in rows]
    return pd.Series(total / seeds, index=[p.id for p in pairs], name=model)


def reward_noise(
    workdir: Path, config: dict, model: str, run: dict, prompts: int = 20
) -> tuple[float, float, float]:
    """How much of the motion reward's spread within a group is the flow estimator's noise.

    The editor (as `model` runs it) makes `group_size` edits of each of `prompts` train
    pairs (seeds 0..K-1); each edit is scored, then scored again after a jitter of at most
    one grey level, which no one would call a different edit. Returns the mean standard
    deviation of the reward within a group, the mean change the jitter makes, and the mean
    rank correlation of a group's rewards before and after the jitter. DiffusionNFT learns
    from the ranking within groups; a ranking the jitter reshuffles is mostly noise.
    """
    adapter = loaded_model(workdir, config, model)
    pairs = load_pairs(workdir / "results" / "dataset" / "train" / "data.parquet", run["videos"])
    pairs = pairs[:: max(1, len(pairs) // prompts)][:prompts]
    flow = scoring_flow(config)
    rng = np.random.default_rng(0)
    spread, change, agreement = [], [], []
    for p in pairs:
        with torch.no_grad():
            edits = [
                adapter.edit([p.input], [p.prompt], seed=s)[0] for s in range(run["group_size"])
            ]
        jittered = [
            Image.fromarray(
                np.clip(
                    np.asarray(e, np.int16) + rng.integers(-1, 2, np.asarray(e).shape), 0, 255
                ).astype(np.uint8)
            )
            for e in edits
        ]
        k = len(edits)
        rows = score_edits(
            [p.input] * 2 * k, edits + jittered, [p.target] * 2 * k, flow,
            config["metrics"]["motion_reward"], config["metrics"]["mas"],
        )  # fmt: skip
        r = np.array([row["reward_continuous"] for row in rows])
        before, after = r[:k], r[k:]
        spread.append(before.std())
        change.append(np.abs(before - after).mean())
        ranks = pd.DataFrame({"before": before, "after": after}).rank()
        agreement.append(np.corrcoef(ranks["before"], ranks["after"])[0, 1])
    return float(np.mean(spread)), float(np.mean(change)), float(np.nanmean(agreement))


def pairs_to_compare(config: dict) -> list[tuple[str, str, list[str]]]:
    """(train run, model with its LoRA, models of the same editor to compare it with: the
    editor itself and the editor with each SFT LoRA, the baseline of the same data)."""
    out = []
    models = config["models"]
    for run, spec in config["train"].items():
        lora = f"results/train/{run}"
        tuned = [m for m, s in models.items() if (s.get("lora") or "").rstrip("/") == lora]
        bases = [
            m
            for m, s in models.items()
            if s["kind"] == "editor"
            and s["editor"] == spec["editor"]
            and (not s.get("lora") or s["lora"].startswith("results/models/"))
        ]
        if tuned and bases:
            out.append((run, tuned[0], bases))
    return out


def add_train_seeds(
    config: dict, full: dict, comparisons: list[tuple[str, str, list[str]]], n: int
) -> dict[str, list[tuple[str, str]]]:
    """Add to `config` n-1 copies of each compared train run that differ only in their seed,
    each with a model that evaluates its LoRA; returns, per run, its (run, model) variants,
    the configured one first."""
    variants = {}
    for run, tuned, _ in comparisons:
        seed = full["train"][run]["seed"]
        variants[run] = [(run, tuned)]
        for k in range(seed + 1, seed + n):
            name, model = f"{run}-seed{k}", f"{tuned}-seed{k}"
            config["train"][name] = {**config["train"][run], "seed": k}
            config["models"][model] = {**config["models"][tuned], "lora": f"results/train/{name}"}
            variants[run].append((name, model))
    return variants


def main() -> None:
    def options(ap: Any) -> None:
        ap.add_argument(
            "--seeds",
            type=int,
            default=1,
            help="sampling seeds per pair (default: 1, the workflow's own scores)",
        )
        ap.add_argument(
            "--train-seeds",
            type=int,
            default=1,
            help="MotionNFT runs per train run, one per training seed (default: 1)",
        )

    args, config, full = workflow_arguments(__doc__, options)
    comparisons = pairs_to_compare(full)
    if not comparisons:
        sys.exit("the config needs a `train` run, a model with its LoRA and one without")
    variants = add_train_seeds(config, full, comparisons, args.train_seeds)
    full = validate_config(copy.deepcopy(config))
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="motionnft-gain-"))
    run_workflow(config, workdir, args.cores)
    bench = pd.read_parquet(workdir / "results" / "dataset" / "bench" / "data.parquet")
    flow = full["evaluate"]["flow_backend"] or full["flow"]["backend"]
    print(f"workdir: {workdir}\nbenchmark pairs: {len(bench)}, flow: {flow}\n")
    if args.seeds > 1:
        print(f"MAS per pair: the mean over sampling seeds 0..{args.seeds - 1}\n")

    def bench_mas(model: str) -> pd.Series:
        if args.seeds == 1:
            return model_mas(workdir, model)
        return seed_mean_mas(workdir, full, model, "bench", args.seeds)

    def train_mas(models: list[str], videos: dict | None) -> str:
        means = [
            seed_mean_mas(workdir, full, m, "train", args.seeds, videos).mean() for m in models
        ]
        return f"{np.mean(means):.2f}"

    for run, tuned, bases in comparisons:
        videos = full["train"][run]["videos"]
        runs = [name for name, _ in variants[run]]
        tuned_models = [model for _, model in variants[run]]
        per_run = [bench_mas(m) for m in tuned_models]
        b = pd.concat(per_run, axis=1, join="inner").mean(axis=1)
        print(f"## train.{run}: {tuned}\n")
        if len(runs) > 1:
            each = ", ".join(f"{n} {m.mean():.2f}" for n, m in zip(runs, per_run, strict=True))
            print(f"{len(runs)} training seeds; a pair's MotionNFT MAS is their mean ({each})\n")
        print("| model | MAS [95% CI] | MotionNFT minus it [95% CI] | train-pair MAS |")
        print("|---|---|---|---|")
        m_b, lo_b, hi_b = bootstrap_ci(b.to_numpy())
        seen = train_mas(tuned_models, videos)
        print(f"| {tuned} (MotionNFT) | {m_b:.2f} [{lo_b:.2f}, {hi_b:.2f}] | | {seen} |")
        for base in bases:
            a = bench_mas(base)
            both = a.index.intersection(b.index)
            m_a, lo_a, hi_a = bootstrap_ci(a[both].to_numpy())
            d, lo_d, hi_d = bootstrap_ci((b[both] - a[both]).to_numpy())
            verdict = "significant" if lo_d > 0 or hi_d < 0 else "not significant"
            seen = train_mas([base], videos)
            print(f"| {base} | {m_a:.2f} [{lo_a:.2f}, {hi_a:.2f}] | {d:+.2f} [{lo_d:+.2f}, "
                  f"{hi_d:+.2f}], {verdict} ({len(both)} pairs) | {seen} |")  # fmt: skip
        print()
        print("training curve (held-out slice, the EMA policy, the editor's inference):")
        logs = {n: pd.read_csv(workdir / "results" / "train" / n / "metrics.csv") for n in runs}
        for name, metrics in logs.items():
            curve = metrics[metrics["eval_mas"].notna()][["step", "eval_mas"]]
            points = ", ".join(f"{int(s)}: {m:.2f}" for s, m in curve.itertuples(index=False))
            print(f"  {name}: {points}")
        steps = logs[run][logs[run]["step"] > 0]
        first, last = steps["reward_mean"].iloc[:10].mean(), steps["reward_mean"].iloc[-10:].mean()
        phases = steps[["sampling_s", "reward_s", "optimisation_s"]].sum()
        total = phases.sum()
        print(
            f"step time: {total / len(steps):.2f} s on average; sampling "
            f"{phases['sampling_s'] / total:.0%}, reward {phases['reward_s'] / total:.0%}, "
            f"optimisation {phases['optimisation_s'] / total:.0%}; groups filtered "
            f"{steps['filtered_fraction'].mean():.0%}; reward {first:.3f} (first 10 steps) -> "
            f"{last:.3f} (last 10)"
        )
        spread, change, agreement = reward_noise(workdir, full, bases[0], full["train"][run])
        print(
            f"motion reward of {bases[0]}'s {full['train'][run]['group_size']} edits of one "
            f"train prompt: std {spread:.4f} within a group; a jitter of at most one grey "
            f"level moves each reward by {change:.4f} on average; rank correlation of a "
            f"group's rewards before and after it {agreement:.2f}"
        )
        seconds = job_seconds(workdir, "train", run)
        if seconds is not None:
            print(f"train job: {seconds:.0f} s wall\n")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
