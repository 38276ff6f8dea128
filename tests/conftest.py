"""Shared fixtures: settings in a temporary data dir, generated clips, a local HTTP server."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pydantic import SecretStr

from core.config import Settings, get_settings
from tests.gemini_fake import VALID_KEY, FakeGemini
from tests.media_factory import make_clip, make_numbered_clip
from tests.support import LocalServer

if TYPE_CHECKING:  # the fine-tune fixtures import torch and PyAV only when a test asks for them
    from finetune.trainer import RunOutcome
    from tests.finetune_support import ColourWorld

ROOT = Path(__file__).resolve().parents[1]


def _find_fixtures() -> Path:
    """shared/fixtures/media: named by VCHAT_FIXTURES_DIR, beside this checkout (as in CI),
    or beside the repository this one was cloned from (a fresh clone in a temp dir)."""
    candidates = [Path(os.environ["VCHAT_FIXTURES_DIR"])] if os.environ.get("VCHAT_FIXTURES_DIR") else []
    candidates += [ROOT.parent / "shared" / "fixtures" / "media", ROOT / "shared" / "fixtures" / "media"]
    origin = subprocess.run(
        ["git", "-C", str(ROOT), "config", "--get", "remote.origin.url"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if origin and Path(origin).is_dir():
        candidates.append(Path(origin).resolve().parent / "shared" / "fixtures" / "media")
    return next((c for c in candidates if c.is_dir()), candidates[0])


FIXTURES = _find_fixtures()


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    assert FIXTURES.is_dir(), f"shared media fixtures not found at {FIXTURES}"
    return FIXTURES


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """Settings are read from the environment once per process; a test that set it must not leak."""
    yield
    get_settings.cache_clear()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    media = tmp_path / "videos"
    media.mkdir()
    return Settings(
        data_dir=tmp_path / "data",
        media_dir=media,
        url_allowlist=["127.0.0.1"],
        socket_timeout_s=2,
    )


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Generated clips, made once per test session."""
    root = tmp_path_factory.mktemp("clips")
    return {
        "h264": make_clip(root / "h264.mp4", duration=3),
        "h264_b": make_clip(root / "h264_b.mp4", duration=2, size="352x288"),
        "vp9": make_clip(root / "vp9.webm", duration=2, vcodec="libvpx-vp9", acodec="libopus"),
        "yuv444": make_clip(root / "yuv444.mp4", duration=2, pix_fmt="yuv444p"),
        "silent": make_clip(root / "silent.mp4", duration=2, audio=False),
        "tagged": make_clip(
            root / "tagged.mov",
            duration=2,
            extra=[
                "-metadata",
                "creation_time=2024-05-06T07:08:09Z",
                "-metadata:s:v:0",
                "encoder=vChatTestEncoder 1.0",
                "-metadata",
                "title=secret title",
                "-metadata",
                "comment=do not keep",
                "-movflags",
                "use_metadata_tags",
            ],
        ),
        "long": make_clip(root / "long.mp4", duration=12),
        "numbered": make_numbered_clip(root / "numbered.mp4", frames=250, fps=25, gop=50),
    }


@pytest.fixture(scope="session")
def odd_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 321x241 clip: h264 with odd dimensions needs the yuv444 detour to be written at all."""
    root = tmp_path_factory.mktemp("odd")
    return make_clip(root / "odd.mkv", duration=2, size="321x241", pix_fmt="yuv444p")


@pytest.fixture
def server() -> Iterator[LocalServer]:
    srv = LocalServer()
    yield srv
    srv.close()


@pytest.fixture
def copy_fixture(fixtures_dir: Path, settings: Settings) -> Callable[[str], Path]:
    """Copy a shared fixture into the media dir (fixtures are read-only) and return its path."""

    def copy(name: str) -> Path:
        target = settings.media_dir / name
        shutil.copyfile(fixtures_dir / name, target)
        return target

    return copy


@pytest.fixture
def gemini(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGemini]:
    """A local Gemini REST server, reached by the real SDK through GOOGLE_GEMINI_BASE_URL."""
    fake = FakeGemini().start()
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.base_url)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    yield fake
    fake.stop()


@pytest.fixture
def gemini_settings(settings: Settings) -> Settings:
    """Settings with the fake's key and short waits (retries, polling) so tests stay fast."""
    return settings.model_copy(
        update={
            "gemini_api_key": SecretStr(VALID_KEY),
            "gemini_backoff_s": 0.05,
            "gemini_poll_s": 0.05,
            "gemini_max_wait_s": 20,
            "gemini_timeout_s": 10,
        }
    )


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random checkpoint of the local model's architecture, written once per session."""
    from core.models.local.tiny import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def learnable_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint with its output head scaled so that a LoRA can learn (tests/finetune_support.py)."""
    from tests.finetune_support import scaled_head_model

    return scaled_head_model(tmp_path_factory.mktemp("tiny-learnable"))


@pytest.fixture(scope="session")
def colour_world(tmp_path_factory: pytest.TempPathFactory, learnable_tiny_model: Path) -> ColourWorld:
    """Settings, the learnable tiny model and a red/blue dataset, made once per session."""
    from tests.finetune_support import make_colour_world

    return make_colour_world(tmp_path_factory.mktemp("finetune"), learnable_tiny_model)


@pytest.fixture(scope="session")
def colour_run(colour_world: ColourWorld) -> RunOutcome:
    """The STEPS-step run on the colour dataset, trained once per session in this process."""
    from finetune.trainer import train

    return train(colour_world.options("colour"), colour_world.settings, quiet=True)
