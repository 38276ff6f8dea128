"""Shared pieces of the batch tests: distinct short clips (made once per session), a CSV writer,
and a Gemini stand-in environment for `python -m core batch` run in a subprocess."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.gemini_fake import VALID_KEY, FakeGemini
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


