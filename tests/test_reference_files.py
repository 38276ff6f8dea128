"""Playlists and other files that point at other files are refused by content, on every route a
file can come in by, and the file they point at is never read: its frames are nowhere in the data dir.

The "secret" is a magenta clip outside the media and data folders; each hostile file names it
(as `file://` URL or as a plain path), the way an attacker would name /etc/... or another user's
upload. On the code before this fix, FFmpeg's demuxer probing followed the playlist and the
secret came back, frame for frame, in the sanitized mp4.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from core.config import Settings
from core.errors import VChatError
from core.media.pipeline import prepare_media
from tests.media_factory import ffmpeg
from tests.support import Route

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def secret(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private clip (solid magenta, MPEG-TS) that no input may pull in."""
    folder = tmp_path_factory.mktemp("private")
    path = folder / "private.ts"
    magenta = "color=c=magenta:size=320x240:rate=25:duration=2"
    ffmpeg("-f", "lavfi", "-i", magenta, "-c:v", "libx264", "-f", "mpegts", str(path))
    return path


def playlists(secret: Path) -> dict[str, str]:
    return {
        "hls-file-url": f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:2.0,\nfile://{secret}\n#EXT-X-ENDLIST\n",
        "hls-path": f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXTINF:2.0,\n{secret}\n#EXT-X-ENDLIST\n",
        "concat": f"ffconcat version 1.0\nfile '{secret}'\n",
        "bare-list": f"{secret}\n",
    }


def magenta_frames(folder: Path) -> list[str]:
    """Every file under `folder` that decodes (whatever its name) to a magenta picture."""
    found = []
    for path in (p for p in folder.rglob("*") if p.is_file()):
        try:
            container = av.open(str(path), options={"protocol_whitelist": "file", "format_whitelist": "mov,mpegts"})
        except av.error.FFmpegError:
            continue
        with container:
            if not container.streams.video:
                continue
            try:
                for n, frame in enumerate(container.decode(video=0)):
                    red, green, blue = frame.to_ndarray(format="rgb24").reshape(-1, 3).mean(axis=0)
                    if red > 180 and blue > 180 and green < 80:
                        found.append(str(path))
                        break
                    if n > 5:
                        break
            except av.error.FFmpegError:
                continue
    return found


def assert_secret_absent(settings: Settings) -> None:
    assert magenta_frames(settings.data_dir) == [], "the playlist's target was read into the data dir"


def test_the_secret_is_what_the_check_looks_for(secret: Path, tmp_path: Path):
    """The detector finds the secret's frames when they are there (so its silence below means something)."""
    copy = tmp_path / "data" / "copy.mp4"
    copy.parent.mkdir()
    ffmpeg("-i", str(secret), "-c:v", "libx264", str(copy))
    assert magenta_frames(tmp_path / "data") == [str(copy)]


@pytest.mark.parametrize("name", ["list.m3u8", "list.m3u", "clip.mp4", "clip.ts"])
@pytest.mark.parametrize("kind", ["hls-file-url", "hls-path", "concat", "bare-list"])
def test_a_playlist_in_the_media_folder_is_refused_whatever_its_name(settings: Settings, secret, name, kind):
    (settings.media_dir / name).write_text(playlists(secret)[kind])
    with pytest.raises(VChatError, match=r"is an? .*(playlist|list).*not a video"):
        prepare_media(name, settings)
    assert_secret_absent(settings)


@pytest.mark.parametrize("filename", ["up.mp4", "up.m3u8", "up.ts", None])
def test_a_playlist_uploaded_is_refused(settings: Settings, secret, filename):
    data = playlists(secret)["hls-file-url"].encode()
    with pytest.raises(VChatError, match=r"is an HLS/M3U playlist, not a video"):
        prepare_media(io.BytesIO(data), settings, filename=filename)
    assert_secret_absent(settings)


def test_a_playlist_from_stdin_exits_2(settings: Settings, secret, tmp_path: Path):
    env = {**os.environ, "VCHAT_DATA_DIR": str(settings.data_dir), "VCHAT_MEDIA_DIR": str(settings.media_dir)}
    for filename in ("up.mp4", "up.m3u8"):
        proc = subprocess.run(
            [sys.executable, "-m", "core", "fetch", "-", "--filename", filename, "-q"],
            input=playlists(secret)["hls-file-url"].encode(),
            capture_output=True,
            cwd=ROOT,
            env=env,
            timeout=120,
        )
        stderr = proc.stderr.decode()
        assert proc.returncode == 2, stderr
        assert stderr.startswith("error: ") and stderr.count("\n") == 1 and "playlist" in stderr
    assert_secret_absent(settings)


@pytest.mark.parametrize("content_type", ["video/mp4", "application/vnd.apple.mpegurl", "audio/x-mpegurl"])
def test_a_playlist_served_at_a_url_is_refused(settings: Settings, server, secret, content_type):
    for path, kind in (("/video.mp4", "hls-file-url"), ("/list.m3u8", "hls-path")):
        server.routes[path] = Route(body=playlists(secret)[kind].encode(), content_type=content_type)
        with pytest.raises(VChatError):
            prepare_media(server.url(path), settings)
    assert_secret_absent(settings)


def test_a_playlist_named_in_a_training_dataset_is_a_line_error(settings: Settings, secret, clips):
    from finetune.dataset import validate_dataset

    (settings.media_dir / "list.m3u8").write_text(playlists(secret)["hls-file-url"])
    (settings.media_dir / "good.mp4").write_bytes(clips["h264"].read_bytes())
    dataset = settings.media_dir / "data.jsonl"
    lines = [
        {"video_path": "good.mp4", "text": "USER: What is shown?\nASSISTANT: A test pattern."},
        {"video_path": "list.m3u8", "text": "USER: What is shown?\nASSISTANT: A secret."},
    ]
    dataset.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    report = validate_dataset(dataset, settings)
    assert [e.line for e in report.errors] == [2]
    assert "HLS/M3U playlist" in report.errors[0].message
    assert [e.line for e in report.examples] == [1]
    assert_secret_absent(settings)


def test_formats_that_read_other_files_are_not_accepted_even_without_the_sniff(settings: Settings, secret):
    """Defence in depth: the demuxer whitelist alone refuses HLS, whatever the text looks like."""
    from core.media.sniff import MEDIA_DEMUXERS, open_media

    assert not {"hls", "dash", "concat", "sdp", "rtsp", "image2", "tee", "data"} & set(MEDIA_DEMUXERS)
    # A playlist padded with binary noise at its end: not recognised as text by the sniff.
    noise = bytes(np.random.default_rng(0).integers(0, 32, 4096, dtype=np.uint8))
    hostile = settings.media_dir / "list.m3u8"
    hostile.write_bytes(playlists(secret)["hls-file-url"].encode() + noise)
    with pytest.raises(av.error.FFmpegError):
        open_media(hostile)
    with pytest.raises(VChatError, match="not a video file"):
        prepare_media("list.m3u8", settings)
    assert_secret_absent(settings)
