"""`python -m motionedit.edit`: one edit of a real photograph by a configured model, the same
edit the benchmark's inference makes, scored when a target is given; clear refusals."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT
from hub_stub import point_client_at, serve_hub
from matplotlib import cbook
from PIL import Image

from motionedit.config import load_config
from motionedit.edit import edit_one
from motionedit.inference import run_inference
from motionedit.models import editor_settings
from motionedit.models.tiny import build_tiny_editor

PHOTO = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
PROMPT = "Make her turn her head to the left."


@pytest.fixture
def workdir(tmp_path):
    """A config with the tiny editor (random weights, saved as the SFT stage saves it)."""
    editor = {"kind": "tiny", "source": str(tmp_path / "tiny"), "device": "cpu",
              "inference": {"steps": 2}}  # fmt: skip
    config = {
        "sources": [{"name": "synthetic", "kind": "synthetic"}],
        "editors": {"tiny": editor},
        "models": {
            "tiny": {"kind": "editor", "editor": "tiny"},
            "nothing": {"kind": "identity"},
            "closed": {"kind": "predictions", "path": "preds"},
            "lost": {"kind": "editor", "editor": "gone"},
        },
    }
    config["editors"]["gone"] = editor | {"source": str(tmp_path / "absent")}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    settings = editor_settings(load_config(tmp_path / "config.yaml"), "tiny")
    build_tiny_editor(settings, [PROMPT], seed=0).pipe.save_pretrained(tmp_path / "tiny")
    with Image.open(PHOTO) as im:
        photo = im.convert("RGB")
    photo.crop((60, 40, 380, 280)).save(tmp_path / "input.jpg", quality=92)
    photo.crop((72, 46, 392, 286)).save(tmp_path / "target.jpg", quality=92)
    return tmp_path


def edit_cli(workdir, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "motionedit.edit", "--config", "config.yaml", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HOME": str(workdir)},
        timeout=300,
    )


def test_the_cli_edits_and_scores_one_photograph(workdir):
    proc = edit_cli(workdir, "--model", "tiny", "--image", "input.jpg", "--prompt", PROMPT,
                    "--target", "target.jpg")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["output"] == "input.tiny.png" and result["seed"] == 0
    assert result["flow"] == "dis" and 0 <= result["mas"] <= 100
    with Image.open(workdir / "input.tiny.png") as edited:
        # The tiny editor's 32x32 pixel budget at the photograph's 4:3 aspect.
        assert edited.size[0] > edited.size[1]

    proc = edit_cli(workdir, "--model", "nothing", "--image", "input.jpg", "--prompt", PROMPT,
                    "--target", "target.jpg", "--out", "out/same.png")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with Image.open(workdir / "out" / "same.png") as same, Image.open(workdir / "input.jpg") as im:
        assert np.array_equal(np.asarray(same), np.asarray(im.convert("RGB")))


def test_the_edit_is_the_one_benchmark_inference_makes(workdir):
    config = load_config(workdir / "config.yaml")
    with Image.open(workdir / "input.jpg") as im:
        image = im.convert("RGB")
    edited, made = edit_one(config, "tiny", image, PROMPT)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    row = {"id": "a", "prompt": PROMPT, "input_image": {"bytes": buf.getvalue(), "path": None}}
    pd.DataFrame([row]).to_parquet(workdir / "bench.parquet")
    out = workdir / "eval" / "outputs.parquet"
    run_inference("tiny", config, workdir / "bench.parquet", out, logging.getLogger("test"))
    with Image.open(out.parent / "images" / "a.png") as bench_edit:
        assert np.array_equal(np.asarray(bench_edit), np.asarray(edited))
    assert made["seed"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "nope"], "--model nope: not in models: (closed, lost, nothing, tiny)"),
        (["--model", "closed"], "a `predictions` model has no editor to run"),
        (["--model", "lost"], "absent"),
        (["--model", "tiny", "--image", "target.jpg.missing"], "target.jpg.missing"),
    ],
)
def test_refusals_name_what_is_wrong(workdir, args, message):
    base = {"--image": "input.jpg", "--prompt": PROMPT}
    for key, value in zip(args[::2], args[1::2], strict=True):
        base[key] = value
    proc = edit_cli(workdir, *[x for kv in base.items() for x in kv])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    last = proc.stderr.strip().splitlines()[-1]  # after any library's import warnings
    assert last.startswith("motionedit.edit: ") and message in last


def test_a_lora_file_on_the_hub_edits_as_the_same_file_on_disk(workdir, monkeypatch):
    """`lora: {repo_id, weight_name, revision}` (the release's form) is the same LoRA as the
    file it names; offline with an empty cache, the error names the key and the download."""
    import huggingface_hub.constants as constants
    import torch

    from motionedit.models import ModelError, load_editor

    config = load_config(workdir / "config.yaml")
    adapter = load_editor(editor_settings(config, "tiny"))
    adapter.add_lora(4, 4)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in adapter.transformer.named_parameters():
            if "lora_B" in name:  # zero at creation: give the LoRA an effect to compare
                p.copy_(0.5 * torch.randn(p.shape, generator=generator))
    adapter.save_lora(workdir / "lora")
    weights = (workdir / "lora" / "pytorch_lora_weights.safetensors").read_bytes()
    released = {"repo_id": "someone/motion-lora", "revision": "main",
                "weight_name": "adapter_model_converted.safetensors"}  # fmt: skip
    config["models"] |= {
        "hub": {"kind": "editor", "editor": "tiny", "lora": released},
        "disk": {"kind": "editor", "editor": "tiny", "lora": str(workdir / "lora")},
    }
    with Image.open(workdir / "input.jpg") as im:
        image = im.convert("RGB")
    repo = {"someone/motion-lora": {"adapter_model_converted.safetensors": weights}}
    with serve_hub({}, models=repo) as hub:
        point_client_at(monkeypatch, hub.base, workdir / "hf_home")
        from_hub = np.asarray(edit_one(config, "hub", image, PROMPT)[0])
    assert ("GET", "/someone/motion-lora/resolve/main/adapter_model_converted.safetensors") in [
        (method, path) for method, path in hub.seen
    ]
    assert np.array_equal(from_hub, np.asarray(edit_one(config, "disk", image, PROMPT)[0]))
    assert not np.array_equal(from_hub, np.asarray(edit_one(config, "tiny", image, PROMPT)[0]))

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(workdir / "empty_cache"))
    with pytest.raises(ModelError, match=r"models\.hub\.lora: cannot fetch .*hf download"):
        edit_one(config, "hub", image, PROMPT)
