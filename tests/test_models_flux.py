"""The FLUX.1 Kontext adapter on a tiny pipeline built from configs, loaded like a real one."""

from __future__ import annotations

import numpy as np
import pytest
import tiny_flux
import torch
from diffusers import FluxKontextPipeline
from PIL import Image

from motionedit.models import ModelError, editor_settings, load_editor
from motionedit.models.base import edit_size, seeded_generator

PROMPTS = ["make the red subject move left", "raise the arm"]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("kontext")
    tiny_flux.build().save_pretrained(path)
    return path


def settings(source, **inference):
    cfg = {
        "editors": {
            "kontext": tiny_flux.editor(
                source, inference={"steps": 3, "seed": 0, "batch_size": 2, **inference}
            )
        }
    }
    return editor_settings(cfg, "kontext")


def images():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)) for _ in range(2)]


def perturb_lora(adapter):
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in adapter.transformer.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)


def test_paper_defaults_fill_what_the_config_leaves_out(source):
    s = settings(source)
    assert s["inference"]["guidance_scale"] == 2.5 and s["inference"]["steps"] == 3
    cfg = {"editors": {"q": {"kind": "qwen-image-edit", "source": "Qwen/Qwen-Image-Edit"}}}
    q = editor_settings(cfg, "q")["inference"]
    assert (q["steps"], q["true_cfg_scale"], q["guidance_scale"]) == (28, 4.0, 1.0)


def test_edit_size_keeps_aspect_and_multiples():
    assert edit_size(80, 60, 48 * 64, 16) == (64, 48)
    w, h = edit_size(132, 198, 64 * 64, 4)
    assert w % 4 == h % 4 == 0 and abs(w / h - 132 / 198) < 0.05 and w * h <= 64 * 64


def test_encode_velocity_decode_shapes(source):
    adapter = load_editor(settings(source))
    cond = adapter.condition(images(), PROMPTS)
    assert (cond.height, cond.width) == (48, 64)
    x0 = adapter.encode_images(images(), cond)
    assert x0.shape == cond.batched["image_latents"].shape == (2, 12 * 16, 16)
    v = adapter.velocity(x0, torch.tensor([0.3, 0.7]), cond)
    assert v.shape == x0.shape and torch.isfinite(v).all()
    decoded = adapter.decode(x0, cond)
    assert decoded.shape == (2, 3, 48, 64) and decoded.min() >= 0 and decoded.max() <= 1
    sig = adapter.sigmas(4, cond)
    assert sig[0] == 1 and sig[-1] == 0 and len(sig) == 5 and (sig[:-1] > sig[1:]).all()


def test_dpm2_rollouts_are_the_released_deterministic_solver(source):
    """``solver="dpm2"`` against the released rollout solver (flow_grpo/diffusers_patch/
    solver.py, deterministic ``dpm2``) stated here: x0 predictions, a DDIM step (eta 0)
    first and last, the DPM-Solver++ 2M update with the log-SNR of alpha = 1 - sigma
    between; a previous level of 1 has log-SNR -inf, which zeroes the second-order term."""
    adapter = load_editor(settings(source))
    cond = adapter.condition([images()[0]], PROMPTS[:1])
    noise = adapter.noise(cond, seeded_generator(4))
    steps = 6
    sig = adapter.sigmas(steps, cond).double()

    def log_snr(q):
        return torch.log(1 - q) - torch.log(q)

    x, x0s = noise.double(), []
    with torch.no_grad():
        for i in range(steps):
            v = adapter.velocity(x.float(), sig[i].float().expand(1), cond).double()
            x0s.append(x - sig[i] * v)
            s, t = sig[i], sig[i + 1]
            if i in (0, steps - 1):
                noise_pred = (x - (1 - s) * x0s[-1]) / s
                x = (1 - t) * x0s[-1] + t * noise_pred
            else:
                h, h0 = log_snr(t) - log_snr(s), log_snr(s) - log_snr(sig[i - 1])
                d0, d1 = x0s[-1], (h / h0) * (x0s[-1] - x0s[-2])
                e = (1 - t) * (torch.exp(-h) - 1.0)
                x = (t / s) * x - e * d0 - 0.5 * e * d1
        ours = adapter.sample(cond, steps, latents=noise, solver="dpm2")
        euler = adapter.sample(cond, steps, latents=noise, solver="euler")
        assert torch.allclose(ours.double(), x, atol=1e-5)
        assert not torch.allclose(ours, euler, atol=1e-4)  # the solvers differ at 6 steps
        two = adapter.sample(cond, 2, latents=noise, solver="dpm2")
        assert torch.equal(two, adapter.sample(cond, 2, latents=noise, solver="euler"))


