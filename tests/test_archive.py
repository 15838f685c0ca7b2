"""Safe extraction: only allowed regular files land in the output folder; the rest is reported."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from motionedit.sources.archive import (
    ARCHIVE_TAIL,
    NOT_ALLOWED,
    ArchiveError,
    archive_kind,
    extract_archive,
    unsafe_name_reason,
)
from motionedit.sources.base import safe_filename

GOOD = b"\x00\x00\x00\x18ftypmp42 pretend video bytes" * 20
LIMIT = 4096
BIG = b"B" * (LIMIT + 1)


def _tar(path: Path, mode: str) -> Path:
    with tarfile.open(path, mode) as tf:

        def add(name: str, data: bytes = b"", **attrs) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            for k, v in attrs.items():
                setattr(info, k, v)
            tf.addfile(info, io.BytesIO(data) if data else None)

        add("clips/", type=tarfile.DIRTYPE)
        add("clips/good one.mp4", GOOD)
        add("../../x.mp4", b"escaped")
        add("/abs.mp4", b"absolute")
        add("link.mp4", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        add("hard.mp4", type=tarfile.LNKTYPE, linkname="clips/good one.mp4")
        add("dev.mp4", type=tarfile.CHRTYPE)
        add("big.mp4", BIG)
        add("notes.txt", b"not a video")
    return path


def _zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("clips/", b"")
        zf.writestr("clips/good one.mp4", GOOD)
        zf.writestr("../../x.mp4", b"escaped")
        zf.writestr("/abs.mp4", b"absolute")
        link = zipfile.ZipInfo("link.mp4")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
        zf.writestr("big.mp4", BIG)
        zf.writestr("notes.txt", b"not a video")
    return path


def _everything_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


@pytest.mark.parametrize("kind", ["tar", "tar.gz", "zip"])
def test_only_the_good_member_is_extracted(tmp_path, kind):
    src = tmp_path / "src"
    src.mkdir()
    if kind == "zip":
        archive = _zip(src / "a.zip")
    else:
        archive = _tar(src / f"a.{kind}", "w:gz" if kind == "tar.gz" else "w")
    out = tmp_path / "deep" / "nested" / "out"
    results = extract_archive(archive, out, allow_patterns=["*.mp4"], max_member_bytes=LIMIT)
    by_name = {r.member: r for r in results}

    good = by_name.pop("clips/good one.mp4")
    assert good.error is None and Path(good.path) == out / safe_filename("clips/good one.mp4")
    assert Path(good.path).read_bytes() == GOOD

    assert "path traversal" in by_name.pop("../../x.mp4").error
    assert "absolute path" in by_name.pop("/abs.mp4").error
    assert "symlink" in by_name.pop("link.mp4").error
    assert "too large" in by_name.pop("big.mp4").error
    assert by_name.pop("notes.txt").error == NOT_ALLOWED
    if kind != "zip":
        assert "hardlink" in by_name.pop("hard.mp4").error
        assert "device" in by_name.pop("dev.mp4").error
    assert not by_name  # every member accounted for; the directory entry is not a result
    assert all(r.path is None for r in results if r.error)

    # Nothing outside the output folder, and inside it only the one flat file.
    assert _everything_under(out) == {safe_filename("clips/good one.mp4")}
    outside = _everything_under(tmp_path) - {f"deep/nested/out/{n}" for n in _everything_under(out)}
    assert outside == {"src", f"src/{archive.name}", "deep", "deep/nested", "deep/nested/out"}


def test_unmatched_members_can_be_left_out(tmp_path):
    archive = _tar(tmp_path / "a.tar", "w")
    results = extract_archive(
        archive, tmp_path / "out", max_member_bytes=LIMIT, report_unmatched=False
    )
    assert "notes.txt" not in {r.member for r in results}
    assert "../../x.mp4" in {r.member for r in results}  # hostile members are always reported


def test_patterns_are_case_insensitive_and_total_limit_applies(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("A.MP4", b"a" * 1000)
        zf.writestr("b.mp4", b"b" * 1000)
        zf.writestr("c.mp4", b"c" * 1000)
    results = extract_archive(archive, tmp_path / "out", max_total_bytes=2500)
    assert [(r.member, r.error is None) for r in results] == [
        ("A.MP4", True),
        ("b.mp4", True),
        ("c.mp4", False),
    ]
    assert "total size limit" in results[2].error


def test_duplicate_names_keep_the_first(tmp_path):
    archive = tmp_path / "dup.tar"
    with tarfile.open(archive, "w") as tf:
        for data in (b"first", b"second"):
            info = tarfile.TarInfo("same.mp4")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    results = extract_archive(archive, tmp_path / "out")
    assert Path(results[0].path).read_bytes() == b"first"
    assert results[1].path is None and "duplicate" in results[1].error


def test_truncated_and_unreadable_archives(tmp_path):
    full = _tar(tmp_path / "full.tar.gz", "w:gz").read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(full[: len(full) // 2])
    results = extract_archive(cut, tmp_path / "out", max_member_bytes=LIMIT)
    assert results and results[-1].error and results[-1].path is None
    assert any(r.member == ARCHIVE_TAIL or "corrupt" in r.error for r in results if r.error)
    assert not list((tmp_path / "out").glob("*.part"))

    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"this is not a zip file at all")
    with pytest.raises(ArchiveError, match="cannot open zip archive junk.zip"):
        extract_archive(junk, tmp_path / "out")


def test_archive_kind_and_name_checks(tmp_path):
    assert archive_kind("x/veo3_videos_1.tar") == "tar"
    assert archive_kind("a.TGZ") == "tar" and archive_kind("resource_1.zip") == "zip"
    assert archive_kind("clip.mp4") is None
    plain = tmp_path / "noext"
    with zipfile.ZipFile(plain, "w") as zf:
        zf.writestr("a.mp4", b"x")
    assert archive_kind(plain) == "zip"
    assert unsafe_name_reason("a/../../b.mp4") and unsafe_name_reason("C:\\x.mp4")
    assert unsafe_name_reason("..\\x.mp4") and unsafe_name_reason("./ok/fine.mp4") is None
