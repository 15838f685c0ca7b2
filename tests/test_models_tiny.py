"""The tiny editor: built from the configs in the repository, copy-initialised, trainable here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from motionedit.models import editor_settings, load_editor
from motionedit.models.tiny import (
    TINY_ARCHITECTURE,
    build_tiny_pipeline,
    build_tokenizers,
    train_autoencoder,
)

PROMPTS = ["Move the red subject to the left.", "Make the two subjects move apart."]


def image(seed=0, size=(40, 30)):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny")
    build_tiny_pipeline(TINY_ARCHITECTURE, PROMPTS, seed=0).save_pretrained(path)
    return path


def adapter_for(source):
    cfg = {"editors": {"tiny": {"kind": "tiny", "source": str(source), "device": "cpu"}}}
    return load_editor(editor_settings(cfg, "tiny"))


def test_same_seed_same_weights():
    a = build_tiny_pipeline(TINY_ARCHITECTURE, PROMPTS, seed=3)
    b = build_tiny_pipeline(TINY_ARCHITECTURE, PROMPTS, seed=3)
    for name in ("transformer", "vae", "text_encoder", "text_encoder_2"):
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), name


def test_tokenizers_know_the_training_words_and_survive_a_reload(source):
    clip, t5 = build_tokenizers(PROMPTS)
    ids = t5("move the red subject", return_tensors="pt").input_ids[0].tolist()
    assert t5.unk_token_id not in ids and ids[-1] == t5.eos_token_id
    assert t5("teleport the cat").input_ids[0] == t5.unk_token_id
    assert clip("move").input_ids[0] == clip.bos_token_id
    reloaded = adapter_for(source).pipe.tokenizer_2
    assert reloaded("move the red subject").input_ids == ids


def test_the_untrained_transformer_is_the_copy_editor(source):
    """One Euler step from sigma = 1 returns the condition latents, whatever the noise."""
    adapter = adapter_for(source)
    cond = adapter.condition([image(0), image(1)], PROMPTS)
    noise = adapter.noise(cond, torch.Generator().manual_seed(0))
    v = adapter.velocity(noise, torch.ones(2), cond)
    copied = noise - v
    target = cond.batched["image_latents"]
    assert (copied - target).abs().max() < 0.02 * target.abs().max()
    one_step = adapter.sample(cond, 1, torch.Generator().manual_seed(5))
    assert torch.allclose(one_step, copied, atol=0.05)


def test_autoencoder_training_lowers_the_loss_and_normalises_latents():
    pipe = build_tiny_pipeline(TINY_ARCHITECTURE, PROMPTS, seed=0)
    images = [np.asarray(image(i, (32, 24))) for i in range(8)]
    losses = []
    train_autoencoder(pipe.vae, images, 30, 4, 2e-3, seed=0, progress=lambda s, x: losses.append(x))
    assert len(losses) == 30 and np.mean(losses[-5:]) < np.mean(losses[:5])
    with torch.no_grad():
        batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1
        z = pipe.vae.encode(batch).latent_dist.mode()
        z = (z - pipe.vae.config.shift_factor) * pipe.vae.config.scaling_factor
    assert abs(float(z.mean())) < 0.05 and abs(float(z.std()) - 1) < 0.1


def test_adapter_round_trip_lora_and_edit(source, tmp_path):
    adapter = adapter_for(source)
    cond = adapter.condition([image(0), image(1)], PROMPTS)
    assert (cond.width, cond.height) == (36, 24)  # at most 32*32 pixels, about 4:3, multiples of 4
    x0 = adapter.encode_images([image(2), image(3)], cond)
    decoded = adapter.decode(x0, cond)
    assert decoded.shape == (2, 3, 24, 36)
    adapter.add_lora(rank=4, alpha=4)
    with torch.no_grad():
        for name, p in adapter.transformer.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.2, generator=torch.Generator().manual_seed(1))
    sigma = torch.tensor([0.3, 1.0])
    v = adapter.velocity(x0, sigma, cond)
    edited = adapter.edit([image(0)], PROMPTS[:1], seed=0)
    assert edited[0].size == (36, 24)
    adapter.save_lora(tmp_path / "lora")
    fresh = adapter_for(source)
    fresh.load_lora(tmp_path / "lora")
    assert torch.equal(fresh.velocity(x0, sigma, fresh.condition([image(0), image(1)], PROMPTS)), v)
    assert fresh.edit([image(0)], PROMPTS[:1], seed=0)[0].tobytes() == edited[0].tobytes()
