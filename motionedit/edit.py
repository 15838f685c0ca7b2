"""One edit from the command line: a configured model, one image, one instruction.

    python -m motionedit.edit --model tiny-nft --image in.jpg \\
        --prompt "Make the person raise the left arm." [--target t.jpg] [--out edit.png]

The model is an entry of the config's ``models:`` loaded as the ``infer`` stage loads it
(editor, LoRA, the editor's inference settings and seed), so the demo edit of an image is
the edit the benchmark would score. With ``--target`` (the true next frame) the edit is
also scored as the benchmark scores it: MAS and its terms, with the benchmark's flow. The
result is printed as one JSON object; the image goes to ``--out`` (default
``<image stem>.<model>.png``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from motionedit.config import ConfigError, evaluation_flow, load_config
from motionedit.flow import UNIMATCH_CHECKPOINT_NAME
from motionedit.images import to_pil
from motionedit.models import ModelError, editor_settings


def _read(path: str, what: str) -> Image.Image:
    try:
        return to_pil(path)
    except (OSError, UnidentifiedImageError) as exc:
        raise ValueError(f"--{what} {path}: not a readable image ({exc})") from exc


def edit_one(
    config: dict[str, Any], name: str, image: Image.Image, prompt: str, seed: int | None = None
) -> tuple[Image.Image, dict[str, Any]]:
    """Model ``name``'s edit of ``image``, and what made it (model, seed, seconds)."""
    from motionedit.inference import load_model

    if name not in config["models"]:
        raise ConfigError(f"--model {name}: not in models: ({', '.join(config['models'])})")
    model = config["models"][name]
    t0 = time.perf_counter()
    if model["kind"] == "identity":
        return image, {"model": name, "seed": None, "seconds": 0.0}
    if model["kind"] != "editor":
        raise ConfigError(
            f"--model {name}: a `{model['kind']}` model has no editor to run; its edits are "
            f"the images in {model.get('path')}"
        )
    settings = editor_settings(config, model["editor"])
    seed = int(settings["inference"]["seed"] if seed is None else seed)
    edited = load_model(name, model, settings).edit([image], [prompt], seed)[0]
    return edited, {"model": name, "seed": seed, "seconds": round(time.perf_counter() - t0, 3)}


def score_one(
    config: dict[str, Any], image: Image.Image, edited: Image.Image, target: Image.Image
) -> dict[str, Any]:
    """MAS and its terms of one edit, with the flow the benchmark uses."""
    from motionedit.evaluate.scores import MAS_COLUMNS
    from motionedit.flow import make_flow
    from motionedit.metrics import score_edits

    flow_cfg = evaluation_flow(config)
    if flow_cfg["backend"] == "unimatch" and not flow_cfg["unimatch"]["checkpoint"]:
        weights = Path("results/weights") / UNIMATCH_CHECKPOINT_NAME
        if not weights.is_file():
            raise ConfigError(
                f"flow.unimatch.checkpoint: not set and {weights} is missing; fetch it with "
                f"`snakemake --cores 1 {weights}` or set the key to a local checkpoint"
            )
        flow_cfg = flow_cfg | {"unimatch": flow_cfg["unimatch"] | {"checkpoint": str(weights)}}
    metrics = config["metrics"]
    row = score_edits(
        [image], [edited], [target], make_flow(flow_cfg), metrics["motion_reward"], metrics["mas"]
    )[0]
    return {c: row[c] for c in MAS_COLUMNS} | {"flow": flow_cfg["backend"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m motionedit.edit", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--model", required=True, help="a name under models: in the config")
    parser.add_argument("--image", required=True, help="the input frame")
    parser.add_argument("--prompt", required=True, help="the motion instruction")
    parser.add_argument("--target", help="the true target frame: the edit is then scored")
    parser.add_argument("--out", help="where the edit goes (default <image stem>.<model>.png)")
    parser.add_argument("--config", default="config.yaml", help="default: config.yaml")
    parser.add_argument("--seed", type=int, help="default: the editor's inference seed")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        image = _read(args.image, "image")
        target = _read(args.target, "target") if args.target else None
        edited, made = edit_one(config, args.model, image, args.prompt, args.seed)
        out = Path(args.out or f"{Path(args.image).stem}.{args.model}.png")
        out.parent.mkdir(parents=True, exist_ok=True)
        edited.save(out, format="PNG")
        result = made | {"input": args.image, "prompt": args.prompt, "output": str(out)}
        if target is not None:
            result |= score_one(config, image, edited, target)
    except (ConfigError, ModelError, ValueError, FileNotFoundError) as exc:
        print(f"motionedit.edit: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
