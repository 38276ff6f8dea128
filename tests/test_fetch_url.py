"""Downloads through yt-dlp from a local HTTP server, inside the URL guard."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.config import Settings
from core.errors import DownloadError, LimitExceeded, UrlRefused
from core.media.pipeline import prepare_media
from core.media.storage import sha256_file
from tests.conftest import LocalServer, Route, files_under


def test_direct_mp4_url_is_fetched_sanitized_and_recorded(server: LocalServer, settings: Settings, clips):
    url = server.serve_file("/clip.mp4", clips["h264"])
    asset = prepare_media(url, settings)
    assert asset.sha256 == sha256_file(clips["h264"])
    assert Path(asset.original_path).read_bytes() == clips["h264"].read_bytes()
    assert asset.source.kind == "url" and asset.source.url == url
    assert asset.sanitized.path_taken == "remux"
    assert Path(asset.sanitized.path).is_file()
    assert asset.provenance.sha256 == asset.sha256


def test_same_url_again_reuses_the_download_and_the_sanitized_file(server: LocalServer, settings: Settings, clips):
    url = server.serve_file("/clip.mp4", clips["h264"])
    first = prepare_media(url, settings)
    hits = len(server.hits)
    second = prepare_media(url, settings)
    assert len(server.hits) == hits, "the second fetch must not touch the server"
    assert second.reused_download and second.sanitized.reused
    assert second.sha256 == first.sha256 and second.sanitized.path == first.sanitized.path


def test_page_with_an_embedded_video(server: LocalServer, settings: Settings, clips):
    server.serve_file("/media/clip.mp4", clips["h264"])
    html = b"<html><head><title>A page</title></head><body><video src='/media/clip.mp4'></video></body></html>"
    server.routes["/page.html"] = Route(body=html, content_type="text/html")
    asset = prepare_media(server.url("/page.html"), settings)
    assert asset.sha256 == sha256_file(clips["h264"])
    assert asset.source.webpage_url == server.url("/page.html")


def test_redirect_chain_ending_on_a_private_address_is_refused(server: LocalServer, settings: Settings, clips):
    server.serve_file("/clip.mp4", clips["h264"])
    server.redirect("/r2", f"http://127.0.0.2:{server.port}/clip.mp4")
    url = server.redirect("/r1", "/r2")
    with pytest.raises(UrlRefused, match=r"127\.0\.0\.2.*loopback"):
        prepare_media(url, settings)
    assert server.hits[:2] == ["/r1", "/r2"]
    assert files_under(settings.data_dir / "media") == []
    assert files_under(settings.tmp_dir) == []


def test_redirect_to_the_metadata_address_is_refused_without_connecting(server: LocalServer, settings: Settings):
    url = server.redirect("/go", "http://169.254.169.254/latest/meta-data/")
    started = time.monotonic()
    with pytest.raises(UrlRefused, match="metadata"):
        prepare_media(url, settings)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("send_length", [True, False], ids=["with-content-length", "without-content-length"])
def test_oversize_download_is_refused_and_nothing_is_left(server: LocalServer, tmp_path: Path, clips, send_length):
    settings = Settings(
        data_dir=tmp_path / "data", media_dir=tmp_path, url_allowlist=["127.0.0.1"], max_download_mb=0.02
    )
    body = clips["long"].read_bytes()
    assert len(body) > settings.max_download_bytes * 2
    server.routes["/big.mp4"] = Route(body=body, send_length=send_length)
    with pytest.raises(LimitExceeded, match=r"larger than the 0\.02 MB"):
        prepare_media(server.url("/big.mp4"), settings)
    assert files_under(settings.data_dir) == []


def test_slow_server_times_out_with_a_clear_error(server: LocalServer, tmp_path: Path, clips):
    settings = Settings(data_dir=tmp_path / "data", media_dir=tmp_path, url_allowlist=["127.0.0.1"], socket_timeout_s=1)
    server.routes["/slow.mp4"] = Route(body=clips["h264"].read_bytes(), delay_s=6)
    started = time.monotonic()
    with pytest.raises(DownloadError, match="did not answer within 1 s"):
        prepare_media(server.url("/slow.mp4"), settings)
    assert time.monotonic() - started < 6 * 3
    assert files_under(settings.data_dir) == []


def test_missing_file_gives_404_message(server: LocalServer, settings: Settings):
    with pytest.raises(DownloadError, match="404"):
        prepare_media(server.url("/nothing.mp4"), settings)


def test_page_without_video_says_so(server: LocalServer, settings: Settings):
    server.routes["/about.html"] = Route(body=b"<html><body>No video here.</body></html>", content_type="text/html")
    with pytest.raises(DownloadError, match="No video was found"):
        prepare_media(server.url("/about.html"), settings)


def test_loopback_server_is_refused_without_the_allowlist(server: LocalServer, tmp_path: Path, clips):
    settings = Settings(data_dir=tmp_path / "data", media_dir=tmp_path)
    url = server.serve_file("/clip.mp4", clips["h264"])
    with pytest.raises(UrlRefused, match="loopback"):
        prepare_media(url, settings)
    assert server.hits == []


def test_allow_private_urls_lifts_the_address_check(server: LocalServer, tmp_path: Path, clips):
    settings = Settings(data_dir=tmp_path / "data", media_dir=tmp_path, allow_private_urls=True)
    url = server.serve_file("/clip.mp4", clips["h264"])
    assert prepare_media(url, settings).sha256 == sha256_file(clips["h264"])
