"""One GPU run that sizes MotionNFT on the real editors: step time per phase and peak memory.

Builds the full-size FLUX.1 Kontext (11.9 B parameters) and Qwen-Image-Edit (20.4 B) transformers
from their released configs (benchmarks/gpu_configs/) with random bfloat16 weights, straight on
the GPU (nothing is downloaded), and trains each for a few MotionNFT steps at 512x512 with the
project's own trainer (motionedit/nft/trainer.py) and adapters (motionedit/models/): one prompt
group of 8 edits per step, 6-step rollouts, the UniMatch motion reward, the NFT loss with the
old policy and the reference (KL) forwards, LoRA r=32/alpha=64 (the trainer's defaults) and
gradient checkpointing. It prints seconds per phase (rollout, reward, optimisation) and the
peak GPU memory per model, UniMatch's pairs/s in float32 and under bfloat16 autocast with the
flow difference between the two, and a markdown summary for the README.

Stand-ins, so that only the transformers are at full size: the text encoders are replaced by
random prompt embeddings of the released shapes (FLUX: 512 T5 tokens of 4096 plus a pooled
CLIP vector of 768; Qwen: about 344 Qwen2.5-VL tokens of 3584, the length the edit template
gives a 512x512 input), handed to the pipeline's own ``encode_prompt``; the VAE is a small one
with the real latent layout (16 channels, 8x down), so its encode and decode cost next to
nothing; UniMatch has the random weights of the official layout (tests/fixtures/unimatch), at
full size. The MLLM reward (a vLLM server) is not part of the step.

    .venv/bin/python benchmarks/gpu_check.py                # on the GPU: at most 8 minutes
    .venv/bin/python benchmarks/gpu_check.py --small        # the same code at toy sizes, CPU
    .venv/bin/python benchmarks/gpu_check.py --count-only   # parameter counts, no GPU needed
    options: --only flux|qwen|unimatch (repeatable), --steps N, --budget SECONDS, --dtype

Every section is skipped, with a line saying so, when the time left is short of what it
needs; a watchdog ends the run at the budget (default 480 s) with what was measured so far.
Beyond torch, transformers, peft, accelerate, OpenCV, pandas and PyYAML it imports diffusers
and jsonschema (the config check), so a bare GPU image needs those two.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import logging
import os
import resource
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

STARTED = time.perf_counter()
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

CONFIGS = ROOT / "benchmarks/gpu_configs"
SAMPLING_STEPS = 6  # the trainer's default rollout steps


@dataclass(frozen=True)
class Sizes:
    side: int  # edit size in pixels
    group_size: int  # edits per prompt (K); also UniMatch's batch in its own section
    text_tokens: int | None  # prompt tokens; None: the editor's released length


#: Full size: the trainer's default group of 8 at 512x512. --small keeps every code path at
#: toy sizes (2 edits of 64x64, 16 text tokens) so that it runs in seconds on a CPU.
SIZES = {False: Sizes(512, 8, None), True: Sizes(64, 2, 16)}
SECTIONS = ("unimatch", "flux", "qwen")
#: Seconds a section needs at full size (build, warm-up step, timed steps); it is skipped
#: when less is left. --small needs a few seconds each.
NEEDS = {"unimatch": 40, "flux": 120, "qwen": 150}
PROMPTS = ["make the person raise the left arm", "turn the car to the right", "open the door"]


@dataclass(frozen=True)
class Editor:
    key: str  # section name
    title: str
    kind: str  # editor kind of the registry (motionedit/models/kinds.py)
    config: str  # file stem under gpu_configs/
    source: str  # the released model the config is taken from (never loaded here)
    prompt_tokens: int  # text tokens per prompt at full size

    def json(self, part: str) -> dict[str, Any]:
        return json.loads((CONFIGS / f"{self.config}_{part}.json").read_text())


EDITORS = {
    "flux": Editor(
        key="flux",
        title="FLUX.1 Kontext",
        kind="flux-kontext",
        config="flux_kontext",
        source="black-forest-labs/FLUX.1-Kontext-dev",
        # FLUX pads every prompt to max_sequence_length (512) T5 tokens.
        prompt_tokens=512,
    ),
    "qwen": Editor(
        key="qwen",
        title="Qwen-Image-Edit",
        kind="qwen-image-edit",
        config="qwen_image_edit",
        source="Qwen/Qwen-Image-Edit",
        # The VL encoder's hidden states past the edit template's first 64 tokens: 324 image
        # tokens of a 512x512 input (504x504 in 14-px patches, 2x2 merged), the vision and
        # chat markers and a short instruction.
        prompt_tokens=344,
    ),
}


# ----------------------------------------------------------------------------- time


class Clock:
    """The run's budget: what is left, and a watchdog that ends the run when it is spent."""

    def __init__(self, budget: float, on_expiry: Callable[[], None]) -> None:
        self.budget = budget
        self.timer = threading.Timer(max(0.0, budget - self.elapsed()), on_expiry)
        self.timer.daemon = True
        self.timer.start()

    @staticmethod
    def elapsed() -> float:
        return time.perf_counter() - STARTED

    def left(self) -> float:
        return self.budget - self.elapsed()

    def stop(self) -> None:
        self.timer.cancel()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gib(n_bytes: float) -> float:
    return n_bytes / 2**30


