"""Supervised flow-matching fine-tuning of an editor on the train split.

For the large editors this is a LoRA on the transformer: the baseline the paper does not
report (does plain supervised training on MotionEdit already give what MotionNFT gives?).
For ``tiny`` it trains everything from random weights, which is how the offline default
gets an editor at all: first the VAE as an autoencoder, then the transformer and both
text encoders together.

The loss is the rectified-flow objective every adapter shares: draw sigma, form
``x = (1 - sigma) x0 + sigma noise`` from the target's latents, and regress the
transformer's velocity on ``noise - x0`` given the instruction and the input frame.

A run is resumable: every ``checkpoint_every`` steps the trainable weights, optimiser,
schedule, EMA and every random state go to ``results/checkpoints/sft/<run>/``, outside
the rule's output (which Snakemake deletes when a job fails), and a rerun with the same
settings continues from there and ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from motionedit.models import EditorAdapter, ModelError, load_editor
from motionedit.runlog import progress
from motionedit.training import (
    BucketSampler,
    Checkpoints,
    Pair,
    batches_by_size,
    load_pairs,
    no_pairs_error,
    rng_state,
    sample_sigmas,
    set_rng_state,
    settings_digest,
)

LOG_COLUMNS = ["stage", "step", "loss", "lr", "seconds"]


def flow_matching_loss(
    adapter: EditorAdapter,
    cond: Any,
    x0: torch.Tensor,
    sigma: torch.Tensor,
    noise: torch.Tensor,
) -> torch.Tensor:
    """Mean squared error between the predicted velocity and ``noise - x0``."""
    s = sigma.to(x0.device, x0.dtype).view(-1, 1, 1)
    x_t = (1 - s) * x0 + s * noise
    v = adapter.velocity(x_t, sigma.to(x0.device), cond)
    return torch.nn.functional.mse_loss(v.float(), (noise - x0).float())


def _lr_lambda(warmup: int, total: int) -> Callable[[int], float]:
    """Linear warm-up then cosine decay to 10%: stable from random weights, no tuning per run."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        frac = (step - warmup) / max(1, total - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))

    return f


def _trainable(adapter: EditorAdapter, from_scratch: bool) -> list[torch.nn.Module]:
    pipe = adapter.pipe
    if from_scratch:
        return [pipe.transformer, pipe.text_encoder, pipe.text_encoder_2]
    return [pipe.transformer]


def _trainable_state(modules: list[torch.nn.Module]) -> list[dict[str, torch.Tensor]]:
    return [
        {n: p.detach().clone() for n, p in m.named_parameters() if p.requires_grad} for m in modules
    ]


def _load_trainable_state(modules: list[torch.nn.Module], states: list[dict]) -> None:
    for module, state in zip(modules, states, strict=True):
        params = dict(module.named_parameters())
        with torch.no_grad():
            for name, value in state.items():
                params[name].copy_(value)


def _rng_streams(generator: torch.Generator, sampler: BucketSampler) -> dict[str, Any]:
    """The run's random generators by the names its checkpoints give them."""
    return {
        "torch": generator,
        "numpy": sampler.rng,
        "python": random,
        "torch_global": torch.default_generator,
    }


