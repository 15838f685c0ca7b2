"""The workflow over network sources: a URL list and a hub dataset, both served on 127.0.0.1.

The real snakemake CLI runs the real download and hf_hub_download code against local
servers that speak plain HTTP and the Hub's resolve endpoint; a 404, a wrong checksum and a
hostile archive member each end as one error row, and the good videos still give pairs.
"""

from __future__ import annotations

import hashlib
import threading
from http.server import ThreadingHTTPServer

import pandas as pd
import pytest
import yaml
from conftest import make_video
from hub_stub import COMMIT, hub_env, serve_hub
from test_sources_huggingface import REPO, _tar_bytes
from test_sources_url_list import Handler
from test_workflow import snakemake

pytestmark = pytest.mark.e2e


def serve(handler, files: dict) -> ThreadingHTTPServer:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.files, srv.hits, srv.seen = files, [], []  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    return srv


def test_url_list_and_hub_sources_end_to_end(tmp_path):
    a = make_video(tmp_path / "src" / "a.mp4", seconds=7).read_bytes()
    b = make_video(tmp_path / "src" / "b.mp4", size="64x96", seconds=7).read_bytes()
    web = serve(Handler, {"/v/a.mp4": a, "/v/b.mp4": b})
    shards = {"shards/part-1.tar": _tar_bytes({"x/one.mp4": a, "two.mp4": b,
                                                "../../evil.mp4": b"escape"})}  # fmt: skip
    try:
        base = f"http://127.0.0.1:{web.server_address[1]}"
        sha = hashlib.sha256(a).hexdigest()
        (tmp_path / "urls.txt").write_text(
            f"# a comment\n{base}/v/a.mp4 {sha}\n{base}/v/missing.mp4\n{base}/v/b.mp4 {sha}\n"
        )
        config = {
            "sources": [
                {"name": "web", "kind": "url_list", "list": "urls.txt", "retries": 1,
                 "backoff_s": 0.0, "allow_private": True},
                {"name": "hub", "kind": "huggingface", "repo_id": REPO, "revision": COMMIT,
                 "files": ["shards/part-1.tar"]},
            ],
        }  # fmt: skip
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
        with serve_hub({REPO: shards}) as hub:
            env = hub_env(hub.base, tmp_path / "hf") | {"HF_HUB_OFFLINE": "0"}
            snakemake(tmp_path, env=env)
    finally:
        web.shutdown()
    res = tmp_path / "results"
    man = pd.read_parquet(res / "videos" / "web" / "0000.parquet").set_index("origin")
    assert pd.isna(man.loc[f"{base}/v/a.mp4", "error"])
    assert "404" in man.loc[f"{base}/v/missing.mp4", "error"]
    assert "sha256" in man.loc[f"{base}/v/b.mp4", "error"]
    hub_man = pd.read_parquet(res / "videos" / "hub" / "0000.parquet")
    assert len(hub_man) == 3
    assert hub_man["error"].isna().sum() == 2
    assert "evil.mp4" in hub_man.loc[hub_man["error"].notna(), "video_id"].iloc[0]
    frames = pd.concat(pd.read_parquet(res / "frames" / s / "0000.parquet") for s in ("web", "hub"))
    good = frames[frames["error"].isna()]
    assert good["video_id"].nunique() == 3 and len(good) == 6
    assert (res / "dataset" / "stats.json").exists()
