"""Downloads through yt-dlp from a local HTTP server, inside the URL guard."""

from __future__ import annotations

import http.server
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from core.config import Settings
from core.errors import DownloadError, LimitExceeded, UrlRefused
from core.media.download import fetch_url
from core.media.pipeline import prepare_media
from core.media.storage import sha256_file
from core.media.urlguard import UrlPolicy, guarded_connections
from tests.support import LocalServer, Route, StubServer, files_under, send_headers


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


# --- proxies: every hop is checked, whatever the proxy settings ----------------------------------

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's own proxy settings must not change where these tests connect."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # a 3xx comes back as an HTTPError, relayed as it is


class ForwardingProxy:
    """A plain HTTP forward proxy on 127.0.0.1: it fetches the absolute URL of each request itself
    (urllib, no proxy, no redirects followed) and relays status, headers and body. It records
    every request line, CONNECT included (which it refuses: no TLS here)."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: object) -> None:
                pass

            def _relay(self, with_body: bool) -> None:
                proxy.requests.append(self.path)
                if not self.path.startswith("http://"):
                    self.send_error(400)
                    return
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("range", "user-agent", "accept")}
                request = urllib.request.Request(self.path, method=self.command, headers=headers)
                try:
                    upstream = opener.open(request, timeout=10)
                except urllib.error.HTTPError as exc:
                    upstream = exc
                except OSError:
                    self.send_error(502)
                    return
                with upstream:
                    body = upstream.read() if with_body else b""
                    self.send_response(upstream.code)
                    for key, value in upstream.headers.items():
                        if key.lower() not in _HOP_BY_HOP:
                            self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(body)

            def do_GET(self) -> None:
                self._relay(True)

            def do_HEAD(self) -> None:
                self._relay(False)

            def do_CONNECT(self) -> None:
                proxy.requests.append(f"CONNECT {self.path}")
                self.send_error(405)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def private_server(body: bytes) -> StubServer:
    """A server on 127.0.0.2 (loopback, not allowlisted) that serves `body` and counts its hits."""

    def serve(handler: http.server.BaseHTTPRequestHandler, server: StubServer) -> None:
        send_headers(handler, "video/mp4", len(body))
        if handler.command == "GET":
            handler.wfile.write(body)

    return StubServer(serve, host="127.0.0.2")


@pytest.fixture
def proxy() -> Iterator[ForwardingProxy]:
    forwarding = ForwardingProxy()
    yield forwarding
    forwarding.close()


@pytest.fixture
def private(clips) -> Iterator[StubServer]:
    target = private_server(clips["h264"].read_bytes())
    yield target
    target.close()


PROXY_ENVIRONMENTS = {
    "HTTP_PROXY": {"HTTP_PROXY": "{proxy}"},
    "http_proxy": {"http_proxy": "{proxy}"},
    "both-cases-and-https": {"HTTP_PROXY": "{proxy}", "http_proxy": "{proxy}", "HTTPS_PROXY": "{proxy}"},
    "no_proxy-elsewhere": {"http_proxy": "{proxy}", "NO_PROXY": "example.org,localhost"},
    "no_proxy-first-hop": {"HTTP_PROXY": "{proxy}", "no_proxy": "127.0.0.1"},
    "no_proxy-redirect-target": {"http_proxy": "{proxy}", "NO_PROXY": "127.0.0.2"},
}


@pytest.mark.parametrize("environment", list(PROXY_ENVIRONMENTS.values()), ids=list(PROXY_ENVIRONMENTS))
def test_a_redirect_through_an_http_proxy_is_checked_before_it_is_sent(
    server: LocalServer,
    settings: Settings,
    proxy: ForwardingProxy,
    private: StubServer,
    monkeypatch: pytest.MonkeyPatch,
    environment: dict[str, str],
):
    for name, value in environment.items():
        monkeypatch.setenv(name, value.format(proxy=proxy.url))
    url = server.redirect("/go", private.url("/clip.mp4"))
    with pytest.raises(UrlRefused, match=r"127\.0\.0\.2.*loopback") as caught:
        fetch_url(url, settings)
    assert "\n" not in str(caught.value)
    assert private.hits == [], "the private server was reached"
    assert not any("127.0.0.2" in line for line in proxy.requests), "the private URL was sent to the proxy"
    assert files_under(settings.data_dir) == []


def test_an_allowed_target_is_fetched_through_the_proxy(
    server: LocalServer, settings: Settings, proxy: ForwardingProxy, monkeypatch: pytest.MonkeyPatch, clips
):
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    url = server.serve_file("/clip.mp4", clips["h264"])
    sha, path, _source, reused = fetch_url(url, settings)
    assert sha == sha256_file(clips["h264"]) and path.read_bytes() == clips["h264"].read_bytes()
    assert not reused
    assert url in proxy.requests, "the download went through the proxy"


@pytest.mark.parametrize(
    "environment",
    [
        {"ALL_PROXY": "socks5://127.0.0.1:9"},
        {"all_proxy": "socks5h://127.0.0.1:9"},
        {"HTTP_PROXY": "socks4://127.0.0.1:9", "NO_PROXY": "127.0.0.1"},
    ],
    ids=["ALL_PROXY", "all_proxy", "HTTP_PROXY-with-NO_PROXY"],
)
def test_a_socks_proxy_is_refused_in_one_line(
    server: LocalServer, settings: Settings, monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], clips
):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    url = server.serve_file("/clip.mp4", clips["h264"])
    with pytest.raises(UrlRefused, match="SOCKS proxy") as caught:
        fetch_url(url, settings)
    assert "\n" not in str(caught.value) and "127.0.0.1:9" not in str(caught.value)
    assert server.hits == []
    assert files_under(settings.data_dir) == []


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("stack", ["urllib", "requests"])
def test_the_guard_checks_the_target_of_a_proxied_request_in_both_http_stacks(
    proxy: ForwardingProxy, private: StubServer, stack: str, scheme: str
):
    """yt-dlp talks through requests (urllib3) when installed, else urllib: http through a proxy
    sends the absolute URL, https asks for a tunnel (CONNECT); both are checked before sending."""
    url = f"{scheme}://127.0.0.2:{private.port}/clip.mp4"
    proxies = {"http": proxy.url, "https": proxy.url}
    expected = OSError if stack == "urllib" else requests.RequestException
    with guarded_connections(UrlPolicy.from_entries(["127.0.0.1"])) as guard, pytest.raises(expected):
        if stack == "urllib":
            urllib.request.build_opener(urllib.request.ProxyHandler(proxies)).open(url, timeout=5)
        else:
            requests.get(url, proxies=proxies, timeout=5)
    assert guard.refusal is not None and "127.0.0.2" in str(guard.refusal)
    assert proxy.requests == [], "the request (or the CONNECT) reached the proxy"
    assert private.hits == []
