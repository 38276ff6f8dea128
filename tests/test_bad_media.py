"""Files that are not usable videos stop at the probe with their own clear error."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest

from core.config import Settings
from core.errors import LimitExceeded, MediaError
from core.media.ffmpeg import ffmpeg_binary
from core.media.pipeline import prepare_media
from tests.media_factory import make_clip
from tests.support import files_under


def _bytes_of(kind: str, tmp_path: Path, clips, fixtures_dir: Path) -> bytes:
    if kind == "empty":
        return b""
    if kind == "text":
        return b"This is a text file someone renamed to .mp4\n" * 50
    if kind == "truncated-moov-at-end":
        data = clips["h264"].read_bytes()  # ffmpeg writes the moov atom last by default
        return data[: len(data) // 2]
    if kind == "truncated-faststart":
        clip = make_clip(tmp_path / "fast.mp4", duration=3, extra=["-movflags", "+faststart"])
        data = clip.read_bytes()
        return data[: len(data) // 2]
    if kind == "audio-only":
        out = tmp_path / "tone.mp4"
        cmd = [ffmpeg_binary(), "-v", "error", "-y", "-f", "lavfi", "-i", "sine=duration=2", "-c:a", "aac", str(out)]
        subprocess.run(cmd, check=True, timeout=60)
        return out.read_bytes()
    if kind == "absurd-dimensions":
        return make_clip(tmp_path / "sliver.mp4", size="16x480", duration=1, audio=False).read_bytes()
    if kind == "dash-init-segment":
        return (fixtures_dir / "dashinit.mp4").read_bytes()
    raise AssertionError(kind)


CASES = {
    "empty": r"'bad\.mp4' is empty \(0 bytes\)",
    "text": r"'bad\.mp4' is not a video file",
    "truncated-moov-at-end": r"'bad\.mp4' is truncated or incomplete: its MP4 index \(the moov atom\) is missing",
    "truncated-faststart": r"'bad\.mp4' is truncated",
    "audio-only": r"'bad\.mp4' has only audio, no video track",
    "absurd-dimensions": r"'bad\.mp4' has absurd dimensions \(16x480\)",
    "dash-init-segment": r"'bad\.mp4' contains no decodable video frames",
}


@pytest.mark.parametrize("kind", list(CASES))
def test_bad_media_gets_its_own_message_and_leaves_nothing(kind, tmp_path, settings: Settings, clips, fixtures_dir):
    data = _bytes_of(kind, tmp_path, clips, fixtures_dir)
    with pytest.raises(MediaError, match=CASES[kind]) as caught:
        prepare_media(io.BytesIO(data), settings, filename="bad.mp4")
    assert "\n" not in str(caught.value)
    assert files_under(settings.data_dir) == [], "a refused file must leave nothing in the data dir"


def test_messages_differ_between_kinds():
    assert len(set(CASES.values())) == len(CASES)


def test_video_longer_than_the_limit_is_refused(tmp_path: Path, clips):
    settings = Settings(data_dir=tmp_path / "data", media_dir=tmp_path, max_duration_s=5)
    with pytest.raises(LimitExceeded, match=r"12 s long; the limit is 5 s"):
        prepare_media(io.BytesIO(clips["long"].read_bytes()), settings, filename="long.mp4")
