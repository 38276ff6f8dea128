"""Helpers tests share (not a test module: no test imports another test module)."""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.analysis.flows import flow_for
from core.config import Settings, get_settings
from core.media.pipeline import MediaAsset
from core.models.base import AnalysisRequest, AnalysisResult, StreamFn
from core.models.local.host import HOST
from core.progress import no_progress
from ui.text import WORD_JOINER

ROOT = Path(__file__).resolve().parents[1]
HOME = str(ROOT / "Home.py")


def ask(
    model: str,
    settings: Settings,
    asset: MediaAsset,
    request: AnalysisRequest,
    model_path: Path | None = None,
    api_key: str | None = None,
    on_text: StreamFn | None = None,
) -> AnalysisResult:
    """Run the flow of `model` on `asset` (no result store), taking the host's turn as the runner does."""
    flow = flow_for(model, settings, model_path, api_key)
    flow.check(request)
    return flow.run(asset, request, no_progress, on_text, HOST.turn)


# --- a local HTTP server ---------------------------------------------------------------------


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "video/mp4"
    headers: dict[str, str] | None = None
    send_length: bool = True
    delay_s: float = 0.0


class LocalServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route | Callable[[], Route]] = {}
        self.hits: list[str] = []
        handler = self._handler_class()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def serve_file(self, path: str, file: Path, content_type: str = "video/mp4") -> str:
        self.routes[path] = Route(body=file.read_bytes(), content_type=content_type)
        return self.url(path)

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        self.routes[path] = Route(status=status, headers={"Location": location}, content_type="text/plain")
        return self.url(path)

    def _handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: object) -> None:
                pass

            def _respond(self, with_body: bool) -> None:
                path = self.path.split("?")[0]
                server.hits.append(path)
                route = server.routes.get(path)
                if callable(route):
                    route = route()
                if route is None:
                    self.send_error(404)
                    return
                if route.delay_s:
                    time.sleep(route.delay_s)
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                for key, value in (route.headers or {}).items():
                    self.send_header(key, value)
                if route.send_length:
                    self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                if with_body:
                    try:
                        for start in range(0, len(route.body), 64 * 1024):
                            self.wfile.write(route.body[start : start + 64 * 1024])
                    except (BrokenPipeError, ConnectionResetError):
                        pass

            def do_GET(self) -> None:
                self._respond(True)

            def do_HEAD(self) -> None:
                self._respond(False)

        return Handler

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def run_cli(args: list[str], tmp_path: Path, stdin: bytes | None = None, **env: str) -> subprocess.CompletedProcess:
    environment = {
        **os.environ,
        "VCHAT_DATA_DIR": str(tmp_path / "data"),
        "VCHAT_MEDIA_DIR": str(tmp_path / "videos"),
        "PYTHONPATH": str(ROOT),
        **env,
    }
    (tmp_path / "videos").mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "core", *args],
        input=stdin,
        capture_output=True,
        env=environment,
        cwd=tmp_path,
        timeout=120,
    )


# --- the app ---------------------------------------------------------------------------------------


@dataclass
class AppPaths:
    data_dir: Path
    media_dir: Path
    adapters_dir: Path


