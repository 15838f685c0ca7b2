"""The Qwen-Image-Edit adapters against tiny pipelines with random weights.

The central check is that an Euler sample through the adapter (condition, noise, sigmas,
velocity, decode) gives the very image the pipeline's own ``__call__`` gives: that is what
makes a LoRA trained through the adapter the LoRA users get when they load it.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_qwen import sample_image, save_like_the_hub, tiny_pipeline

from motionedit.models import load_editor
from motionedit.models.base import LORA_WEIGHT_NAME, ModelError, seeded_generator, tensor_to_pil
from motionedit.models.qwen_image_edit import (
    ImageOnlyQwen2VLProcessor,
    QwenImageEditAdapter,
    QwenImageEditPlusAdapter,
    load_qwen_image_edit,
)

MAX_AREA = 64 * 48
SIZE = (64, 48)  # the edit size of a 4:3 image at MAX_AREA (multiples of 8 here)
PROMPTS = ["make the cat jump", "turn the head to the left, slowly"]


@pytest.fixture(autouse=True)
def _one_thread():
    """Toy-sized ops are 100x slower when two threads fight over shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=[False, True], ids=["edit", "edit-plus"])
def plus(request) -> bool:
    return request.param


def settings_for(plus: bool, **inference: Any) -> dict[str, Any]:
    kind = QwenImageEditPlusAdapter.kind if plus else QwenImageEditAdapter.kind
    return {
        "name": "tiny-qwen",
        "kind": kind,
        "source": "unused",
        "revision": None,
        "dtype": "float32",
        "device_resolved": "cpu",
        "offload": "none",
        "max_area": MAX_AREA,
        "inference": {
            "steps": 3,
            "guidance_scale": 1.0,
            "true_cfg_scale": 4.0,
            "negative_prompt": None,
            "seed": 0,
            "batch_size": 2,
            **inference,
        },
    }


def make_adapter(plus: bool, **inference: Any) -> QwenImageEditAdapter:
    adapter_class = QwenImageEditPlusAdapter if plus else QwenImageEditAdapter
    return adapter_class(tiny_pipeline(plus), settings_for(plus, **inference))


def inputs() -> list:
    return [sample_image(seed=1), sample_image(seed=2)]


