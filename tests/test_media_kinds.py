"""Real-world kinds of video that break naive pipelines, each on a file shipped inside a public
package (../shared/fixtures/media/real-world) and on files generated here: accepted, and right.

What ffmpeg itself decodes from a file is the truth a sanitized file is held to.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from core.config import Settings
from core.errors import LimitExceeded
from core.media.pipeline import MediaAsset, prepare_media
from tests.media_factory import ffmpeg_frame_count, make_kind, write_levels_clip

REAL_WORLD = "real-world"


@pytest.fixture(scope="session")
def kinds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generated file of each kind, made once per session (about 2 s)."""
    folder = tmp_path_factory.mktemp("kinds")
    for kind in (
        "full-range-h264",
        "mjpeg-avi",
        "raw-mjpeg",
        "non-square",
        "raw-m2v",
        "raw-h264",
        "apng",
        "mpeg-ps",
        "live-mkv",
        "joined-ts",
        "ts-empty-audio",
        "ten-hour-gap-mkv",
    ):
        make_kind(folder / kind, kind)
    write_levels_clip(folder / "levels.mp4")
    return folder


def _source(name: str, kinds: Path, fixtures_dir: Path) -> Path:
    return fixtures_dir / REAL_WORLD / name[len("shared:") :] if name.startswith("shared:") else kinds / name


def _prepare(name: str, settings: Settings, kinds: Path, fixtures_dir: Path) -> tuple[MediaAsset, Path]:
    source = _source(name, kinds, fixtures_dir)
    target = settings.media_dir / source.name
    shutil.copyfile(source, target)
    return prepare_media(target.name, settings), source


def _assert_clean(asset: MediaAsset) -> None:
    out = asset.sanitized.probe
    assert (out.video_codec, out.pix_fmt, out.audio_codec) == ("h264", "yuv420p", "aac")
    assert not out.full_range and out.sample_aspect_ratio is None
    assert out.width % 2 == 0 and out.height % 2 == 0


# --- full-range levels -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["shared:gem_anim-1.mov", "full-range-h264", "mjpeg-avi", "raw-mjpeg"])
def test_full_range_video_becomes_limited_range_h264_with_every_frame(name, settings, kinds, fixtures_dir):
    asset, source = _prepare(name, settings, kinds, fixtures_dir)
    assert asset.probe.full_range
    assert any("full-range" in reason for reason in asset.sanitized.plan.reasons)
    _assert_clean(asset)
    assert asset.sanitized.probe.video_frames == ffmpeg_frame_count(source)


def _levels(path: Path) -> tuple[int, int, float, float]:
    """(median luma of the black half, of the white half, mean RGB of each half) of the first frame."""
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
    plane = frame.planes[0]
    luma = np.frombuffer(plane, np.uint8).reshape(plane.height, -1)[:, : frame.width]
    rgb = frame.to_ndarray(format="rgb24")
    half = frame.width // 2
    return (
        int(np.median(luma[:, 10 : half - 10])),
        int(np.median(luma[:, half + 10 : -10])),
        float(rgb[:, 10 : half - 10].mean()),
        float(rgb[:, half + 10 : -10].mean()),
    )


def test_full_range_levels_are_converted_not_relabelled(settings, kinds, fixtures_dir):
    """Black stays black and white stays white: luma 0/255 becomes 16/235 in the limited-range output."""
    asset, source = _prepare("levels.mp4", settings, kinds, fixtures_dir)
    assert _levels(source)[:2] == (0, 255)
    black, white, black_rgb, white_rgb = _levels(Path(asset.sanitized.path))
    assert abs(black - 16) <= 2 and abs(white - 235) <= 2
    assert black_rgb < 8 and white_rgb > 247


# --- non-square pixels -----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "display"), [("shared:mimetype_3gp.3gp", 4 / 3), ("non-square", 465 / 240)])
def test_non_square_pixels_are_shown_at_the_display_aspect(name, display, settings, kinds, fixtures_dir):
    asset, _ = _prepare(name, settings, kinds, fixtures_dir)
    stored = asset.probe.width / asset.probe.height
    out = asset.sanitized.probe
    _assert_clean(asset)
    assert out.width / out.height == pytest.approx(display, rel=0.01)
    sample = asset.frames(settings).sample_uniform(4)
    shown = sample.frames.shape[2] / sample.frames.shape[1]
    assert abs(shown - display) < abs(shown - stored), (shown, display, stored)