def train_flow_matching(
    adapter: EditorAdapter,
    pairs: list[Pair],
    run: dict[str, Any],
    checkpoints: Checkpoints,
    log_rows: list[dict[str, Any]],
    logger: logging.Logger,
    stage: str = "transformer",
    extra_state: dict[str, Any] | None = None,
) -> None:
    """The supervised loop over ``adapter``'s trainable parameters; resumes from ``checkpoints``."""
    modules = _trainable(adapter, bool(run["from_scratch"]))
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    if not params:
        raise ModelError("sft: nothing to train (no parameter requires grad)")
    for m in modules:
        m.train()
    # foreach: the same update bit for bit, in fewer calls (CPU defaults to one per tensor)
    optimiser = torch.optim.AdamW(
        params, lr=run["lr"], weight_decay=run["weight_decay"], foreach=True
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, _lr_lambda(run["warmup_steps"], run["steps"])
    )
    generator = torch.Generator().manual_seed(run["seed"] + 1)
    sampler = BucketSampler(batches_by_size(adapter, pairs), run["batch_size"], run["seed"])
    ema = _trainable_state(modules) if run["ema_decay"] > 0 else None
    start = 0
    state = checkpoints.load()
    if state is not None and state.get("stage") == stage:
        _load_trainable_state(modules, state["weights"])
        optimiser.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["schedule"])
        set_rng_state(state["rng"], _rng_streams(generator, sampler))
        ema = state["ema"]
        log_rows[:] = state["log"]
        start = state["step"]
        logger.info("%s: resumed at step %d of %d", stage, start, run["steps"])

    def save(step: int) -> None:
        checkpoints.save(
            {
                "stage": stage,
                "step": step,
                "weights": _trainable_state(modules),
                "optimiser": optimiser.state_dict(),
                "schedule": schedule.state_dict(),
                "rng": rng_state(_rng_streams(generator, sampler)),
                "ema": ema,
                "log": list(log_rows),
                **(extra_state or {}),
            }
        )

    bar = progress(range(start, run["steps"]), desc=f"sft {stage}", total=run["steps"] - start)
    for step in bar:
        t0 = time.perf_counter()
        _, idx = sampler.next()
        batch = [pairs[i] for i in idx]
        cond = adapter.condition([p.input for p in batch], [p.prompt for p in batch])
        with torch.no_grad():
            x0 = adapter.encode_images([p.target for p in batch], cond)
        sigma = sample_sigmas(
            len(batch), run["sigma_sampling"], generator, run["sigma_one_fraction"]
        )
        noise = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
        loss = flow_matching_loss(adapter, cond, x0, sigma, noise)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        if run["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(params, run["grad_clip"])
        optimiser.step()
        schedule.step()
        if ema is not None:
            _ema_update(modules, ema, run["ema_decay"])
        log_rows.append(
            {
                "stage": stage,
                "step": step + 1,
                "loss": float(loss.detach()),
                "lr": schedule.get_last_lr()[0],
                "seconds": time.perf_counter() - t0,
            }
        )
        if (step + 1) % run["checkpoint_every"] == 0 and step + 1 < run["steps"]:
            save(step + 1)
        if (step + 1) % max(1, run["steps"] // 10) == 0:
            recent = [r["loss"] for r in log_rows[-50:]]
            logger.info(
                "%s step %d: loss %.4f (mean of last %d)",
                stage,
                step + 1,
                np.mean(recent),
                len(recent),
            )
    if ema is not None:
        _load_trainable_state(modules, ema)
    for m in modules:
        m.eval()


def _ema_update(modules: list[torch.nn.Module], ema: list[dict], decay: float) -> None:
    with torch.no_grad():
        for module, avg in zip(modules, ema, strict=True):
            for name, p in module.named_parameters():
                if name in avg:
                    avg[name].mul_(decay).add_(p.detach(), alpha=1 - decay)


def write_log(rows: list[dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=LOG_COLUMNS)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def run_sft(
    name: str,
    run: dict[str, Any],
    editor: dict[str, Any],
    train_table: str | Path,
    out_dir: str | Path,
    checkpoint_dir: str | Path,
    logger: logging.Logger,
) -> dict[str, Any]:
    """Train one ``sft.<name>`` run and write its output folder; returns a summary."""
    torch.manual_seed(run["seed"])
    random.seed(run["seed"])
    out_dir = Path(out_dir)
    pairs = load_pairs(train_table, run.get("videos"))
    if not pairs:
        raise no_pairs_error("sft", name, run, train_table)
    checkpoints = Checkpoints(Path(checkpoint_dir), settings_digest(run, editor, pairs))
    editor = dict(editor)  # loading resolves the device into it; the caller's dict stays as is
    log_rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    if run["from_scratch"]:
        adapter = _scratch_editor(name, run, editor, pairs, checkpoints, log_rows, logger)
    else:
        adapter = load_editor(editor)
        adapter.add_lora(run["lora"]["rank"], run["lora"]["alpha"], run["lora"]["targets"])
        for m in (adapter.pipe.vae, *adapter.text_encoders):
            m.requires_grad_(False)
        train_flow_matching(adapter, pairs, run, checkpoints, log_rows, logger)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    if run["from_scratch"]:
        adapter.pipe.save_pretrained(out_dir)
    else:
        adapter.save_lora(out_dir)
    write_log(log_rows, out_dir / "sft_log.csv")
    summary = {
        "run": name,
        "editor": editor["name"],
        "from_scratch": bool(run["from_scratch"]),
        "pairs": len(pairs),
        "final_loss": float(
            np.mean([r["loss"] for r in log_rows if r["stage"] == "transformer"][-50:])
        ),
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out_dir / "sft_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _scratch_editor(
    name: str,
    run: dict[str, Any],
    editor: dict[str, Any],
    pairs: list[Pair],
    checkpoints: Checkpoints,
    log_rows: list[dict[str, Any]],
    logger: logging.Logger,
) -> EditorAdapter:
    """Build the tiny editor from its configs and train it: autoencoder, then the rest."""
    from motionedit.models.tiny import (
        build_tiny_editor,
        load_vae_state,
        train_editor_autoencoder,
        vae_state,
    )

    if editor["kind"] != "tiny":
        raise ModelError(
            f"sft.{name}.from_scratch: only a `tiny` editor can be trained from scratch "
            f"(editors.{editor['name']} is {editor['kind']}); use a LoRA run instead"
        )
    adapter = build_tiny_editor(editor, (p.prompt for p in pairs), run["seed"])
    vae = adapter.pipe.vae
    state = checkpoints.load()
    if state is not None and "vae" in state:
        load_vae_state(vae, state)
        log_rows[:] = [r for r in state["log"] if r["stage"] == "vae"]
        logger.info("vae: loaded from the checkpoint")
    else:
        vae_cfg = run["vae"]
        bar = tqdm(total=vae_cfg["steps"], desc="sft vae", disable=None, mininterval=1.0)
        t0 = [time.perf_counter()]

        def record(step: int, loss: float) -> None:
            now = time.perf_counter()
            log_rows.append(
                {
                    "stage": "vae",
                    "step": step + 1,
                    "loss": loss,
                    "lr": vae_cfg["lr"],
                    "seconds": now - t0[0],
                }
            )
            t0[0] = now
            bar.update()

        metrics = train_editor_autoencoder(
            adapter,
            (im for p in pairs for im in (p.input, p.target)),
            vae_cfg["steps"],
            vae_cfg["batch_size"],
            vae_cfg["lr"],
            run["seed"],
            progress=record,
        )
        bar.close()
        logger.info("vae: %s", metrics)
        checkpoints.save({"stage": "vae", "step": 0, "log": list(log_rows), **vae_state(vae)})
    vae.requires_grad_(False)
    vae.eval()
    train_flow_matching(
        adapter, pairs, run, checkpoints, log_rows, logger, extra_state=vae_state(vae)
    )
    return adapter