def peak_gib(device: torch.device) -> float:
    """Peak GPU memory since the last reset; on the CPU the process's peak RSS."""
    if device.type == "cuda":
        return gib(torch.cuda.max_memory_allocated(device))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


# ----------------------------------------------------------------------------- models


@contextmanager
def made_on(device: str, dtype: torch.dtype) -> Iterator[None]:
    """Modules built inside are allocated once, in ``dtype``, on ``device``.

    12-20 B parameters are then initialised on the GPU by the modules' own initialisers (a
    fraction of a second), never held in float32 or in CPU memory; on ``meta`` nothing is
    allocated at all (parameter counts only).
    """
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def build_transformer(editor: Editor, small: bool, device: str, dtype: torch.dtype) -> Any:
    """The transformer from its config (gpu_configs/) with random weights, on ``device``."""
    import diffusers

    config = editor.json("transformer_small" if small else "transformer")
    with made_on(device, dtype):
        transformer = getattr(diffusers, config["_class_name"]).from_config(config)
    return transformer.eval()


def stand_in_vae(editor: Editor, device: str, dtype: torch.dtype) -> Any:
    """A small VAE with the released latent layout: 16 channels, 8x down, the real scalings."""
    from diffusers import AutoencoderKL, AutoencoderKLQwenImage

    with made_on(device, dtype):
        if editor.key == "flux":
            return AutoencoderKL(
                down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4,
                block_out_channels=(8, 8, 8, 8),
                layers_per_block=1,
                latent_channels=16,
                norm_num_groups=4,
                use_quant_conv=False,
                use_post_quant_conv=False,
                shift_factor=0.1159,
                scaling_factor=0.3611,
            ).eval()
        # The class's default latents_mean/latents_std are the released model's.
        return AutoencoderKLQwenImage(
            base_dim=8,
            z_dim=16,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            temperal_downsample=[False, True, True],
        ).eval()


class RandomPrompts:
    """The pipeline's ``encode_prompt`` with random embeddings in place of the text encoders.

    The pipeline's own method still runs (it accepts ready embeddings), so the text ids and
    the mask handling are the pipeline's; only the encoder's output is drawn.
    """

    def __init__(self, pipe: Any, editor: Editor, tokens: int, dtype: torch.dtype) -> None:
        self.encode = pipe.encode_prompt
        self.config = pipe.transformer.config
        self.editor, self.tokens, self.dtype = editor, tokens, dtype
        self.generator = torch.Generator().manual_seed(0)

    def _draw(self, *shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator).to(self.dtype)

    def __call__(self, prompt: str | list[str], device: Any = None, **kwargs: Any) -> Any:
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        n, dim = len(prompts), self.config.joint_attention_dim
        embeds = self._draw(n, self.tokens, dim).to(device)
        if self.editor.key == "flux":
            pooled = self._draw(n, self.config.pooled_projection_dim).to(device)
            return self.encode(
                prompt=prompts, device=device, prompt_embeds=embeds, pooled_prompt_embeds=pooled
            )
        return self.encode(prompt=prompts, device=device, prompt_embeds=embeds)


