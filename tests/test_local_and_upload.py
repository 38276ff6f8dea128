"""Local paths (only inside the media dir) and uploads (streamed, size-limited)."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest

from core.config import Settings
from core.errors import InputError, LimitExceeded
from core.media.fetch import resolve_local_path
from core.media.pipeline import prepare_media
from core.media.storage import sha256_file
from tests.support import files_under


def test_relative_and_absolute_paths_inside_the_media_dir(settings: Settings, clips):
    nested = settings.media_dir / "sub" / "clip.mp4"
    nested.parent.mkdir()
    shutil.copyfile(clips["h264"], nested)
    assert resolve_local_path("sub/clip.mp4", settings) == nested.resolve()
    assert resolve_local_path(str(nested), settings) == nested.resolve()


def test_a_symlink_that_stays_inside_is_allowed(settings: Settings, clips):
    shutil.copyfile(clips["h264"], settings.media_dir / "real.mp4")
    os.symlink(settings.media_dir / "real.mp4", settings.media_dir / "alias.mp4")
    assert resolve_local_path("alias.mp4", settings) == (settings.media_dir / "real.mp4").resolve()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("../secret.mp4", "'..' are refused"),
        ("sub/../../secret.mp4", "'..' are refused"),
        ("/etc/passwd", "must be inside the media folder"),
        ("escape.mp4", "points outside the media folder"),
        ("linked-dir/secret.mp4", "points outside the media folder"),
        ("missing.mp4", "No such file in the media folder"),
    ],
)
def test_paths_that_leave_the_media_dir_are_refused(settings: Settings, tmp_path: Path, clips, raw, message):
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copyfile(clips["h264"], outside / "secret.mp4")
    os.symlink(outside / "secret.mp4", settings.media_dir / "escape.mp4")
    os.symlink(outside, settings.media_dir / "linked-dir")
    with pytest.raises(InputError, match=message):
        resolve_local_path(raw, settings)


def test_an_absolute_path_outside_is_refused_even_when_it_exists(settings: Settings, clips):
    with pytest.raises(InputError, match="must be inside the media folder"):
        prepare_media(str(clips["h264"]), settings)


def test_local_file_is_copied_into_the_store_and_left_untouched(settings: Settings, clips):
    local = settings.media_dir / "clip.mp4"
    shutil.copyfile(clips["h264"], local)
    before = local.read_bytes()
    asset = prepare_media("clip.mp4", settings)
    assert asset.source.kind == "local" and asset.source.filename == "clip.mp4"
    assert local.read_bytes() == before
    assert Path(asset.original_path).read_bytes() == before


def test_upload_from_a_file_object(settings: Settings, clips):
    data = clips["h264"].read_bytes()
    asset = prepare_media(io.BytesIO(data), settings, filename="holiday clip.MP4")
    assert asset.source.kind == "upload" and asset.source.filename == "holiday clip.MP4"
    assert asset.sha256 == sha256_file(clips["h264"])
    assert asset.original_path.endswith("original.mp4")


def test_the_same_bytes_by_upload_then_by_path_are_stored_and_sanitized_once(settings: Settings, clips):
    first = prepare_media(io.BytesIO(clips["h264"].read_bytes()), settings, filename="a.mp4")
    shutil.copyfile(clips["h264"], settings.media_dir / "b.mp4")
    second = prepare_media("b.mp4", settings)
    assert second.sha256 == first.sha256
    assert second.sanitized.reused and second.sanitized.path == first.sanitized.path
    originals = [p for p in files_under(settings.media_cache_dir) if p.name.startswith("original")]
    assert len(originals) == 1


def test_oversize_upload_is_refused_and_nothing_is_left(tmp_path: Path, clips):
    settings = Settings(data_dir=tmp_path / "data", media_dir=tmp_path, max_download_mb=0.01)
    with pytest.raises(LimitExceeded, match=r"larger than the 0\.01 MB limit"):
        prepare_media(io.BytesIO(clips["long"].read_bytes()), settings, filename="big.mp4")
    assert files_under(settings.data_dir) == []
