"""Supervised flow matching: LoRA runs on a tiny FLUX.1 Kontext, exact resume after a kill."""

from __future__ import annotations

import copy
import logging
import textwrap

import pandas as pd
import pytest
import tiny_flux
import torch
import yaml
from conftest import kill_once_written
from safetensors.torch import load_file
from test_inference import make_bench

from motionedit.config import validate_config
from motionedit.models import ModelError, editor_settings, load_editor
from motionedit.models.base import LORA_WEIGHT_NAME
from motionedit.sft import _lr_lambda, run_sft
from motionedit.training import STATE_FILE, load_pairs, sample_sigmas, video_part

LOG = logging.getLogger("test")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("sft")
    tiny_flux.build().save_pretrained(root / "pipe")
    train, _ = make_bench(root / "train", n=6)
    config = validate_config(
        {
            "sources": [{"name": "s", "kind": "synthetic"}],
            "editors": {"kontext": tiny_flux.editor(root / "pipe")},
            "sft": {
                "lora": {
                    "editor": "kontext",
                    "steps": 30,
                    "batch_size": 2,
                    "lr": 1e-3,
                    "warmup_steps": 2,
                    "checkpoint_every": 10,
                    "lora": {"rank": 4, "alpha": 4},
                }
            },
        }
    )
    return root, train, config


def run(setup, out, ckpt, **changes):
    _, train, config = setup
    spec = copy.deepcopy(config["sft"]["lora"]) | changes
    return run_sft("lora", spec, editor_settings(config, "kontext"), train, out, ckpt, LOG)


def test_lora_run_writes_a_loadable_lora_and_learns(setup, tmp_path):
    summary = run(setup, tmp_path / "out", tmp_path / "ckpt")
    assert summary["pairs"] == 6 and not summary["from_scratch"]
    log = pd.read_csv(tmp_path / "out" / "sft_log.csv")
    assert list(log["step"]) == list(range(1, 31))
    assert log["loss"].iloc[-10:].mean() < log["loss"].iloc[:10].mean()
    adapter = load_editor(editor_settings(setup[2], "kontext"))
    adapter.load_lora(tmp_path / "out")
    assert any("lora" in n for n, _ in adapter.transformer.named_parameters())


def test_same_seed_same_weights_and_a_kill_resumes_exactly(setup, tmp_path):
    run(setup, tmp_path / "a", tmp_path / "ckpt-a")
    run(setup, tmp_path / "b", tmp_path / "ckpt-b")
    a = load_file(tmp_path / "a" / LORA_WEIGHT_NAME)
    assert all(
        torch.equal(a[k], v) for k, v in load_file(tmp_path / "b" / LORA_WEIGHT_NAME).items()
    )

    root, train, config = setup
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(config))
    script = textwrap.dedent(
        f"""
        import logging, yaml
        from motionedit.models import editor_settings
        from motionedit.sft import run_sft
        cfg = yaml.safe_load(open({str(tmp_path / "cfg.yaml")!r}))
        run_sft("lora", cfg["sft"]["lora"], editor_settings(cfg, "kontext"), {str(train)!r},
                {str(tmp_path / "k")!r}, {str(tmp_path / "ckpt-k")!r}, logging.getLogger())
        """
    )
    state = tmp_path / "ckpt-k" / STATE_FILE
    kill_once_written(script, state)
    assert not (tmp_path / "k").exists()
    step = torch.load(state, weights_only=True)["step"]
    assert step in (10, 20)

    run(setup, tmp_path / "k", tmp_path / "ckpt-k")
    k = load_file(tmp_path / "k" / LORA_WEIGHT_NAME)
    assert k.keys() == a.keys() and all(torch.equal(a[n], k[n]) for n in a)
    full = pd.read_csv(tmp_path / "a" / "sft_log.csv")
    resumed = pd.read_csv(tmp_path / "k" / "sft_log.csv")
    assert full["loss"].tolist() == resumed["loss"].tolist()


