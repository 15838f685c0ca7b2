"""The trainer's MotionNFT step against an independent statement of the released algorithm.

The statement below is written from the paper's equations (eqs. 1-3 of MotionEdit, i.e.
DiffusionNFT) and from what the authors' released trainer does in one epoch
(elainew728/motion-edit, train/scripts/train_nft_kontext.py with flow_grpo/
stat_tracking.py and train/config/kontext_nft.py):

- optimality rewards: (reward - its group's mean) / (population std of *every* reward of
  the step + 1e-4), clipped to +-adv_clip and mapped to [0, 1];
- the mask: a group counts only if its std > min_std AND its mean < max_mean (a missing
  reward, NaN, fails both comparisons); a group with std < min_std AND mean > max_mean is
  banned from later sampling;
- the noise levels: the rollout sampler's own schedule (6 steps of the pipeline's shifted
  schedule in the released configs); every kept sample trains at int(steps x 0.99) of
  them, distinct, in a random order, each with fresh noise (``timestep_fraction``);
- the model: the transformer called the way the released Kontext trainer calls it, with
  the condition latents appended and the *training* guidance, on images resized to the
  square training resolution;
- the loss, in x0 space with the adaptive weights: adv_clip / beta times the mean over the
  kept samples of r * positive + (1 - r) * negative, plus kl_weight times the mean
  squared distance of the policy's velocity to the base model's, averaged over the noise
  levels of every sample (the released code takes the masked mean per micro-batch of 2
  and averages the micro-batches; the two agree when every micro-batch holds as many
  kept samples, and the mean over the step's kept samples is what is stated here);
- one AdamW step after clipping the gradient norm, then old <- d old + (1 - d) new with
  d = min(rate * step, max), and the EMA with its warm-up decay min((1 + k)/(10 + k), 0.9)
  (flow_grpo/ema.py).

The statement uses numpy and torch directly and none of motionedit.nft's helpers; the
model is reached through the transformer itself and peft's adapter switches. Only the
data the step drew is taken from the trainer: its rollouts (x0 and the conditioning) and
the noise levels and noise of the loss, in step order; the levels are checked against the
schedule computed here.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import tiny_flux
import torch
from test_inference import make_bench

from motionedit.config import validate_config
from motionedit.models import editor_settings
from motionedit.nft import trainer as nft
from motionedit.rewards import Scores
from motionedit.training import load_pairs

LOG = logging.getLogger("test-nft-reference")
NAN = float("nan")


# ---------------------------------------------------------------- the released algorithm
def released_optimality(raw: np.ndarray, adv_clip: float) -> np.ndarray:
    """r per sample from raw rewards [G, K] (stat_tracking.py with global_std, then the loss's
    clip and map). A missing reward is left out of the std (the released code has none)."""
    z = raw[~np.isnan(raw)].std() + 1e-4  # np.std: the population std
    advantage = (raw - raw.mean(axis=1, keepdims=True)) / z
    advantage = np.clip(advantage, -adv_clip, adv_clip)
    return np.clip(advantage / adv_clip / 2.0 + 0.5, 0.0, 1.0)


def released_mask(raw: np.ndarray, min_std: float, max_mean: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return (raw.std(axis=1) > min_std) & (raw.mean(axis=1) < max_mean)


def released_ban(raw: np.ndarray, min_std: float, max_mean: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return (raw.std(axis=1) < min_std) & (raw.mean(axis=1) > max_mean)


def released_loss(v_theta, v_old, v_ref, x0, x_t, t, r, run) -> torch.Tensor:
    """One noise draw's loss over the kept samples (the released loss lines, no mask left)."""
    beta, adv_clip = run["beta"], run["adv_clip"]
    t = t.view(-1, 1, 1)
    dims = (1, 2)
    v_pos = beta * v_theta + (1 - beta) * v_old
    v_neg = (1 + beta) * v_old - beta * v_theta
    x0_pos, x0_neg = x_t - t * v_pos, x_t - t * v_neg
    w_pos = (x0_pos.detach().double() - x0.double()).abs().mean(dims, keepdim=True).clip(1e-5)
    w_neg = (x0_neg.detach().double() - x0.double()).abs().mean(dims, keepdim=True).clip(1e-5)
    positive = ((x0_pos - x0) ** 2 / w_pos).mean(dims)
    negative = ((x0_neg - x0) ** 2 / w_neg).mean(dims)
    policy = (r * positive / beta + (1 - r) * negative / beta) * adv_clip
    kl = ((v_theta - v_ref) ** 2).mean(dims)
    return policy.mean() + run["kl_weight"] * kl.mean()


