"""Shared pieces of the batch tests: distinct short clips (made once per session), a CSV writer,
and a Gemini stand-in environment for `python -m core batch` run in a subprocess."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.gemini_fake import VALID_KEY, FakeGemini, Reply
from tests.media_factory import make_clip
from tests.support import ROOT

CLIPS = 8


@pytest.fixture(scope="session")
def batch_clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Short clips whose bytes all differ (so each row has its own result-store key)."""
    root = tmp_path_factory.mktemp("batch_clips")
    return [
        make_clip(root / f"clip{n}.mp4", duration=1, size=f"{96 + 16 * n}x96", rate=10, audio=False)
        for n in range(CLIPS)
    ]


def put_clips(clips: list[Path], media_dir: Path, count: int) -> list[str]:
    """Copy the first `count` clips into the media folder; their names, as a CSV's url cells."""
    media_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for clip in clips[:count]:
        shutil.copyfile(clip, media_dir / clip.name)
        names.append(clip.name)
    return names


def write_csv(path: Path, text: str, bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def cli_env(tmp_path: Path, fake: FakeGemini, **extra: str) -> dict[str, str]:
    """The environment of a headless batch against the Gemini stand-in, in tmp_path's data dir."""
    env = {
        **os.environ,
        "VCHAT_DATA_DIR": str(tmp_path / "data"),
        "VCHAT_MEDIA_DIR": str(tmp_path / "videos"),
        "PYTHONPATH": str(ROOT),
        "GOOGLE_GEMINI_BASE_URL": fake.base_url,
        "GEMINI_API_KEY": VALID_KEY,
        "VCHAT_GEMINI_BACKOFF_S": "0.05",
        **extra,
    }
    env.pop("VCHAT_MODEL_PATH", None)
    return env


class SlowGemini(FakeGemini):
    """The Gemini stand-in, answering every request after `delay_s` (a model that takes its time)."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s

    def default_reply(self, body: dict) -> Reply:  # type: ignore[type-arg]
        reply = super().default_reply(body)
        reply.delay_s = self.delay_s
        return reply


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout_s: float = 90) -> None:  # type: ignore[type-arg]
    """Until `streamlit run` answers its health check (a failure, with the log's tail, if it exits)."""
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