def targets() -> list:
    return [sample_image(seed=3), sample_image(seed=4)]


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_condition(plus):
    adapter = make_adapter(plus)
    assert adapter.size_multiple == 8
    cond = adapter.condition(inputs(), PROMPTS)
    assert (cond.width, cond.height) == SIZE and len(cond) == 2
    embeds = cond.batched["prompt_embeds"]
    mask = cond.batched["prompt_embeds_mask"]
    assert embeds.shape[0] == 2 and embeds.shape[2] == 16 and mask.shape == embeds.shape[:2]
    # The shorter prompt is zero-padded and masked, as the pipeline pads a batch.
    lengths = mask.sum(dim=1)
    assert lengths[0] < lengths[1] == embeds.shape[1]
    assert torch.all(embeds[0, int(lengths[0]) :] == 0)
    tokens = (SIZE[1] // 8) * (SIZE[0] // 8)
    assert cond.batched["image_latents"].shape == (2, tokens, 16)
    assert cond.shared["img_shapes"] == [(1, SIZE[1] // 8, SIZE[0] // 8)] * 2
    # The Plus pipeline's VL encoder reads a smaller copy; the original one the same image.
    assert cond.shared["vl_size"] == ((32, 32) if plus else SIZE)


def test_encode_velocity_decode(plus):
    adapter = make_adapter(plus)
    cond = adapter.condition(inputs(), PROMPTS)
    x0 = adapter.encode_images(targets(), cond)
    assert x0.shape == cond.batched["image_latents"].shape
    noise = adapter.noise(cond, seeded_generator(0))
    assert noise.shape == x0.shape
    sigma = torch.tensor([0.3, 0.8])
    x_t = (1 - sigma[:, None, None]) * x0 + sigma[:, None, None] * noise
    v = adapter.velocity(x_t, sigma, cond)
    assert v.shape == x0.shape and torch.isfinite(v).all()
    # Items are independent: a sub-batch or a repeated batch gives the same rows.
    one = adapter.velocity(x_t[1:], sigma[1:], cond.select([1]))
    torch.testing.assert_close(one, v[1:], rtol=1e-4, atol=1e-5)
    group = adapter.velocity(
        x_t.repeat_interleave(2, 0), sigma.repeat_interleave(2), cond.repeat(2)
    )
    torch.testing.assert_close(group[::2], v, rtol=1e-4, atol=1e-5)
    images = adapter.decode(x0, cond)
    assert images.shape == (2, 3, SIZE[1], SIZE[0])
    assert images.min() >= 0 and images.max() <= 1


def test_sigmas(plus):
    adapter = make_adapter(plus)
    sigmas = adapter.sigmas(4, adapter.condition(inputs()[:1], PROMPTS[:1]))
    assert len(sigmas) == 5 and sigmas[0] == 1 and sigmas[-1] == 0
    assert torch.all(sigmas[1:] < sigmas[:-1])
    # The released scheduler stretches the shifted schedule to end at 0.02 before the 0.
    assert sigmas[-2] == pytest.approx(0.02)


def test_sample_is_deterministic(plus):
    adapter = make_adapter(plus)
    cond = adapter.condition(inputs(), PROMPTS)
    first = adapter.sample(cond, 3, seeded_generator(11))
    again = adapter.sample(cond, 3, seeded_generator(11))
    other = adapter.sample(cond, 3, seeded_generator(12))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert torch.isfinite(first).all()


def test_edit_is_the_adapters_sample(plus):
    """Without CFG the pipeline's own call and an adapter sample are the same image."""
    adapter = make_adapter(plus, true_cfg_scale=1.0)
    image, prompt = inputs()[0], PROMPTS[0]
    edited = adapter.edit([image], [prompt], seed=7)
    cond = adapter.condition([image], [prompt])
    sampled = adapter.decode(adapter.sample(cond, 3, seeded_generator(7)), cond)
    assert edited[0].size == SIZE
    assert np.abs(pixels(edited[0]) - pixels(tensor_to_pil(sampled)[0])).max() <= 1


def test_edit_with_true_cfg_at_the_edit_size(plus, monkeypatch):
    adapter = make_adapter(plus)
    module = sys.modules[type(adapter.pipe).__call__.__module__]
    original = module.calculate_dimensions
    images = [inputs()[0], sample_image(80, 60, seed=5)]
    # What the VAE encodes is what the pipeline resized the input to: the edit size, not
    # the pipeline's own 1024x1024 (which made a toy edit take seconds).
    encoded: list[tuple[int, int]] = []
    encode = adapter.pipe.vae.encode

    def watched(x, *args, **kwargs):
        encoded.append((x.shape[-1], x.shape[-2]))
        return encode(x, *args, **kwargs)

    monkeypatch.setattr(adapter.pipe.vae, "encode", watched)
    edited = adapter.edit(images, PROMPTS, seed=3)
    assert [im.size for im in edited] == [SIZE, SIZE]
    assert encoded and set(encoded) == {SIZE}, f"the VAE encoded {encoded}, not {SIZE}"
    assert module.calculate_dimensions is original
    again = adapter.edit(images, PROMPTS, seed=3)
    assert all(np.array_equal(pixels(a), pixels(b)) for a, b in zip(edited, again, strict=True))
    # The same seed for every item: an image does not depend on its batch.
    alone = adapter.edit(images[1:], PROMPTS[1:], seed=3)
    assert np.abs(pixels(alone[0]) - pixels(edited[1])).max() <= 1


def test_bfloat16(plus):
    adapter = make_adapter(plus, true_cfg_scale=1.0)
    adapter.pipe.to(torch.bfloat16)
    adapter.dtype = torch.bfloat16
    image, prompt = inputs()[0], PROMPTS[0]
    cond = adapter.condition([image], [prompt])
    assert cond.batched["prompt_embeds"].dtype == torch.bfloat16
    assert cond.batched["image_latents"].dtype == torch.bfloat16
    latents = adapter.sample(cond, 3, seeded_generator(7))
    assert latents.dtype == torch.bfloat16
    edited = adapter.edit([image], [prompt], seed=7)[0]
    # base.sample steps in float32 where the scheduler multiplies dt * v in bfloat16: a
    # level or two of rounding apart, nothing more.
    sampled = tensor_to_pil(adapter.decode(latents, cond))[0]
    assert np.abs(pixels(edited) - pixels(sampled)).max() <= 4


@pytest.mark.parametrize("ratio", [4 / 3, 3 / 4, 16 / 9, 1.0, 0.37, 2.9])
def test_at_the_default_budget_the_edit_size_is_the_pipelines(plus, ratio, monkeypatch):
    adapter = make_adapter(plus)
    monkeypatch.setattr(adapter.pipe, "vae_scale_factor", 8)  # the released VAE's factor
    monkeypatch.setitem(adapter.settings, "max_area", 1024 * 1024)
    module = sys.modules[type(adapter.pipe).__call__.__module__]
    image = Image.new("RGB", (round(1000 * ratio), 1000))
    theirs = module.calculate_dimensions(1024 * 1024, image.width / image.height)[:2]
    assert adapter.edit_size(image) == tuple(theirs)


def test_size_override_refuses_unknown_areas():
    adapter = make_adapter(False)
    module = sys.modules[type(adapter.pipe).__call__.__module__]
    with adapter._sizes(SIZE, SIZE), pytest.raises(ModelError, match="unknown resize area"):
        module.calculate_dimensions(512 * 512, 1.0)


def test_default_lora_targets_exist():
    names = {n.rsplit(".attn.", 1)[-1] for n, _ in make_adapter(False).transformer.named_modules()}
    assert set(QwenImageEditAdapter.default_lora_targets) <= names


def test_lora_save_and_load(plus, tmp_path):
    adapter = make_adapter(plus)
    cond = adapter.condition(inputs(), PROMPTS)
    noise = adapter.noise(cond, seeded_generator(0))
    sigma = torch.tensor([0.6, 0.9])
    base = adapter.velocity(noise, sigma, cond)
    adapter.add_lora(rank=4, alpha=4.0)
    params = adapter.lora_parameters()
    targets = {
        n.split(".attn.")[1].split(".lora_")[0]
        for n, _ in adapter.transformer.named_parameters()
        if "lora_" in n
    }
    assert targets == set(adapter.default_lora_targets)
    # Gradients reach the LoRA through velocity(): what training needs. The last block's
    # text-stream output is never used, so its to_add_out alone gets none.
    adapter.velocity(noise, sigma, cond).square().mean().backward()
    last = len(adapter.transformer.transformer_blocks) - 1
    no_grad = {
        n.split(".lora_")[0]
        for n, p in adapter.transformer.named_parameters()
        if "lora_" in n and p.grad is None
    }
    assert no_grad == {f"transformer_blocks.{last}.attn.to_add_out"}
    with torch.no_grad():
        for p in params:
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    with torch.no_grad():
        tuned = adapter.velocity(noise, sigma, cond)
        tuned_sample = adapter.sample(cond, 2, seeded_generator(1))
    assert (tuned - base).abs().max() > 1e-3
    assert adapter.save_lora(tmp_path) == tmp_path / LORA_WEIGHT_NAME

    fresh = make_adapter(plus)
    fresh.load_lora(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(fresh.velocity(noise, sigma, cond), tuned)
        torch.testing.assert_close(fresh.sample(cond, 2, seeded_generator(1)), tuned_sample)

    pipe = tiny_pipeline(plus)
    pipe.load_lora_weights(str(tmp_path))
    direct = type(adapter)(pipe, adapter.settings)
    with torch.no_grad():
        torch.testing.assert_close(direct.velocity(noise, sigma, cond), tuned)


def test_load_from_a_folder(plus, tmp_path):
    saved = tiny_pipeline(plus)
    source = save_like_the_hub(saved, tmp_path / "qwen")
    settings = {**settings_for(plus), "source": str(source)}
    adapter = load_editor(settings)  # the registry picks the kind's loader
    assert type(adapter) is (QwenImageEditPlusAdapter if plus else QwenImageEditAdapter)
    assert isinstance(adapter.pipe.processor, ImageOnlyQwen2VLProcessor)
    reference = type(adapter)(saved, settings)
    cond = reference.condition(inputs()[:1], PROMPTS[:1])
    noise = reference.noise(cond, seeded_generator(0))
    sigma = torch.tensor([0.5])
    with torch.no_grad():
        torch.testing.assert_close(
            adapter.velocity(noise, sigma, adapter.condition(inputs()[:1], PROMPTS[:1])),
            reference.velocity(noise, sigma, cond),
            rtol=1e-4,
            atol=1e-5,
        )


@pytest.mark.parametrize("missing", ["local", "hub"])
def test_missing_model_names_the_config_key(missing, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = str(tmp_path / "no-such-model") if missing == "local" else "nobody/no-such-model"
    settings = {**settings_for(False), "name": "myqwen", "source": source}
    with pytest.raises(ModelError, match=r"editors\.myqwen\.source") as err:
        load_qwen_image_edit(settings)
    if missing == "hub":
        assert "HF_HUB_OFFLINE" in str(err.value)