def released_velocity(transformer, x_t, t, cond, guidance: float) -> torch.Tensor:
    """The Kontext transformer's velocity as train_nft_kontext.py asks for it: the noisy
    latents with the condition image's latents appended, ``timestep = t``, the training
    guidance, and the output over the noisy tokens only."""
    out = transformer(
        hidden_states=torch.cat([x_t, cond.batched["image_latents"]], dim=1),
        guidance=torch.full((len(x_t),), guidance),
        timestep=t,
        encoder_hidden_states=cond.batched["prompt_embeds"],
        pooled_projections=cond.batched["pooled_prompt_embeds"],
        txt_ids=cond.shared["text_ids"],
        img_ids=cond.shared["img_ids"],
        return_dict=False,
    )[0]
    return out[:, : x_t.shape[1]]


def released_schedule(steps: int, tokens: int) -> np.ndarray:
    """The Kontext pipeline's noise levels: linspace(1, 1/steps) shifted with mu linear in
    the image's token count (0.5 at 256 tokens, 1.15 at 4096), sigma' = e^mu / (e^mu +
    1/sigma - 1); the sampler's timesteps are these x 1000, and train on t = timestep/1000."""
    mu = 0.5 + (1.15 - 0.5) * (tokens - 256) / (4096 - 256)
    sigma = np.linspace(1.0, 1.0 / steps, steps)
    return np.exp(mu) / (np.exp(mu) + (1.0 / sigma - 1.0))


def clipped(grads: list[torch.Tensor], max_norm: float) -> list[torch.Tensor]:
    total = torch.sqrt(sum((g.double() ** 2).sum() for g in grads))
    factor = max_norm / (total + 1e-6)
    return [g * factor for g in grads] if factor < 1 else grads


def adamw_first_step(p, g, lr, weight_decay, betas=(0.9, 0.999), eps=1e-8) -> torch.Tensor:
    m_hat = (1 - betas[0]) * g / (1 - betas[0])
    v_hat = (1 - betas[1]) * g * g / (1 - betas[1])
    return p * (1 - lr * weight_decay) - lr * m_hat / (v_hat.sqrt() + eps)


# ---------------------------------------------------------------- the filter and the scale
def test_group_keep_is_the_released_mask_and_the_scale_is_the_std_of_all_rewards():
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.0, 1.0, (400, 6))
    raw[:100] = 0.93 + rng.uniform(0, 0.1, (100, 1)) * rng.uniform(0.8, 1.2, (100, 6))
    raw[100:150] = rng.uniform(0.3, 0.7, (50, 1)) + rng.normal(0, 0.05, (50, 6))
    raw[150:170, 2] = NAN
    for min_std, max_mean in ((0.05, 0.9), (0.0, 0.9), (0.02, 0.6)):
        got = nft.group_keep(torch.from_numpy(raw), min_std, max_mean).numpy()
        assert (got == released_mask(raw, min_std, max_mean)).all()
        assert got.any() and not got.all()
        banned = nft.group_banned(torch.from_numpy(raw), min_std, max_mean).numpy()
        assert (banned == released_ban(raw, min_std, max_mean)).all()
    r = nft.optimality_rewards(torch.from_numpy(raw), adv_clip=5.0).numpy()
    expected = released_optimality(raw, 5.0)
    assert np.allclose(r[150:170], expected[150:170], equal_nan=True)
    assert np.allclose(r, expected, atol=1e-12, equal_nan=True)


