"""Limits at the network boundary: the download deadline covers every read of a fetch (page,
media), and yt-dlp's own ffmpeg never follows a reference inside a downloaded file."""

from __future__ import annotations

import http.server
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
import requests

from core.config import Settings
from core.errors import DownloadError
from core.media.download import fetch_url
from core.media.ffmpeg import ffmpeg_binary
from core.media.urlguard import UrlPolicy, guarded_connections
from tests.support import LocalServer, Route, StubServer, files_under, send_headers

DEADLINE_S = 3
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's own proxy settings must not change where these tests connect."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def drip_server(content_type: str, length: int = 10_000_000, interval: float = 1.5, limit: float = 25) -> StubServer:
    """Answers every GET with its headers at once, then one byte every `interval` s: a socket timeout
    never fires. Bounded: it stops after `limit` s, or when closed."""

    def drip(handler: http.server.BaseHTTPRequestHandler, server: StubServer) -> None:
        send_headers(handler, content_type, length)
        started = time.monotonic()
        while not server.stop.is_set() and time.monotonic() - started < limit:
            handler.wfile.write(b"<")
            handler.wfile.flush()
            server.stop.wait(interval)

    return StubServer(drip)


@pytest.fixture
def drip_html() -> Iterator[StubServer]:
    server = drip_server("text/html")
    yield server
    server.close()


@pytest.fixture
def drip_mp4() -> Iterator[StubServer]:
    server = drip_server("video/mp4")
    yield server
    server.close()


@pytest.fixture
def deadline_settings(tmp_path: Path) -> Settings:
    """A short total deadline, a socket timeout longer than the drip interval."""
    return Settings(
        data_dir=tmp_path / "data",
        media_dir=tmp_path,
        url_allowlist=["127.0.0.1"],
        socket_timeout_s=5,
        download_timeout_s=DEADLINE_S,
    )


def _fetch_until_stopped(url: str, settings: Settings) -> float:
    started = time.monotonic()
    with pytest.raises(DownloadError, match=rf"took longer than {DEADLINE_S} s and was stopped"):
        fetch_url(url, settings)
    return time.monotonic() - started


def test_a_page_that_drips_is_stopped_at_the_deadline(drip_html: StubServer, deadline_settings: Settings):
    elapsed = _fetch_until_stopped(drip_html.url("/page.html"), deadline_settings)
    assert elapsed < DEADLINE_S + 3
    assert drip_html.hits, "the page was requested"
    assert files_under(deadline_settings.data_dir) == []


def test_a_media_body_that_drips_is_stopped_at_the_deadline(drip_mp4: StubServer, deadline_settings: Settings):
    elapsed = _fetch_until_stopped(drip_mp4.url("/clip.mp4"), deadline_settings)
    assert elapsed < DEADLINE_S + 3
    assert len(drip_mp4.hits) >= 2, "the download itself started (not only the page check)"
    assert files_under(deadline_settings.data_dir) == []


def test_the_deadline_counts_from_the_start_across_hops(drip_mp4: StubServer, deadline_settings: Settings):
    """A redirect that is answered late, then a slow body: one deadline for the whole fetch."""
    server = LocalServer()
    try:
        server.routes["/late"] = Route(
            status=302, headers={"Location": drip_mp4.url("/clip.mp4")}, content_type="text/plain", delay_s=1.5
        )
        elapsed = _fetch_until_stopped(server.url("/late"), deadline_settings)
    finally:
        server.close()
    assert elapsed < DEADLINE_S + 3
    assert files_under(deadline_settings.data_dir) == []


@pytest.mark.parametrize("stack", ["urllib", "requests"])
def test_the_guard_deadline_bounds_reads_in_both_of_yt_dlps_http_stacks(drip_mp4: StubServer, stack: str):
    """yt-dlp reads through requests (urllib3) when installed, else urllib: both are bounded."""
    url = drip_mp4.url("/clip.mp4")
    started = time.monotonic()
    expected = OSError if stack == "urllib" else requests.RequestException
    with guarded_connections(UrlPolicy(allow_private=True), deadline=started + 2) as guard, pytest.raises(expected):
        if stack == "urllib":
            urllib.request.urlopen(url, timeout=5).read()
        else:
            requests.get(url, timeout=5).content  # noqa: B018
    assert time.monotonic() - started < 2 + 1.5
    assert guard.expired


# --- yt-dlp's ffmpeg (merging separate video and audio) --------------------------------------------


def _playlist(target: Path) -> bytes:
    return (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
        f"#EXTINF:2.0,\nfile://{target}\n#EXT-X-ENDLIST\n"
    ).encode()