def app_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model_path: Path | None = None, **extra: str) -> AppPaths:
    """Point the app's settings (read from the environment) at a temporary data and media dir."""
    media = tmp_path / "videos"
    media.mkdir(exist_ok=True)
    env = {
        "VCHAT_DATA_DIR": str(tmp_path / "data"),
        "VCHAT_MEDIA_DIR": str(media),
        "VCHAT_ADAPTERS_DIR": str(tmp_path / "adapters"),
        "VCHAT_PRESEED_DIR": str(tmp_path / "no-preseed"),
        "VCHAT_URL_ALLOWLIST": "127.0.0.1",
        "VCHAT_SOCKET_TIMEOUT_S": "2",
        **extra,
    }
    if model_path is not None:
        env["VCHAT_MODEL_PATH"] = str(model_path)
    else:
        monkeypatch.delenv("VCHAT_MODEL_PATH", raising=False)
    for name in ("GEMINI_API_KEY", "VCHAT_GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    return AppPaths(tmp_path / "data", media, tmp_path / "adapters")


def new_app() -> AppTest:
    return AppTest.from_file(HOME, default_timeout=120)


def all_text(app: AppTest) -> str:
    """Every markdown, caption, alert and title string the page shows."""
    parts = [
        e.value
        for kind in ("markdown", "caption", "info", "warning", "error", "success", "title")
        for e in getattr(app, kind)
    ]
    return "\n".join(str(p) for p in parts)


_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")


def shown(value: str) -> str:
    """A markdown string as the reader sees it: backslash escapes undone, hard line breaks as newlines,
    no invisible word joiners (escape_markdown puts them where GFM would make a link)."""
    return _ESCAPED.sub(r"\1", value.replace("  \n", "\n")).replace(WORD_JOINER, "")


def shown_text(app: AppTest) -> str:
    """`all_text` as the reader sees it."""
    return shown(all_text(app))


def status_lines(status) -> list[str]:  # type: ignore[no-untyped-def]
    """The lines an st.status shows, as the reader sees them (bold marks dropped): markdown lines and
    progress bars' texts."""
    lines = []
    for child in status.children.values():
        if child.type == "markdown":
            lines.append(shown(child.value.replace("**", "")))
        elif child.type == "progress":
            lines.append(shown(child.proto.text.replace("**", "")))
    return lines


def answer_with_reason(server: LocalServer, path: str, status: int, reason: str) -> str:
    """A route on the local server that answers `status` with `reason` as its HTTP reason phrase."""
    handler = server.httpd.RequestHandlerClass
    handler.responses = {**http.server.BaseHTTPRequestHandler.responses, status: (reason, reason)}
    server.routes[path] = Route(status=status, body=b"no video here", content_type="text/plain")
    return server.url(path)


def button(app: AppTest, label: str):  # type: ignore[no-untyped-def]
    return next(b for b in app.button if b.label == label)


class FlowDriver:
    """A model's flow as tests drive it: `analyze(asset, request)`, and `analyze_youtube(url, request)`
    for an engine that reads URLs (no store, no runner)."""

    def __init__(self, model: str, settings: Settings, model_path: Path | None = None, api_key: str | None = None):
        self.model, self.settings, self.model_path, self.api_key = model, settings, model_path, api_key

    def analyze(self, asset: MediaAsset, request: AnalysisRequest, on_text: StreamFn | None = None) -> AnalysisResult:
        return ask(self.model, self.settings, asset, request, self.model_path, self.api_key, on_text)

    def analyze_youtube(self, url: str, request: AnalysisRequest) -> AnalysisResult:
        flow = flow_for(self.model, self.settings, self.model_path, self.api_key)
        flow.check(request)
        return flow.run_url(url, request, no_progress, None)  # type: ignore[attr-defined]


class StubServer:
    """A local HTTP server whose every GET (and HEAD) is answered by `respond(handler, server)`; it
    counts the paths asked for in `hits`, and `stop` is set when it closes (for slow answers)."""

    def __init__(
        self,
        respond: Callable[[http.server.BaseHTTPRequestHandler, StubServer], None],
        host: str = "127.0.0.1",
    ) -> None:
        self.hits: list[str] = []
        self.stop = threading.Event()
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                stub.hits.append(self.path)
                with contextlib.suppress(OSError):  # the client hung up
                    respond(self, stub)

            do_HEAD = do_GET

        self.host = host
        self.httpd = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def send_headers(handler: http.server.BaseHTTPRequestHandler, content_type: str, length: int) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(length))
    handler.end_headers()


def chromium_path() -> str:
    """Debian's chromium, which the browser tests drive (Playwright cannot download one here)."""
    import shutil

    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    # Not a skip: only a missing GPU may skip. `make test` installs chromium as root.
    pytest.fail("Debian's chromium is not installed: apt-get install -y chromium (make test does it as root).")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout_s: float = 90) -> None:  # type: ignore[type-arg]
    """Until `streamlit run` answers its health check (a failure, with the log's tail, if it exits)."""
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"streamlit exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200 and response.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"streamlit did not become healthy in {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def streamlit_app(env: dict[str, str], log: Path) -> Iterator[str]:
    """`streamlit run Home.py` on a free local port with `env`, its output in `log`; yields its URL
    once healthy, and stops it (terminate, then kill) afterwards."""
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", "Home.py", "--server.port", str(port)]
    command += ["--server.headless", "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def processes_mentioning(text: str) -> list[str]:
    """Live (non-zombie) processes whose command line contains `text` (this one excepted)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(f"{entry.name}: {cmdline[:300]}")
    return found