# ---------------------------------------------------------------- one step of the trainer
#: The step's fixed rewards, group by group: spread (kept), solved (dropped and banned),
#: incomplete (dropped), spread (kept).
RAW = np.array([[0.2, 0.5, 0.9], [0.95, 0.95, 0.96], [0.3, NAN, 0.6], [0.1, 0.12, 0.4]])


class FixedRewards:
    """The reward mix's interface, answering RAW in the order the edits come."""

    components: dict = {}

    def __call__(self, inputs, edited, prompts, targets) -> Scores:
        total = torch.from_numpy(RAW.reshape(-1)[: len(edited)].copy())
        return Scores(total=total, parts={"fixed": total}, errors=[None] * len(edited))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("nft-reference")
    tiny_flux.build().save_pretrained(root / "pipe")
    train, _ = make_bench(root / "train", n=4, sizes=((48, 64),))
    config = validate_config(
        {
            "sources": [{"name": "s", "kind": "synthetic"}],
            "flow": {"backend": "dis", "max_side": 64},
            "editors": {"kontext": tiny_flux.editor(root / "pipe")},
            "train": {
                "nft": {
                    "editor": "kontext",
                    "groups": 4,
                    "group_size": 3,
                    "sampling_steps": 3,  # 2 of the 3 levels per sample (int(3 x 0.99))
                    "resolution": 32,  # the inputs are 48x64: squeezed to 32x32
                    "guidance": 1.0,  # the editor's inference guidance is 2.5
                    "micro_batch": 4,  # 6 kept samples: micro-batches of 4 and 2
                    "beta": 0.7,
                    "adv_clip": 2.0,
                    "kl_weight": 0.05,
                    "lr": 1e-3,
                    "weight_decay": 1e-2,
                    "grad_clip": 1e-3,
                    "old_decay": {"rate": 0.1, "max": 0.5},
                    "ema_decay": 0.9,
                    "lora": {"rank": 4, "alpha": 4},
                    "rewards": {"appearance": 1.0},
                }
            },
        }
    )
    return config, load_pairs(train)


