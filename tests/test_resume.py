"""Kill the whole workflow at four points and resume it: the same dataset, the same LoRA, and
no MLLM question paid for twice.

What is proved, through the real snakemake CLI on one config in two working directories:

* "full" runs once, uninterrupted.
* "killed" is SIGKILLed (snakemake and every job in its process group, as a crash or an
  out-of-memory kill would) inside four stages in turn: while ``fetch`` writes its first
  video, while ``frames`` writes its first frame, while the Gemini judge is half-way through
  a shard (some answers cached, the shard's table not written), and while MotionNFT trains
  (a step checkpoint saved, the run not finished). After each kill the user's recovery is
  replayed: ``snakemake --unlock``, then ``snakemake --rerun-incomplete``, which is killed at
  the next point or, after the last, runs to the end.

Then every table and image of the mined dataset (and the Parquet tables of every mining
stage before it) is byte-identical between the two directories, the trained LoRA has the
same weights and the training log the same curve, the workflow has nothing left to do, and
the local Gemini stub, which serves both directories and keeps running across the kills,
saw exactly the questions of the uninterrupted run, each once: the answer cache made every
answer received before a kill count, and nothing was asked again.

Why the judge kill lands between calls: one call is in flight at a time
(``mllm.concurrency: 1``) and the client-side quota sends one every 0.5 s, while the test
kills within milliseconds of an answer being cached. A call cut off in flight has no answer
to cache and is necessarily asked again; the quota keeps the kill away from that case so the
count can be exact. One MLLM job runs at a time (``--resources mllm=1``, as documented for
quotas), so the judge's shards are asked in turn.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from gemini_stub import GeminiStub, motion_answers, schema_fields
from safetensors import safe_open
from safetensors.torch import load_file
from test_workflow import snakemake, snakemake_command
from test_workflow_models import CONFIG as MODELS

pytestmark = pytest.mark.e2e

RUN = "tiny-nft"
ARGS = ("--resources", "mllm=1")
ENV = {"GEMINI_API_KEY": "resume-test-key", "GOOGLE_API_KEY": "", "HF_HUB_OFFLINE": "1"}


def make_config(stub_url: str) -> dict:
    return {
        "sources": [
            {
                "name": "synth",
                "kind": "synthetic",
                "clips": 10,
                "shards": 2,
                "min_side": 64,
                "max_side": 96,
                "min_seconds": 6.0,
                "max_seconds": 6.5,
                "negative_fraction": 0.0,
            }
        ],
        "judge": {"backend": "gemini"},
        "rewrite": {"backend": "gemini"},
        "mllm": {
            "base_url": stub_url,
            "timeout_s": 10,
            "backoff_s": 0.1,
            "concurrency": 1,
            "requests_per_minute": 120,
        },
        # The tiny editor and MotionNFT run of the models workflow test, one step longer.
        "editors": MODELS["editors"],
        "sft": {"tiny": MODELS["sft"]["tiny"]},
        "train": {RUN: MODELS["train"]["tiny-nft"] | {"steps": 3}},
        "models": {
            "do-nothing": {"kind": "identity"},
            RUN: {"kind": "editor", "editor": "tiny", "lora": f"results/train/{RUN}"},
        },
    }


# ------------------------------------------------------------------ killing a run
def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs (zombies left to an init that does not
    reap them do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def kill_when(workdir: Path, reached: Callable[[], bool], point: str, log: Path) -> None:
    """Run snakemake --rerun-incomplete in its own process group and SIGKILL the whole
    group the moment ``reached()`` holds. Fails if the run ends before it does."""
    with open(log, "w") as out:
        proc = subprocess.Popen(
            snakemake_command(workdir, *ARGS, "--rerun-incomplete"),
            start_new_session=True,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=os.environ | ENV,
        )
        deadline, hit = time.time() + 300, False
        while time.time() < deadline and proc.poll() is None:
            if reached():
                os.killpg(proc.pid, signal.SIGKILL)
                hit = True
                break
            time.sleep(0.005)
        if proc.poll() is None and not hit:
            os.killpg(proc.pid, signal.SIGKILL)  # stuck: fail below rather than hang
        proc.wait()
    assert hit and proc.returncode == -signal.SIGKILL, (
        f"snakemake ended (exit {proc.returncode}) or timed out before it could be killed "
        f"{point}; see {log}:\n{log.read_text()[-3000:]}"
    )
    if Path("/proc").is_dir():
        deadline = time.time() + 10
        while _group_alive(proc.pid) and time.time() < deadline:
            time.sleep(0.05)
        assert not _group_alive(proc.pid), f"a job outlived the kill {point}"


def any_file(folder: Path) -> Callable[[], bool]:
    return lambda: folder.is_dir() and any(p.is_file() for p in folder.rglob("*"))


def cached_answers(results: Path) -> int:
    """Whole answers in the MLLM cache (entries are renamed into place; .tmp files are not)."""
    return len(list((results / "cache" / "mllm").glob("*/*.json")))


def question(body: dict) -> str:
    """A generateContent request, canonically: its text, images and settings."""
    return json.dumps(body, sort_keys=True)


# ------------------------------------------------------------------ the runs
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("resume")
    full, killed = base / "full", base / "killed"
    notes: dict = {}
    with GeminiStub(answer=motion_answers) as stub:
        for wd in (full, killed):
            wd.mkdir()
            (wd / "config.yaml").write_text(yaml.safe_dump(make_config(stub.url)))
        snakemake(full, *ARGS, env=ENV)
        full_calls = [question(b) for b in stub.calls]
        full_bodies = list(stub.calls)

        results = killed / "results"
        state = results / "checkpoints" / "train" / RUN / "state.pt"

        def shards_left(stage_dir: str) -> Callable[[], bool]:
            tables = [results / stage_dir / "synth" / f"{s}.parquet" for s in ("0000", "0001")]
            return lambda: not all(t.is_file() for t in tables)

        # (where, the sign that the run is there, the sign that the stage had not ended)
        points = [
            ("during fetch", any_file(results / "videos"), shards_left("videos")),
            ("during frames", any_file(results / "frames"), shards_left("frames")),
            (
                "mid-way through a judge shard",
                lambda: cached_answers(results) >= 3,
                lambda: not list(results.glob("judge/*/*.parquet")),
            ),
            (
                "while MotionNFT trains",
                state.is_file,
                lambda: not (results / "train" / RUN).exists(),
            ),
        ]
        for i, (point, reached, unfinished) in enumerate(points):
            if i:
                snakemake(killed, "--unlock", env=ENV)
            kill_when(killed, reached, point, base / f"killed-{i}.log")
            assert unfinished(), f"the stage ended before the kill {point}"
            if point.startswith("mid-way"):
                notes["cached_at_judge_kill"] = cached_answers(results)
        snakemake(killed, "--unlock", env=ENV)
        snakemake(killed, *ARGS, "--rerun-incomplete", env=ENV)
        killed_bodies = stub.calls[len(full_calls) :]
        killed_calls = [question(b) for b in killed_bodies]
    return {
        "full": full,
        "killed": killed,
        "full_calls": full_calls,
        "full_bodies": full_bodies,
        "killed_calls": killed_calls,
        "killed_bodies": killed_bodies,
        "notes": notes,
    }


def stage(body: dict) -> str:
    fields = schema_fields(body)
    return "rewrite" if "instruction" in fields else "judge" if "category" in fields else "?"


# ------------------------------------------------------------------ the checks
def test_the_resumed_jobs_took_up_where_the_kills_left_them(runs):
    results = runs["killed"] / "results"
    # The judge shard killed half-way was answered from the cache for what it had asked.
    logs = [p.read_text() for p in sorted(results.glob("logs/judge/*/*.log"))]
    # "judge: 10 requests, 3 answered from the cache, 7 distinct to ask": killed mid-shard.
    counts = [
        tuple(map(int, m.groups()))
        for text in logs
        for m in re.finditer(
            r"judge: \d+ requests, (\d+) answered from the cache, (\d+) distinct", text
        )
    ]
    cached = runs["notes"]["cached_at_judge_kill"]
    assert any(hit >= cached and asked > 0 for hit, asked in counts), (cached, logs)
    assert cached >= 3
    # MotionNFT restarted from its step checkpoint, not from step 0.
    train_log = (results / "logs" / "train" / f"{RUN}.log").read_text()
    assert "resumed at step " in train_log, train_log


def test_every_mined_table_and_image_is_byte_identical(runs):
    full, killed = runs["full"] / "results", runs["killed"] / "results"
    dataset = sorted(p.relative_to(full) for p in (full / "dataset").rglob("*") if p.is_file())
    tables = sorted(
        p.relative_to(full)
        for stage_dir in ("videos", "frames", "prefilter", "judge", "instructions")
        for p in (full / stage_dir).glob("*/*.parquet")
    )
    stage_tables = {
        Path(stage_dir, "synth", f"{shard}.parquet")
        for stage_dir in ("videos", "frames", "prefilter", "judge", "instructions")
        for shard in ("0000", "0001")
    }
    assert any(p.suffix == ".parquet" for p in dataset) and stage_tables <= set(tables)
    assert sorted(
        p.relative_to(killed) for p in (killed / "dataset").rglob("*") if p.is_file()
    ) == (dataset)
    pairs = pd.read_parquet(full / "dataset" / "train" / "data.parquet")
    assert len(pairs) > 0
    differ = [
        str(rel)
        for rel in [*dataset, *tables]
        if (full / rel).read_bytes() != (killed / rel).read_bytes()
    ]
    assert not differ, f"differ after the kills: {differ}"


def test_the_resumed_training_gives_the_same_lora(runs):
    """The same tensors and metadata. (The files' bytes may still differ: safetensors writes
    the ``__metadata__`` keys in an order that varies from one process to the next, so two
    uninterrupted runs differ there too.)"""
    name = f"train/{RUN}/pytorch_lora_weights.safetensors"
    files = [runs[wd] / "results" / name for wd in ("full", "killed")]
    if files[0].read_bytes() == files[1].read_bytes():
        return
    metadata = []
    for path in files:
        with safe_open(path, "pt") as f:
            metadata.append(f.metadata())
    assert metadata[0] == metadata[1]
    full, killed = (load_file(path) for path in files)
    assert full.keys() == killed.keys() and full
    for key in full:
        assert torch.allclose(full[key], killed[key], atol=1e-6, rtol=0), key


def test_the_training_curve_is_the_same(runs):
    """The metrics logged before the kill come back from the checkpoint; timings aside."""
    timing = ["sampling_s", "reward_s", "optimisation_s", "peak_memory_mb"]
    read = [
        pd.read_csv(runs[wd] / "results" / "train" / RUN / "metrics.csv").drop(columns=timing)
        for wd in ("full", "killed")
    ]
    assert read[0]["step"].tolist() == [0, 1, 2, 3]
    pd.testing.assert_frame_equal(read[0], read[1], check_exact=False, atol=1e-6, rtol=0)


def test_no_question_was_asked_twice(runs):
    full, killed = runs["full_calls"], runs["killed_calls"]
    per_stage = Counter(stage(b) for b in runs["full_bodies"])
    assert per_stage["judge"] > 0 and per_stage["rewrite"] > 0 and per_stage["?"] == 0
    assert len(set(full)) == len(full)  # the uninterrupted run asks each question once
    repeated = {q: n for q, n in Counter(killed).items() if n > 1}
    assert not repeated, (
        f"{sum(repeated.values()) - len(repeated)} questions asked again after a kill, "
        f"by stage: {Counter(stage(json.loads(q)) for q in repeated)}"
    )
    assert set(killed) == set(full)
    assert len(killed) == len(full), (
        f"killed+resumed runs made {len(killed)} calls, the uninterrupted run {len(full)}; "
        f"by stage: {Counter(stage(b) for b in runs['killed_bodies'])} vs {per_stage}"
    )


def test_nothing_is_left_to_do(runs):
    proc = snakemake(runs["killed"], *ARGS, "--dry-run", env=ENV)
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