def build_adapter(editor: Editor, small: bool, device: str, dtype: torch.dtype) -> tuple[Any, dict]:
    """The project's adapter over the real pipeline class: full transformer, stand-ins else.

    Returns the adapter and the validated config the trainer reads (flow, metrics, run).
    """
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        FluxKontextPipeline,
        QwenImageEditPipeline,
    )

    from motionedit.config import validate_config
    from motionedit.models import editor_settings, place
    from motionedit.models.flux_kontext import FluxKontextAdapter
    from motionedit.models.qwen_image_edit import QwenImageEditAdapter

    size = SIZES[small]
    side = size.side
    config = validate_config(
        {
            "sources": [{"name": "s", "kind": "synthetic"}],
            "flow": unimatch_config(device),
            "editors": {
                editor.key: {
                    "kind": editor.kind,
                    "source": editor.source,
                    "dtype": str(dtype).removeprefix("torch."),
                    "device": device,
                    "max_area": side * side,
                }
            },
            "train": {
                "run": {
                    "editor": editor.key,
                    "groups": 1,
                    "group_size": size.group_size,
                    "micro_batch": size.group_size,
                    "sampling_steps": SAMPLING_STEPS,
                    "resolution": side,
                    "gradient_checkpointing": True,
                    "eval_every": 0,
                    "rewards": {"motion": 1.0},
                    # Keep every group: with random weights the rewards of a group may be
                    # equal or all high, and a filtered group would skip the optimisation
                    # being timed.
                    "group_filter": {"enabled": False},
                }
            },
        }
    )
    settings = editor_settings(config, editor.key)
    transformer = build_transformer(editor, small, device, dtype)
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(editor.json("scheduler"))
    vae = stand_in_vae(editor, device, dtype)
    if editor.key == "flux":
        pipe = FluxKontextPipeline(scheduler, vae, None, None, None, None, transformer)
        adapter_class: type = FluxKontextAdapter
    else:
        pipe = QwenImageEditPipeline(scheduler, vae, None, None, None, transformer)
        adapter_class = QwenImageEditAdapter
    tokens = size.text_tokens or editor.prompt_tokens
    pipe.encode_prompt = RandomPrompts(pipe, editor, tokens, dtype)
    return adapter_class(place(pipe, settings), settings), config


def unimatch_config(device: str) -> dict[str, Any]:
    """The config's ``flow`` section: UniMatch in float32 (the default) on the random weights."""
    from flow_speed import FIXTURE

    checkpoint = str(FIXTURE / "unimatch_random_weights.pth")
    return {
        "backend": "unimatch",
        "unimatch": {"checkpoint": checkpoint, "device": device, "batch_size": 8},
    }


def training_pairs(side: int, n: int = 4) -> list[Any]:
    """Textured inputs and the same with a block moved (flow_speed's pairs), as PNG cells."""
    from flow_speed import pairs

    from motionedit.training import Pair

    def cell(array: np.ndarray) -> dict[str, Any]:
        buf = io.BytesIO()
        Image.fromarray(array).save(buf, format="PNG")
        return {"bytes": buf.getvalue(), "path": None}

    inputs, targets = pairs(n, side)
    return [
        Pair(f"p{i}", PROMPTS[i % len(PROMPTS)], cell(a), cell(b), ROOT)
        for i, (a, b) in enumerate(zip(inputs, targets, strict=True))
    ]


def count(n: float) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.{2 if unit == 'B' else 1}f} {unit}"
    return f"{n:.0f}"


def lora_count(module: Any) -> int:
    return sum(p.numel() for n, p in module.named_parameters() if "lora_" in n)


# ----------------------------------------------------------------------------- sections


def count_parameters(small: bool) -> None:
    """Both transformers on the meta device (no memory): parameters, bf16 size, one LoRA."""
    from peft import LoraConfig

    from motionedit.models.flux_kontext import FluxKontextAdapter
    from motionedit.models.qwen_image_edit import QwenImageEditAdapter

    targets = {"flux": FluxKontextAdapter, "qwen": QwenImageEditAdapter}
    for key, editor in EDITORS.items():
        t = build_transformer(editor, small, "meta", torch.bfloat16)
        n = sum(p.numel() for p in t.parameters())
        t.add_adapter(
            LoraConfig(
                r=32,
                lora_alpha=64,
                init_lora_weights="gaussian",
                target_modules=list(targets[key].default_lora_targets),
            )
        )
        print(
            f"{key} parameters: {editor.title} transformer {count(n)} "
            f"({gib(2 * n):.2f} GiB in bfloat16); one LoRA r=32 on "
            f"{', '.join(targets[key].default_lora_targets)}: {count(lora_count(t))}"
        )