def test_sampler_is_the_pipeline_denoising_loop(source):
    """Our rollout and FluxKontextPipeline.__call__ give the same latents from the same noise."""
    adapter = load_editor(settings(source))
    image = images()[0]
    cond = adapter.condition([image], PROMPTS[:1])
    ours = adapter.sample(cond, 3, seeded_generator(0))
    assert torch.equal(ours, adapter.sample(cond, 3, seeded_generator(0)))
    theirs = adapter.pipe(
        image=[image.resize((64, 48), Image.Resampling.BICUBIC)],
        prompt=PROMPTS[:1],
        height=48,
        width=64,
        num_inference_steps=3,
        guidance_scale=2.5,
        generator=[seeded_generator(0)],
        max_area=48 * 64,
        _auto_resize=False,
        max_sequence_length=16,
        output_type="latent",
    ).images
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_edit_runs_at_the_configured_size_and_ignores_batching(source):
    adapter = load_editor(settings(source))
    both = adapter.edit(images(), PROMPTS, seed=0)
    assert [im.size for im in both] == [(64, 48), (64, 48)]
    alone = adapter.edit(images()[:1], PROMPTS[:1], seed=0)
    assert np.abs(np.asarray(both[0], int) - np.asarray(alone[0], int)).max() <= 1


def test_true_cfg_runs_with_a_negative_prompt(source):
    adapter = load_editor(settings(source, true_cfg_scale=3.0))
    plain = load_editor(settings(source))
    assert adapter.edit(images()[:1], PROMPTS[:1], 0)[0].tobytes() != (
        plain.edit(images()[:1], PROMPTS[:1], 0)[0].tobytes()
    )


def test_lora_save_and_reload_give_the_same_outputs(source, tmp_path):
    adapter = load_editor(settings(source))
    cond = adapter.condition(images(), PROMPTS)
    x0 = adapter.encode_images(images(), cond)
    sigma = torch.tensor([0.4, 0.8])
    v_base = adapter.velocity(x0, sigma, cond)
    adapter.add_lora(rank=4, alpha=8)
    trainable = [n for n, p in adapter.transformer.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    perturb_lora(adapter)
    v_lora = adapter.velocity(x0, sigma, cond)
    assert (v_lora - v_base).abs().max() > 1e-3
    edited = adapter.edit(images(), PROMPTS, 0)
    adapter.save_lora(tmp_path / "lora")

    fresh = load_editor(settings(source))
    fresh.load_lora(tmp_path / "lora")
    assert torch.equal(fresh.velocity(x0, sigma, fresh.condition(images(), PROMPTS)), v_lora)
    assert [im.tobytes() for im in fresh.edit(images(), PROMPTS, 0)] == [
        im.tobytes() for im in edited
    ]
    # Plain diffusers reads our output too: the format is the library's own.
    pipe = FluxKontextPipeline.from_pretrained(source)
    pipe.load_lora_weights(tmp_path / "lora")
    out = pipe(
        image=images()[0].resize((64, 48), Image.Resampling.BICUBIC),
        prompt=PROMPTS[0],
        height=48,
        width=64,
        num_inference_steps=3,
        guidance_scale=2.5,
        generator=seeded_generator(0),
        max_area=48 * 64,
        _auto_resize=False,
        max_sequence_length=16,
    ).images[0]
    assert out.tobytes() == edited[0].tobytes()


def test_missing_model_names_the_config_key(tmp_path):
    cfg = {"editors": {"mine": {"kind": "flux-kontext", "source": str(tmp_path / "nope")}}}
    with pytest.raises(ModelError, match=r"editors\.mine\.source"):
        load_editor(editor_settings(cfg, "mine"))
    cfg["editors"]["mine"]["source"] = "someone/not-cached-anywhere"
    with pytest.raises(ModelError, match=r"editors\.mine\.source.*HF_HUB_OFFLINE"):
        load_editor(editor_settings(cfg, "mine"))
    with pytest.raises(ModelError, match=r"editors\.other: no such editor"):
        editor_settings(cfg, "other")