# --- headers that lie about the length ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "seconds"),
    [("shared:gem_alea.mpg", 5.4), ("raw-m2v", 3.0), ("raw-h264", 3.0), ("apng", 3.0), ("live-mkv", 3.0)],
)
def test_the_length_is_measured_from_the_content(name, seconds, settings, kinds, fixtures_dir):
    asset, source = _prepare(name, settings, kinds, fixtures_dir)
    assert asset.probe.duration_s == pytest.approx(seconds, abs=0.1)
    assert asset.sanitized.probe.duration_s == pytest.approx(seconds, abs=0.1)
    assert asset.sanitized.probe.video_frames == ffmpeg_frame_count(source)
    _assert_clean(asset)


@pytest.mark.parametrize("name", ["shared:gem_alea.mpg", "raw-m2v", "apng", "live-mkv"])
def test_the_duration_limit_applies_to_the_measured_length(name, tmp_path, kinds, fixtures_dir):
    settings = Settings(data_dir=tmp_path / "data", media_dir=tmp_path, max_duration_s=2)
    with pytest.raises(LimitExceeded, match=r"s long; the limit is 2 s"):
        _prepare(name, settings, kinds, fixtures_dir)


def test_ten_hours_of_timestamps_in_a_small_file_are_refused_at_once(settings, kinds, fixtures_dir):
    with pytest.raises(LimitExceeded, match=r"The video is 36003 s long; the limit is 1800 s"):
        _prepare("ten-hour-gap-mkv", settings, kinds, fixtures_dir)


def test_the_sanitized_file_holds_the_duration_cap(tmp_path, kinds, fixtures_dir):
    settings = Settings(data_dir=tmp_path / "data", media_dir=tmp_path, sanitize_max_duration_s=2)
    asset, _ = _prepare("live-mkv", settings, kinds, fixtures_dir)
    assert asset.sanitized.plan.trim_to_s == 2
    assert asset.sanitized.probe.duration_s <= 2.1


# --- files that cannot seek (no index) are complete, not truncated ----------------------------------


@pytest.mark.parametrize("name", ["shared:mimetype_mkv.mkv", "live-mkv", "mpeg-ps", "joined-ts"])
def test_files_without_an_index_are_accepted_with_every_frame(name, settings, kinds, fixtures_dir):
    asset, source = _prepare(name, settings, kinds, fixtures_dir)
    _assert_clean(asset)
    assert asset.sanitized.probe.video_frames == ffmpeg_frame_count(source)
    sample = asset.frames(settings).sample_uniform(8)
    assert sample.timestamps == sorted(sample.timestamps)
    assert sample.timestamps[0] >= 0 and sample.timestamps[-1] < asset.sanitized.probe.duration_s


def test_a_file_joined_without_re_timing_plays_its_parts_one_after_the_other(settings, kinds, fixtures_dir):
    """mimetype_mkv.mkv's timestamps start again at frame 57: its 147 frames last 5.88 s, not 3.6 s."""
    asset, _ = _prepare("shared:mimetype_mkv.mkv", settings, kinds, fixtures_dir)
    assert asset.probe.timestamp_resets == 1 and asset.probe.header_duration_s == pytest.approx(3.6)
    assert asset.probe.duration_s == pytest.approx(147 / 25, abs=0.05)
    assert asset.sanitized.probe.duration_s == pytest.approx(147 / 25, abs=0.1)


# --- audio streams without samples ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["shared:muxjs_test-no-audio-segment.ts", "ts-empty-audio"])
def test_an_audio_stream_without_samples_is_no_audio(name, settings, kinds, fixtures_dir):
    asset, source = _prepare(name, settings, kinds, fixtures_dir)
    assert not asset.probe.has_audio and asset.probe.audio_stream is None
    assert any("has no samples" in note for note in asset.probe.notes)
    assert asset.sanitized.plan.audio == "silent"
    _assert_clean(asset)
    assert asset.sanitized.probe.video_frames == ffmpeg_frame_count(source)


def test_video_copied_and_audio_converted_is_recorded_as_such(settings, tmp_path):
    from tests.media_factory import make_clip

    clip = make_clip(tmp_path / "opus.mkv", duration=2, acodec="libopus")
    shutil.copyfile(clip, settings.media_dir / "opus.mkv")
    asset = prepare_media("opus.mkv", settings)
    assert asset.sanitized.path_taken == "audio-reencode"
    assert (asset.sanitized.plan.video, asset.sanitized.plan.audio) == ("copy", "encode")
