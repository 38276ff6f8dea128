"""Nothing left behind: a fetch killed with SIGKILL at any point leaves no ffmpeg running and no
staging or partial file once the next vChat process has started, and the next run works."""

from __future__ import annotations

import http.server
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.media.scratch import owner_alive, owner_tag, scratch_dir, sweep_stale, temporary_name
from tests.media_factory import ffmpeg
from tests.support import StubServer, processes_mentioning, send_headers

ROOT = Path(__file__).resolve().parents[1]
KILLS = 5


@pytest.fixture(scope="module")
def slow_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MPEG-4 part 2 clip with MP3 audio, so sanitize re-encodes both for a few seconds."""
    folder = tmp_path_factory.mktemp("slow")
    path = folder / "clip.avi"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=960x540:rate=30:duration=10",
        "-f", "lavfi", "-i", "sine=duration=10",
        "-c:v", "mpeg4", "-q:v", "12", "-c:a", "mp3", str(path),
    )  # fmt: skip
    return path


def drip_server(body: bytes) -> StubServer:
    """Serves one file slowly (64 KB every 50 ms), so a download is still running when the kill comes."""

    def drip(handler: http.server.BaseHTTPRequestHandler, server: StubServer) -> None:
        send_headers(handler, "video/x-msvideo", len(body))
        for start in range(0, len(body), 64 * 1024):
            handler.wfile.write(body[start : start + 64 * 1024])
            if server.stop.wait(0.05):
                return

    return StubServer(drip)


def leftovers(data_dir: Path) -> list[str]:
    """Staging and partial files: anything in the scratch folder, any temporary name elsewhere."""
    scratch = [str(p) for p in (data_dir / "tmp").iterdir()] if (data_dir / "tmp").is_dir() else []
    temporary = [str(p) for p in data_dir.rglob("*") if p.name.endswith((".tmp", ".part", ".ytdl"))]
    hidden_media = [str(p) for p in data_dir.rglob(".*.mp4")]
    return scratch + temporary + hidden_media


def start_fetch(source: str, data_dir: Path, media_dir: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "VCHAT_DATA_DIR": str(data_dir),
        "VCHAT_MEDIA_DIR": str(media_dir),
        "VCHAT_URL_ALLOWLIST": "127.0.0.1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "core", "fetch", source, "-q"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_for(condition: Callable[[], bool], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the phase to interrupt never started"
        time.sleep(0.05)


def test_a_fetch_killed_at_random_points_leaves_nothing_behind(tmp_path: Path, slow_clip: Path):
    """Killed mid-sanitize (local file) or mid-download (slow URL), at a random moment in the phase."""
    media_dir = tmp_path / "videos"
    media_dir.mkdir()
    (media_dir / "clip.avi").write_bytes(slow_clip.read_bytes())
    server = drip_server(slow_clip.read_bytes())
    rng = random.Random(20261128)
    try:
        for attempt in range(KILLS):
            data_dir = tmp_path / f"data-{attempt}"
            downloading = attempt % 2 == 1
            source = server.url("/clip.avi") if downloading else "clip.avi"
            proc = start_fetch(source, data_dir, media_dir)
            if downloading:
                wait_for(lambda data_dir=data_dir: any(data_dir.rglob("*.part")))
            else:
                wait_for(lambda data_dir=data_dir: any("ffmpeg" in p for p in processes_mentioning(str(data_dir))))
            time.sleep(rng.uniform(0.0, 0.6))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            time.sleep(0.5)  # a parent-death signal acts at once; an orphaned ffmpeg would run on for seconds
            assert processes_mentioning(str(data_dir)) == [], f"attempt {attempt}: a child outlived the fetch"
            again = start_fetch(source, data_dir, media_dir)
            assert again.wait(timeout=300) == 0, again.stderr.read().decode() if again.stderr else ""
            assert leftovers(data_dir) == [], f"attempt {attempt}: staging files left"
            assert list((data_dir / "media" / "objects").rglob("sanitized/*.mp4")), "the next run made its mp4"
    finally:
        server.close()


def test_the_sweep_removes_what_dead_owners_left_and_nothing_of_live_ones(tmp_path: Path):
    data_dir = tmp_path / "data"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    dead_tag = owner_tag().replace(f"vchat-{os.getpid()}-", f"vchat-{dead_pid}-")
    assert owner_alive(owner_tag()) and not owner_alive(dead_tag)
    (data_dir / "tmp" / f"fetch.{dead_tag}.x").mkdir(parents=True)
    (data_dir / "tmp" / f"fetch.{dead_tag}.x" / "download.mp4.part").write_bytes(b"partial")
    stale = data_dir / "media" / "objects" / "ab" / f".probe.json.{dead_tag}.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_text("{")
    mine = temporary_name(data_dir / "results" / "r.json")
    mine.parent.mkdir(parents=True)
    mine.write_text("{")
    with scratch_dir(data_dir / "tmp", "fetch") as live:
        assert sweep_stale(data_dir) == 2
        assert live.is_dir() and mine.exists()
    assert not stale.exists() and sorted(p.name for p in (data_dir / "tmp").iterdir()) == []