def _mpd(video_url: str, audio_url: str, video_type: str = "application/x-mpegURL", audio_type: str = "") -> bytes:
    """A DASH manifest with one video and one audio representation, each a single file. The HLS
    MIME type makes yt-dlp save them as .m3u8, the name that lets ffmpeg's HLS demuxer probe them."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT2S" minBufferTime="PT1S"
     profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">
 <Period>
  <AdaptationSet mimeType="{video_type}" contentType="video">
   <Representation id="v" codecs="avc1.64001e" width="320" height="240" bandwidth="300000">
    <BaseURL>{video_url}</BaseURL></Representation>
  </AdaptationSet>
  <AdaptationSet mimeType="{audio_type or video_type}" contentType="audio" lang="en">
   <Representation id="a" codecs="mp4a.40.2" bandwidth="64000" audioSamplingRate="44100">
    <BaseURL>{audio_url}</BaseURL></Representation>
  </AdaptationSet>
 </Period>
</MPD>""".encode()


def _magenta_files(folder: Path) -> list[Path]:
    """Files under `folder` whose first video frame is magenta (the private clip)."""
    found = []
    for path in files_under(folder):
        try:
            with av.open(str(path)) as container:
                frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
        except Exception:  # not a video: nothing to see
            continue
        red, green, blue = (float(np.mean(frame[..., c])) for c in range(3))
        if red > 200 and blue > 200 and green < 60:
            found.append(path)
    return found


@pytest.fixture(scope="module")
def private_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s magenta clip (with sound) outside the data dir: what must never be read into it."""
    private = tmp_path_factory.mktemp("private") / "private.ts"
    subprocess.run(
        [ffmpeg_binary(), "-v", "error", "-f", "lavfi", "-i", "color=c=magenta:size=320x240:rate=25:duration=2",
         "-f", "lavfi", "-i", "sine=duration=2", "-c:v", "libx264", "-c:a", "aac", "-f", "mpegts", str(private)],
        check=True, timeout=60,
    )  # fmt: skip
    return private


def test_a_playlist_served_over_http_cannot_name_a_local_file(server: LocalServer, settings: Settings, private_clip):
    """yt-dlp fetches segments itself, with file:// URLs refused (its default, kept)."""
    server.routes["/list.m3u8"] = Route(body=_playlist(private_clip), content_type="application/vnd.apple.mpegurl")
    with pytest.raises(DownloadError, match=r"points at a local file \(file://\); vChat refuses it") as caught:
        fetch_url(server.url("/list.m3u8"), settings)
    assert "\n" not in str(caught.value) and "enable-file-urls" not in str(caught.value)
    assert _magenta_files(settings.data_dir) == []
    assert files_under(settings.data_dir) == []


def test_merging_never_follows_a_playlist_inside_a_downloaded_stream(
    server: LocalServer, settings: Settings, private_clip: Path
):
    private = private_clip
    server.routes["/v"] = Route(body=_playlist(private), content_type="application/x-mpegURL")
    server.routes["/a"] = Route(body=_playlist(private), content_type="application/x-mpegURL")
    server.routes["/manifest.mpd"] = Route(
        body=_mpd(server.url("/v"), server.url("/a")), content_type="application/dash+xml"
    )
    try:
        fetch_url(server.url("/manifest.mpd"), settings)
        outcome = "fetched"
    except DownloadError as exc:
        outcome = str(exc)
    assert _magenta_files(settings.data_dir) == [], "the private file was read into the store"
    assert set(server.hits) == {"/manifest.mpd", "/v", "/a"}, "both streams were downloaded and given to ffmpeg"
    assert outcome != "fetched"
    assert "could not be combined" in outcome and "\n" not in outcome
    assert files_under(settings.data_dir) == []


def test_separate_video_and_audio_are_still_merged(server: LocalServer, settings: Settings, clips, tmp_path):
    """The input restrictions keep real media working: an mp4 video and an m4a audio become one mp4."""
    audio = tmp_path / "audio.m4a"
    subprocess.run(
        [ffmpeg_binary(), "-v", "error", "-f", "lavfi", "-i", "sine=duration=2", "-c:a", "aac", str(audio)],
        check=True,
        timeout=60,
    )
    server.serve_file("/v.mp4", clips["silent"])
    server.serve_file("/a.m4a", audio, content_type="audio/mp4")
    server.routes["/manifest.mpd"] = Route(
        body=_mpd(server.url("/v.mp4"), server.url("/a.m4a"), "video/mp4", "audio/mp4"),
        content_type="application/dash+xml",
    )
    _sha, path, _source, _reused = fetch_url(server.url("/manifest.mpd"), settings)
    with av.open(str(path)) as container:
        kinds = sorted(stream.type for stream in container.streams)
    assert kinds == ["audio", "video"]