def test_one_trainer_step_is_the_released_step(tiny, monkeypatch):
    config, pairs = tiny
    run = copy.deepcopy(config["train"]["nft"])
    trainer = nft.MotionNFT("nft", run, editor_settings(config, "kontext"), config, pairs, [],
                            LOG, rewards=FixedRewards())  # fmt: skip
    # What the step draws, recorded as it is drawn.
    seen: dict = {"loss_noise": []}
    rollouts, draw = trainer._rollouts, trainer.sampler.draw
    loss_timesteps, loss_noise = nft.loss_timesteps, nft.loss_noise

    def recording_rollouts(batch):
        seen["cond"], seen["x0"], images = rollouts(batch)
        return seen["cond"], seen["x0"], images

    def recording_draw(banned):
        seen["pairs"] = draw(banned)
        return seen["pairs"]

    def recording_loss_timesteps(*args, **kwargs):
        seen["levels"] = loss_timesteps(*args, **kwargs)
        return seen["levels"]

    def recording_loss_noise(*args, **kwargs):
        seen["loss_noise"].append(loss_noise(*args, **kwargs))
        return seen["loss_noise"][-1]

    monkeypatch.setattr(trainer, "_rollouts", recording_rollouts)
    monkeypatch.setattr(trainer.sampler, "draw", recording_draw)
    monkeypatch.setattr(nft, "loss_timesteps", recording_loss_timesteps)
    monkeypatch.setattr(nft, "loss_noise", recording_loss_noise)
    before = {name: [p.detach().clone() for p in getattr(trainer, name)]
              for name in ("policy", "old", "ema")}  # fmt: skip
    row = trainer.train_step()
    after = {name: [p.detach().clone() for p in getattr(trainer, name)]
             for name in ("policy", "old", "ema")}  # fmt: skip
    # The gradient the optimiser stepped with (reduced and clipped) stays on the parameters.
    step_grads = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in trainer.policy]

    # The reference, from the initial weights and the recorded draws.
    k = run["group_size"]
    spec = run["group_filter"]
    r = released_optimality(RAW, run["adv_clip"])
    keep = released_mask(RAW, spec["min_std"], spec["max_mean"])
    assert keep.tolist() == [True, False, False, True]
    kept = [g * k + j for g in np.flatnonzero(keep) for j in range(k)]
    cond, x0 = seen["cond"].select(kept), seen["x0"][kept]
    r_kept = torch.from_numpy(r.reshape(-1)[kept])
    transformer = trainer.adapter.transformer
    with torch.no_grad():  # back to the weights the step started from
        for name in ("policy", "old"):
            for p, value in zip(getattr(trainer, name), before[name], strict=True):
                p.copy_(value)
    # The rollouts were made at the square training size, and the levels are the sampler's.
    assert (cond.height, cond.width) == (32, 32)
    tokens = int(cond.batched["image_latents"].shape[1])
    schedule = released_schedule(run["sampling_steps"], tokens)
    levels = seen["levels"].double().numpy()  # [timesteps, kept samples]
    per_sample = int(run["sampling_steps"] * 0.99)
    assert levels.shape == (per_sample, len(kept)) == (2, 6)
    for column in levels.T:
        assert len(set(column.round(6))) == per_sample  # distinct levels of one sample
        assert all(np.isclose(schedule, level, atol=1e-6).any() for level in column)
    assert len(np.unique(levels.round(6))) == run["sampling_steps"]  # all of them are used
    assert len(seen["loss_noise"]) == per_sample
    losses = []
    guidance = run["guidance"]
    for sigma, noise in zip(seen["levels"], seen["loss_noise"], strict=True):
        assert noise.shape == x0.shape  # fresh noise for every kept sample at every level
        t = sigma.view(-1, 1, 1)
        x_t = (1 - t) * x0 + t * noise
        with torch.no_grad():
            transformer.set_adapter("old")
            v_old = released_velocity(transformer, x_t, sigma, cond, guidance)
            transformer.disable_adapters()
            v_ref = released_velocity(transformer, x_t, sigma, cond, guidance)
            transformer.enable_adapters()
        transformer.set_adapter("default")
        v_theta = released_velocity(transformer, x_t, sigma, cond, guidance)
        losses.append(released_loss(v_theta, v_old, v_ref, x0, x_t, sigma, r_kept, run))
    loss = torch.stack(losses).mean()  # the released loss / (accumulation x timesteps)
    grads = torch.autograd.grad(loss, trainer.policy, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g
             for p, g in zip(trainer.policy, grads, strict=True)]  # fmt: skip
    norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads))
    assert norm > run["grad_clip"]  # the clip acts in this step
    grads = clipped(grads, run["grad_clip"])
    policy = [adamw_first_step(p, g.to(p.dtype), run["lr"], run["weight_decay"])
              for p, g in zip(before["policy"], grads, strict=True)]  # fmt: skip
    d = min(run["old_decay"]["rate"] * 1, run["old_decay"]["max"])
    old = [d * o + (1 - d) * p for o, p in zip(before["old"], policy, strict=True)]
    e = min((1 + 1) / (10 + 1), run["ema_decay"])  # the warm-up's decay after one step
    ema = [e * m + (1 - e) * p for m, p in zip(before["ema"], policy, strict=True)]

    assert row["loss"] == pytest.approx(float(loss.detach()), abs=1e-6)
    # Adam's first step is close to lr * sign(gradient): the gradient itself is compared too
    # (to 1e-6 of its clipped norm), which is what the loss scale, the KL weight and the
    # clip act on.
    for got, want in zip(step_grads, grads, strict=True):
        assert torch.allclose(got, want.to(got.dtype), rtol=0, atol=1e-6 * run["grad_clip"])
    assert row["groups_kept"] == 2 and row["filtered_fraction"] == 0.5
    moved = 0
    for name, expected in (("policy", policy), ("old", old), ("ema", ema)):
        for got, want, start in zip(after[name], expected, before[name], strict=True):
            assert torch.allclose(got - start, want - start, atol=1e-6, rtol=0)
            moved += int((got - start).abs().max() > 1e-5)
    assert moved > 0
    # The solved group's pair is never drawn again.
    assert trainer.banned == {seen["pairs"][1]}
    assert row["prompts_banned"] == 1