def test_a_checkpoint_of_other_settings_is_not_resumed(setup, tmp_path):
    run(setup, tmp_path / "a", tmp_path / "ckpt", steps=12)
    assert (tmp_path / "ckpt" / STATE_FILE).is_file()
    run(setup, tmp_path / "b", tmp_path / "ckpt", steps=12, lr=5e-4)
    log = pd.read_csv(tmp_path / "b" / "sft_log.csv")
    assert log["step"].tolist() == list(range(1, 13))
    assert log["lr"].iloc[-1] < 5e-4


def test_a_run_can_take_one_part_of_the_videos(setup, tmp_path):
    """An editor's own training and its post-training can use different videos; a video's
    pairs never straddle two parts, and a part with no pairs is refused by name."""
    _, train, config = setup
    table = pd.read_parquet(train)
    table["video_id"] = [f"video{i // 2}" for i in range(len(table))]  # two windows each
    table.to_parquet(tmp_path / "data.parquet")
    parts = [load_pairs(tmp_path / "data.parquet", {"part": k, "of": 2}) for k in (1, 2)]
    ids = [{p.id for p in part} for part in parts]
    assert ids[0] and ids[1] and not ids[0] & ids[1]
    assert ids[0] | ids[1] == set(table["id"])
    video_of = dict(zip(table["id"], table["video_id"], strict=True))
    for k, part in enumerate(ids, start=1):
        assert {video_part(video_of[i], 2) for i in part} == {k}
    empty = next(
        k for k in range(1, 40) if not load_pairs(tmp_path / "data.parquet", {"part": k, "of": 40})
    )
    spec = copy.deepcopy(config["sft"]["lora"]) | {"videos": {"part": empty, "of": 40}}
    with pytest.raises(
        ModelError, match=rf"sft\.lora\.videos: part {empty} of 40 of .* has no pairs"
    ):
        run_sft("lora", spec, editor_settings(config, "kontext"), tmp_path / "data.parquet",
                tmp_path / "out", tmp_path / "ckpt", LOG)  # fmt: skip


def test_sigma_sampling_and_schedule():
    g = torch.Generator().manual_seed(0)
    for mode in ("uniform", "logit_normal"):
        s = sample_sigmas(10_000, mode, g)
        assert s.min() > 0 and s.max() < 1 and abs(float(s.mean()) - 0.5) < 0.02
    f = _lr_lambda(10, 100)
    assert f(0) == pytest.approx(0.1) and f(9) == 1.0 and f(100) == pytest.approx(0.1)


def test_tiny_from_scratch_is_deterministic_and_resumes_with_its_autoencoder(tmp_path, caplog):
    train, _ = make_bench(tmp_path / "train", n=4)
    config = validate_config(
        {
            "sources": [{"name": "s", "kind": "synthetic"}],
            "editors": {"tiny": {"kind": "tiny", "source": "results/models/t", "device": "cpu"}},
            "sft": {
                "t": {
                    "editor": "tiny",
                    "from_scratch": True,
                    "steps": 4,
                    "batch_size": 2,
                    "checkpoint_every": 2,
                    "vae": {"steps": 3, "batch_size": 2},
                }
            },
        }
    )
    spec, editor = config["sft"]["t"], editor_settings(config, "tiny")
    run_sft("t", spec, editor, train, tmp_path / "a", tmp_path / "ckpt-a", LOG)
    run_sft("t", spec, editor, train, tmp_path / "b", tmp_path / "ckpt-b", LOG)
    # The finished run left its step-2 checkpoint (VAE included): resuming from it must land
    # on the same weights as running straight through.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="test"):
        run_sft("t", spec, editor, train, tmp_path / "c", tmp_path / "ckpt-a", LOG)
    assert "vae: loaded from the checkpoint" in caplog.text
    assert "transformer: resumed at step 2 of 4" in caplog.text
    weights = "diffusion_pytorch_model.safetensors"
    for part in ("transformer", "vae"):
        a = load_file(tmp_path / "a" / part / weights)
        for other in ("b", "c"):
            b = load_file(tmp_path / other / part / weights)
            assert all(torch.equal(a[k], b[k]) for k in a), (part, other)
    log = pd.read_csv(tmp_path / "c" / "sft_log.csv")
    assert (log["stage"] == "vae").sum() == 3 and (log["stage"] == "transformer").sum() == 4
