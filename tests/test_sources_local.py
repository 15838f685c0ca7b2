"""The local kind: recursive glob, awkward file names, stable ids, shards that partition files."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import pytest
from conftest import make_video

from motionedit.sources import fetch_shard as dispatch_fetch
from motionedit.sources import shard_fingerprints, shard_names
from motionedit.sources.base import shard_of
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


def _rows(tmp_path, source) -> dict[str, object]:
    return {v.video_id.removeprefix("mine/"): v for v in fetch_shard(source, 0, tmp_path / "out")}


def test_symlink_loop_neither_hangs_nor_duplicates(corpus, tmp_path):
    # glob.glob follows this loop 40 levels deep and lists every file 41 times; a second
    # loop makes that exponential.
    (corpus / "sub dir" / "loop").symlink_to("..")
    (corpus / "deeper" / "a" / "up").symlink_to("../..")
    (corpus / "alias.mp4").symlink_to("deeper/a/b/c.mp4")
    rows = _rows(tmp_path, _source())
    # Every real file once, under the path through the fewest links: the loops and the
    # alias (which sorts first) rename nothing.
    assert sorted(rows) == sorted(NAMES)
    assert all(v.error is None for v in rows.values())
    assert [k for k, _ in list_files(_source())] == sorted(NAMES)


def test_a_file_reached_only_through_links_keeps_one_id(tmp_path, monkeypatch):
    root = tmp_path / "v"
    (root / "store").mkdir(parents=True)
    (root / "store" / "clip.bin").write_bytes(b"video")
    (root / "b.mp4").symlink_to("store/clip.bin")
    (root / "a.mp4").symlink_to("store/clip.bin")
    monkeypatch.chdir(tmp_path)
    source = {"name": "mine", "kind": "local", "path_glob": "v/*.mp4"}
    rows = _rows(tmp_path, source)
    assert list(rows) == ["a.mp4"] and rows["a.mp4"].error is None
    assert Path(rows["a.mp4"].path).read_bytes() == b"video"


def test_paths_that_are_no_video_file_are_error_rows(corpus, tmp_path):
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "secret.mp4").write_bytes(b"not yours")
    (corpus / "folder.mp4").mkdir()
    (corpus / "folder.mp4" / "inside.mp4").write_bytes(b"x")
    (corpus / "dangling.mp4").symlink_to("gone/nowhere.mp4")
    (corpus / "escape.mp4").symlink_to(outside / "secret.mp4")
    (corpus / "linked dir").symlink_to(outside)
    (corpus / "self.mp4").symlink_to("self.mp4")
    os.mkfifo(corpus / "pipe.mp4")
    rows = _rows(tmp_path, _source())
    errors = {k: v.error for k, v in rows.items() if v.error}
    assert errors.keys() == {
        "folder.mp4", "dangling.mp4", "escape.mp4", "linked dir/secret.mp4", "self.mp4", "pipe.mp4"
    }  # fmt: skip
    assert errors["folder.mp4"] == "a folder, not a video file"
    assert errors["dangling.mp4"] == "broken symlink to gone/nowhere.mp4"
    assert errors["self.mp4"].startswith("broken symlink to self.mp4")
    assert "resolves outside the source root" in errors["escape.mp4"]
    assert "resolves outside the source root" in errors["linked dir/secret.mp4"]
    assert errors["pipe.mp4"] == "not a regular file (a named pipe)"
    assert all(rows[k].path is None for k in errors)
    assert rows["folder.mp4/inside.mp4"].error is None  # a folder's contents still count
    # Nothing from outside the root was linked into the output.
    out = tmp_path / "out"
    assert all(p.read_bytes() != b"not yours" for p in out.iterdir() if p.is_file())
    assert sorted(k for k, _ in list_files(_source())) == sorted(rows.keys() - errors.keys())


def test_only_error_entries_are_rows_not_a_config_error(tmp_path, monkeypatch):
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "x.mp4").symlink_to("missing.mp4")
    monkeypatch.chdir(tmp_path)
    fetched = fetch_shard({"name": "n", "kind": "local", "path_glob": "v/*.mp4"}, 0, tmp_path / "o")
    assert [(v.video_id, v.path, v.error) for v in fetched] == [
        ("n/x.mp4", None, "broken symlink to missing.mp4")
    ]


def test_a_new_or_changed_file_changes_only_its_shards_fingerprint(corpus):
    """The fetch rule takes the fingerprint as a parameter, so this is what reruns a shard."""
    source = _source(shards=4)
    before = shard_fingerprints(source)
    assert len(before) == 4 and before == shard_fingerprints(source)

    (corpus / "new one.mp4").write_bytes(b"a new video")
    after = shard_fingerprints(source)
    assert [s for s in range(4) if after[s] != before[s]] == [shard_of("new one.mp4", 4)]

    changed = corpus / NAMES[3]
    changed.write_bytes(changed.read_bytes() + b" and more")
    again = shard_fingerprints(source)
    assert [s for s in range(4) if again[s] != after[s]] == [shard_of(NAMES[3], 4)]
