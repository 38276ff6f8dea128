"""What the command line says while it works: progress lines that never run into each other, a
stored digest named as such, one frame limit for every command."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from core.media.sampling import MAX_FRAMES
from tests.gemini_fake import VALID_KEY, json_reply
from tests.support import run_cli

DIGEST = {
    "summary": "A test pattern with a tone.",
    "language": "none",
    "scenes": [{"start_s": 0, "end_s": 2, "description": "colour bars"}],
    "transcript": [],
    "on_screen_text": [],
    "claims": [],
    "audio_notes": [{"start_s": 0, "end_s": 2, "kind": "tone", "note": "a steady beep"}],
}


@pytest.fixture
def videos(tmp_path: Path, clips: dict[str, Path]) -> Path:
    (tmp_path / "videos").mkdir()
    shutil.copyfile(clips["h264_b"], tmp_path / "videos" / "clip.mp4")
    return tmp_path / "videos"


@pytest.fixture(scope="module")
def chatty_model(tiny_model: Path) -> Path:
    """The shared tiny checkpoint: it generates as many tokens as it is allowed (the streamed line moves)."""
    return tiny_model


def test_every_progress_line_starts_on_its_own_line(tmp_path: Path, videos: Path, chatty_model: Path):
    args = ["analyze", "clip.mp4", "-Q", "What is shown?", "--model-path", str(chatty_model)]
    proc = run_cli([*args, "--rounds", "2", "--frames", "4", "--max-new-tokens", "24"], tmp_path)
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert "[round 2]" in err and "characters generated" in err  # the streamed count was shown
    for line in err.split("\n"):
        shown = line.split("\r")[-1]  # what the terminal leaves of a rewritten line
        if "[" in shown:
            assert re.match(r"^(\[[a-z]+( \d+)?\]|note:|round \d)", shown), repr(line)
    assert not re.search(r"generated\[", err)


def test_digest_says_when_it_serves_the_stored_one(tmp_path: Path, videos: Path, gemini):  # type: ignore[no-untyped-def]
    env = {"GOOGLE_GEMINI_BASE_URL": gemini.base_url, "GEMINI_API_KEY": VALID_KEY}
    gemini.script(json_reply(DIGEST))
    first = run_cli(["digest", "clip.mp4"], tmp_path, **env)
    assert first.returncode == 0, first.stderr.decode()
    assert "A test pattern with a tone." in first.stdout.decode() and "stored" not in first.stderr.decode()
    again = run_cli(["digest", "clip.mp4"], tmp_path, **env)
    assert again.stdout == first.stdout and len(gemini.generate_requests()) == 1
    assert re.search(r"note: the digest stored at \S+ \(--refresh asks Gemini again\)", again.stderr.decode())


@pytest.mark.parametrize(
    "args",
    [
        ["frames", "clip.mp4", "--n", str(MAX_FRAMES + 1)],
        ["analyze", "clip.mp4", "-Q", "What is shown?", "--frames", str(MAX_FRAMES + 1)],
    ],
)
def test_one_frame_limit_for_every_command(tmp_path: Path, videos: Path, args: list[str]):
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.decode().strip() == f"error: Frames must be between 1 and {MAX_FRAMES}; got {MAX_FRAMES + 1}."


def test_the_frame_limit_itself_is_accepted(tmp_path: Path, videos: Path):
    proc = run_cli(["frames", "clip.mp4", "--n", str(MAX_FRAMES), "--json", "-q"], tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
