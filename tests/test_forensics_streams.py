"""Evidence from the original's streams: a level jump in the audio, and a picture that changes size
and frame rate after a gap in its timestamps (two MPEG-TS parts joined byte for byte)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.config import Settings
from core.media.forensics import Evidence, gather_evidence
from core.media.pipeline import prepare_media
from tests.media_factory import ffmpeg, make_kind

X264 = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")


@pytest.fixture(scope="module")
def stream_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stream_clips")
    jump, first, second = root / "jump.mp4", root / "a.ts", root / "b.ts"
    # A tone 20 dB quieter for its first 3 s.
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:duration=6",
        "-f", "lavfi", "-i", "sine=frequency=440:duration=6",
        "-af", "volume=enable='lt(t,3)':volume=-20dB", *X264, "-c:a", "aac", str(jump),
    )  # fmt: skip
    # 3 s of 320x240 at 25 fps; then, 1 s later on the clock, 3 s of 352x288 at 50 fps.
    for part, size, rate, offset in ((first, "320x240", 25, "0"), (second, "352x288", 50, "4")):
        ffmpeg(
            "-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}:duration=3",
            "-f", "lavfi", "-i", "sine=frequency=440:duration=3",
            *X264, "-c:a", "aac", "-output_ts_offset", offset, "-f", "mpegts", str(part),
        )  # fmt: skip
    joined = root / "joined.ts"
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    return {"jump": jump, "joined": joined}


def _evidence(clip: Path, settings: Settings) -> Evidence:
    shutil.copyfile(clip, settings.media_dir / clip.name)
    return gather_evidence(prepare_media(clip.name, settings), settings)


def test_an_abrupt_level_jump_is_found_at_its_time(stream_clips: dict[str, Path], settings: Settings):
    audio = _evidence(stream_clips["jump"], settings).audio
    assert audio.level_jumps.total == 1
    jump = audio.level_jumps.events[0]
    assert abs(jump.start_s - 3.0) <= 0.15 and jump.value is not None and 15 <= jump.value <= 25
    assert "up" in jump.what and "15 dB" in audio.level_jumps.method
    assert not audio.silence.found and not audio.clipping.found
    assert audio.loudness_range_lu is not None and audio.loudness_range_lu > 5


def test_size_rate_and_timestamp_changes_of_the_original(stream_clips: dict[str, Path], settings: Settings):
    evidence = _evidence(stream_clips["joined"], settings)
    visual = evidence.visual
    (change,) = visual.picture_changes.events
    assert abs(change.start_s - 4.0) <= 0.1 and "320x240 to 352x288" in change.what
    (rate,) = visual.frame_rate_changes.events
    assert abs(rate.start_s - 4.0) <= 0.1 and rate.value == pytest.approx(50, rel=0.02)
    (gap,) = visual.timestamp_gaps.events
    assert abs(gap.start_s - 2.96) <= 0.1 and abs(gap.end_s - 4.0) <= 0.1 and gap.value == pytest.approx(1.04, abs=0.1)
    # The sanitized copy shows two shots, the second from the change of picture.
    assert len(evidence.shots.shots) == 2 and abs(evidence.shots.shots[1].start_s - 4.0) <= 0.1
    # The audio has the same hole: it spans the clock, so its length and the video's agree.
    assert not evidence.audio.duration_mismatch.found


def test_timing_signals_are_not_applicable_when_timestamps_start_again(tmp_path: Path, settings: Settings):
    evidence = _evidence(make_kind(tmp_path / "joined.ts", "joined-ts"), settings)
    assert "joined-parts" in {flag.code for flag in evidence.provenance.warnings}
    for signal in (evidence.visual.timestamp_gaps, evidence.visual.frame_rate_changes):
        assert not signal.applicable and "start again" in (signal.reason or "")
    assert evidence.visual.picture_changes.applicable and not evidence.visual.picture_changes.found