def editor_section(
    editor: Editor, args: argparse.Namespace, dev: torch.device, clock: Clock, reserve: float
) -> dict[str, Any]:
    """Build one editor and time MotionNFT steps with the real trainer."""
    from motionedit.nft import trainer as nft_trainer

    dtype = getattr(torch, args.dtype)
    size = SIZES[args.small]
    side = size.side
    key = editor.key
    free(dev)
    t0 = time.perf_counter()
    adapter, config = build_adapter(editor, args.small, str(dev), dtype)
    sync(dev)
    build_s = time.perf_counter() - t0
    params = sum(p.numel() for p in adapter.transformer.parameters())
    weights = gib(torch.cuda.memory_allocated(dev)) if dev.type == "cuda" else float("nan")
    print(
        f"{key} build: {editor.title} transformer, {count(params)} parameters "
        f"(random, {str(dtype).removeprefix('torch.')}), in {build_s:.1f} s"
        + (f"; {weights:.1f} GiB allocated" if dev.type == "cuda" else ""),
        flush=True,
    )

    run = config["train"]["run"]
    # The trainer loads its editor by name; here the editor is already built in memory.
    with mock.patch.object(nft_trainer, "load_editor", return_value=adapter):
        trainer = nft_trainer.MotionNFT(
            "gpu-check",
            run,
            adapter.settings,
            config,
            training_pairs(side),
            [],
            logging.getLogger(key),
        )
    lora = sum(p.numel() for p in trainer.policy)
    targets = ", ".join(adapter.default_lora_targets)
    tokens = 2 * (side // 16) ** 2
    text = size.text_tokens or editor.prompt_tokens
    print(
        f"{key} setup: LoRA r={run['lora']['rank']} alpha={run['lora']['alpha']:g} on "
        f"{targets}: {count(lora)} trainable (policy; the old policy is a second "
        f"adapter); gradient checkpointing; {run['groups']} prompt x {run['group_size']} "
        f"edits at {side}x{side}, {run['sampling_steps']} {run['solver']} rollout steps, "
        f"{nft_trainer.timesteps_per_rollout(run)} loss levels per edit, micro-batch "
        f"{run['micro_batch']}; {tokens} image + {text} text tokens per sample; reward: "
        f"UniMatch motion reward ({config['flow']['unimatch']['dtype']}); kl_weight "
        f"{run['kl_weight']:g} (reference forward)",
        flush=True,
    )

    rows: list[dict[str, Any]] = []
    last = 0.0
    for step in range(1 + args.steps):
        if step > 0 and clock.left() - reserve < 1.5 * last:
            print(
                f"{key} stop: {clock.left():.0f} s left ({reserve:.0f} s kept for the "
                f"sections after this one), a step takes {last:.1f} s",
                flush=True,
            )
            break
        t = time.perf_counter()
        row = trainer.train_step()
        sync(dev)
        last = time.perf_counter() - t
        row["wall_s"] = last
        rows.append(row)
        label = "warm-up" if step == 0 else "timed"
        print(
            f"{key} step {step + 1} ({label}): rollout {row['sampling_s']:.2f} s, reward "
            f"{row['reward_s']:.2f} s, optimisation {row['optimisation_s']:.2f} s, wall "
            f"{last:.2f} s; loss {row['loss']:.4g}, reward mean {row['reward_mean']:.3f}",
            flush=True,
        )
    timed = rows[1:] or rows  # the first step pays for warm-up
    mean = {
        k: float(np.mean([r[k] for r in timed]))
        for k in ("sampling_s", "reward_s", "optimisation_s", "wall_s")
    }
    peak = peak_gib(dev)
    what = "max_memory_allocated" if dev.type == "cuda" else "process peak RSS, CPU"
    print(
        f"{key} phases (mean of {len(timed)} step{'s' * (len(timed) > 1)}"
        f"{'' if rows[1:] else ', warm-up only'}): rollout {mean['sampling_s']:.2f} s, reward "
        f"{mean['reward_s']:.2f} s, optimisation {mean['optimisation_s']:.2f} s, step "
        f"{mean['wall_s']:.2f} s",
        flush=True,
    )
    print(
        f"{key} memory: peak {peak:.1f} GiB ({what})"
        + (f", weights {weights:.1f} GiB" if dev.type == "cuda" else ""),
        flush=True,
    )
    del trainer, adapter
    free(dev)
    return {
        "params": params,
        "lora": lora,
        "build_s": build_s,
        "weights": weights,
        "peak": peak,
        "steps": len(timed),
        **mean,
    }


def unimatch_section(args: argparse.Namespace, dev: torch.device) -> dict[str, Any]:
    """UniMatch float32 against bfloat16 autocast: pairs/s and the flow difference."""
    from flow_speed import pairs, timed

    from motionedit.flow.unimatch import UniMatchFlow

    side, batch = SIZES[args.small].side, SIZES[args.small].group_size
    a, b = pairs(batch, side)
    ta = torch.from_numpy(a).permute(0, 3, 1, 2).float().to(dev)
    tb = torch.from_numpy(b).permute(0, 3, 1, 2).float().to(dev)
    checkpoint = args.checkpoint or unimatch_config(str(dev))["unimatch"]["checkpoint"]
    weights = "the given checkpoint" if args.checkpoint else "random weights"
    print(
        f"unimatch setup: gmflow-scale2-regrefine6 ({weights}), {side}x{side}, batch {batch}, "
        f"{dev.type}",
        flush=True,
    )
    out: dict[str, Any] = {}
    flows = {}
    for dtype in ("float32", "bfloat16"):
        free(dev)
        if dev.type == "cuda":
            flow = UniMatchFlow(checkpoint, device=str(dev), dtype=dtype, batch_size=batch)
        else:
            # The class refuses half precision on the CPU (slow there, not wrong); --small
            # sets it after construction to run the same autocast path.
            flow = UniMatchFlow(checkpoint, device="cpu", batch_size=batch)
            flow.dtype = getattr(torch, dtype)
        seconds = timed(lambda f=flow: f.estimate_tensors(ta, tb), args.repeat)
        flows[dtype] = flow.estimate_tensors(ta, tb)
        out[dtype] = {"pairs_s": batch / seconds, "peak": peak_gib(dev)}
        print(
            f"unimatch {dtype}: {batch / seconds:.2f} pairs/s ({1000 * seconds / batch:.1f} "
            f"ms/pair, best of {args.repeat}), peak memory {out[dtype]['peak']:.2f} GiB",
            flush=True,
        )
    diff = (flows["bfloat16"] - flows["float32"]).abs()
    scale = flows["float32"].abs().mean()
    out["max_diff"], out["mean_diff"] = float(diff.max()), float(diff.mean())
    print(
        f"unimatch bfloat16 - float32: max |diff| {out['max_diff']:.3g} px, mean |diff| "
        f"{out['mean_diff']:.3g} px (mean |flow| {float(scale):.3g} px)",
        flush=True,
    )
    return out


# ----------------------------------------------------------------------------- summary


def summary(results: dict[str, Any], device_name: str, small: bool) -> str:
    def cell(key: str, fmt: Callable[[dict], str]) -> str:
        r = results.get(key)
        return fmt(r) if isinstance(r, dict) else r or "not run"

    side, k = SIZES[small].side, SIZES[small].group_size
    head = (
        f"| MotionNFT step, {side}x{side}, 1 prompt x {k} edits, "
        f"{SAMPLING_STEPS} rollout steps, LoRA r=32, checkpointing, random weights "
        f"({device_name}) | FLUX.1 Kontext | Qwen-Image-Edit |"
    )
    rows = [
        ("transformer parameters", lambda r: count(r["params"])),
        ("trainable LoRA parameters", lambda r: count(r["lora"])),
        ("build with random weights", lambda r: f"{r['build_s']:.1f} s"),
        (
            f"rollout: {k} edits x {SAMPLING_STEPS} sampler steps",
            lambda r: f"{r['sampling_s']:.2f} s",
        ),
        (
            f"reward: UniMatch motion reward of {k} edits ({2 * k} flows)",
            lambda r: f"{r['reward_s']:.2f} s",
        ),
        (
            "optimisation: old, reference and policy forwards, backward, AdamW",
            lambda r: f"{r['optimisation_s']:.2f} s",
        ),
        ("step", lambda r: f"{r['wall_s']:.2f} s (mean of {r['steps']})"),
        (
            "peak memory (weights)",
            lambda r: (
                f"{r['peak']:.1f} GiB"
                + ("" if np.isnan(r["weights"]) else f" ({r['weights']:.1f})")
            ),
        ),
    ]
    lines = [head, "|---|---|---|"]
    lines += [f"| {name} | {cell('flux', f)} | {cell('qwen', f)} |" for name, f in rows]
    lines += [
        "",
        f"| UniMatch, {side}x{side}, batch {k}, random weights ({device_name}) | float32 | "
        "bfloat16 autocast |",
        "|---|---|---|",
        "| pairs/s | "
        + " | ".join(
            cell("unimatch", lambda r, d=d: f"{r[d]['pairs_s']:.1f}")
            for d in ("float32", "bfloat16")
        )
        + " |",
        "| peak memory | "
        + " | ".join(
            cell("unimatch", lambda r, d=d: f"{r[d]['peak']:.2f} GiB")
            for d in ("float32", "bfloat16")
        )
        + " |",
        "| flow difference to float32, max / mean | | "
        + cell("unimatch", lambda r: f"{r['max_diff']:.3g} / {r['mean_diff']:.3g} px")
        + " |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--small", action="store_true", help="toy sizes on the CPU (a check of the code)"
    )
    ap.add_argument(
        "--count-only",
        action="store_true",
        help="print the transformers' parameter counts (meta device) and stop",
    )
    ap.add_argument("--only", action="append", choices=SECTIONS, help="run only these sections")
    ap.add_argument(
        "--steps", type=int, help="timed MotionNFT steps after the warm-up (default 3; --small 1)"
    )
    ap.add_argument("--repeat", type=int, help="timed UniMatch calls, best of (3; --small 1)")
    ap.add_argument(
        "--dtype",
        choices=("bfloat16", "float32"),
        help="the editors' weights (default bfloat16; --small float32)",
    )
    ap.add_argument("--budget", type=float, default=480.0, help="seconds for the whole run")
    ap.add_argument("--checkpoint", help="a UniMatch checkpoint instead of the random weights")
    args = ap.parse_args(argv)
    args.steps = (1 if args.small else 3) if args.steps is None else args.steps
    args.repeat = (1 if args.small else 3) if args.repeat is None else args.repeat
    args.dtype = args.dtype or ("float32" if args.small else "bfloat16")
    logging.basicConfig(level=logging.WARNING)
    if args.count_only:
        count_parameters(args.small)
        return 0
    if not args.small and not torch.cuda.is_available():
        print(
            "gpu_check: no CUDA GPU here. This script sizes the full models on a GPU; pass "
            "--small to run the same code at toy sizes on the CPU, or --count-only for the "
            "parameter counts.",
            file=sys.stderr,
        )
        return 2
    dev = torch.device("cpu" if args.small else "cuda")
    if args.small:
        # A check of the code, not a measurement: one thread, which on a CPU shared with
        # other jobs ran UniMatch 15x faster than two threads waiting on each other.
        torch.set_num_threads(1)
    import diffusers
    import peft

    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        device_name = props.name
        hw = f"{props.name} ({gib(props.total_memory):.0f} GiB), CUDA {torch.version.cuda}"
    else:
        device_name = "CPU, --small"
        hw = f"CPU ({torch.get_num_threads()} threads), --small: toy sizes, not for the README"
    print(
        f"gpu_check: {hw}; torch {torch.__version__}, diffusers {diffusers.__version__}, "
        f"peft {peft.__version__}; budget {args.budget:.0f} s",
        flush=True,
    )

    chosen = [s for s in SECTIONS if not args.only or s in args.only]
    results: dict[str, Any] = {s: "not run" for s in SECTIONS}
    results.update({s: "skipped" for s in SECTIONS if s not in chosen})

    def expire() -> None:
        print(
            f"gpu_check: DEADLINE: the {args.budget:.0f} s budget is spent; stopping with "
            "what was measured",
            flush=True,
        )
        print(summary(results, device_name, args.small), flush=True)
        os._exit(3)

    clock = Clock(args.budget, expire)
    failed = 0
    for i, section in enumerate(chosen):
        need = 5.0 if args.small else NEEDS[section]
        later = sum(5.0 if args.small else NEEDS[s] for s in chosen[i + 1 :])
        if clock.left() < need:
            print(
                f"{section} SKIPPED: {clock.left():.0f} s left, the section needs about "
                f"{need:.0f} s",
                flush=True,
            )
            results[section] = "skipped (time)"
            continue
        print(f"== {section} ({clock.elapsed():.0f} s into the run)", flush=True)
        results[section] = "cut off by the deadline"  # until it ends one way or the other
        try:
            if section == "unimatch":
                results[section] = unimatch_section(args, dev)
            else:
                results[section] = editor_section(EDITORS[section], args, dev, clock, later)
        except Exception as exc:  # one failed section must not lose the others' numbers
            failed += 1
            oom = isinstance(exc, torch.cuda.OutOfMemoryError)
            results[section] = "out of memory" if oom else "failed"
            print(f"{section} FAILED: {type(exc).__name__}: {str(exc)[:400]}", flush=True)
            traceback.print_exc()
        finally:
            free(dev)
    clock.stop()
    print(f"gpu_check: done in {clock.elapsed():.0f} s\n", flush=True)
    print(summary(results, device_name, args.small), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
