"""The local kind: recursive glob, awkward file names, stable ids, shards that partition files."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import pytest
from conftest import make_video

from motionedit.sources import fetch_shard as dispatch_fetch
from motionedit.sources import shard_names
from motionedit.sources.local import fetch_shard, glob_base, list_files, shard_count
from motionedit.video import probe

NAMES = [
    "vidéo de test 1.mp4",
    "日本.mp4",
    "sub dir/été/clip two.mp4",
    "sub dir/plain.mp4",
    "deeper/a/b/c.mp4",
]


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    root = tmp_path / "data" / "videos"
    make_video(root / NAMES[0], size="64x48", seconds=1, fps=10, gop=10)
    for name in NAMES[1:]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(f"bytes of {name}".encode())
    (root / "notes.txt").write_text("not matched by the glob")
    monkeypatch.chdir(tmp_path)  # path_glob is relative to the working directory
    return root


def _source(shards: int = 1, **extra) -> dict:
    base = {"name": "mine", "kind": "local", "path_glob": "data/videos/**/*.mp4", "shards": shards}
    return base | extra


def test_one_shard_links_every_file_with_stable_ids(corpus, tmp_path):
    out = tmp_path / "out"
    fetched = fetch_shard(_source(), 0, out)
    assert [v.video_id for v in fetched] == [f"mine/{n}" for n in sorted(NAMES)]
    assert all(v.error is None for v in fetched)
    for v in fetched:
        rel = v.video_id.removeprefix("mine/")
        assert Path(v.path).parent == out
        assert Path(v.path).read_bytes() == (corpus / rel).read_bytes()
        assert Path(v.origin) == Path("data/videos") / rel
    # The real video still decodes through the link, non-ASCII name and all.
    first = next(v for v in fetched if v.video_id == f"mine/{NAMES[0]}")
    assert probe(first.path).n_frames == 10
    again = fetch_shard(_source(), 0, tmp_path / "out")  # a rerun replaces the links
    assert [(v.video_id, v.path) for v in again] == [(v.video_id, v.path) for v in fetched]


def test_shards_partition_the_files(corpus, tmp_path):
    source = _source(shards=3)
    assert shard_count(source) == 3
    assert shard_names(source) == ["0000", "0001", "0002"]
    ids = []
    for i, shard in enumerate(shard_names(source)):
        part = dispatch_fetch(source, shard, tmp_path / f"out{i}")
        ids += [v.video_id for v in part]
        assert [v.video_id for v in part] == sorted(v.video_id for v in part)
    assert sorted(ids) == sorted(f"mine/{n}" for n in NAMES)
    assert len(ids) == len(set(ids))


def test_ids_do_not_depend_on_where_the_corpus_lives(corpus, tmp_path):
    moved = tmp_path / "elsewhere" / "corpus"
    moved.parent.mkdir()
    corpus.rename(moved)
    absolute = {"name": "mine", "kind": "local", "path_glob": f"{moved}/**/*.mp4", "shards": 3}
    assert [k for k, _ in list_files(absolute)] == sorted(NAMES)
    assert glob_base(f"{moved}/**/*.mp4") == moved
    assert glob_base("*.mp4") == Path(".")


def test_decomposed_unicode_names_get_composed_ids(tmp_path, monkeypatch):
    nfd = unicodedata.normalize("NFD", "vidéo.mp4")
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / nfd).write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    fetched = fetch_shard({"name": "n", "kind": "local", "path_glob": "v/*.mp4"}, 0, tmp_path / "o")
    assert fetched[0].video_id == "n/" + unicodedata.normalize("NFC", "vidéo.mp4")


def test_copy_mode_makes_independent_files(corpus, tmp_path):
    fetched = fetch_shard(_source(link=False), 0, tmp_path / "out")
    for v in fetched:
        path = Path(v.path)
        assert not path.is_symlink() and os.stat(path).st_nlink == 1


def test_no_match_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"sources\[name=mine\]\.path_glob: no files match"):
        fetch_shard(_source(), 0, tmp_path / "out")
    with pytest.raises(ValueError, match="path_glob: required"):
        list_files({"name": "mine", "kind": "local"})


def test_unreadable_file_is_an_error_row(corpus, tmp_path, monkeypatch):
    import motionedit.sources.local as local

    def broken(src, dest, link=True):
        if "plain" in src.name:
            raise PermissionError(13, "Permission denied")
        return "copy"

    monkeypatch.setattr(local, "place_file", broken)
    fetched = fetch_shard(_source(), 0, tmp_path / "out")
    bad = [v for v in fetched if v.error]
    assert [v.video_id for v in bad] == ["mine/sub dir/plain.mp4"]
    assert bad[0].path is None and "Permission denied" in bad[0].error
