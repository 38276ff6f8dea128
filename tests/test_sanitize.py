"""Sanitize: remux when the input fits, re-encode when it does not; clean output either way."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import pytest

from core.config import Settings
from core.media.pipeline import prepare_media
from core.media.probe import probe
from core.media.sanitize import plan_sanitize


def _prepare(settings: Settings, source: Path, name: str | None = None):
    target = settings.media_dir / (name or source.name)
    shutil.copyfile(source, target)
    return prepare_media(target.name, settings)


def _assert_clean(asset) -> None:
    out = asset.sanitized.probe
    assert out.container.startswith("mov,mp4")
    assert (out.video_codec, out.pix_fmt, out.audio_codec) == ("h264", "yuv420p", "aac")
    assert out.width % 2 == 0 and out.height % 2 == 0
    with open(asset.sanitized.path, "rb") as fh:
        head = fh.read(64 * 1024)
    assert head.find(b"moov") != -1 and head.find(b"moov") < max(head.find(b"mdat"), 0) + 1, "faststart: moov first"


def test_compliant_h264_aac_mp4_is_remuxed(settings: Settings, clips):
    asset = _prepare(settings, clips["h264"])
    assert asset.sanitized.path_taken == "remux"
    assert asset.sanitized.plan.reasons == []
    _assert_clean(asset)
    assert asset.sanitized.seconds > 0


def test_real_world_h264_in_avi_is_remuxed_into_mp4(settings: Settings, copy_fixture):
    copy_fixture("test.avi")
    asset = prepare_media("test.avi", settings)
    assert asset.sanitized.path_taken == "remux"
    _assert_clean(asset)
    assert asset.sanitized.probe.duration_s == pytest.approx(asset.probe.duration_s, abs=0.6)


def test_c2pa_signed_phone_video_is_remuxed(settings: Settings, copy_fixture):
    copy_fixture("video1.mp4")
    asset = prepare_media("video1.mp4", settings)
    assert asset.sanitized.path_taken == "remux"
    assert (asset.sanitized.probe.width, asset.sanitized.probe.height) == (720, 1280)


@pytest.mark.parametrize(
    ("clip", "reason"),
    [
        ("vp9", "video codec is vp9"),
        ("yuv444", "pixel format is yuv444p"),
    ],
)
def test_non_compliant_input_is_reencoded(settings: Settings, clips, clip, reason):
    asset = _prepare(settings, clips[clip])
    assert asset.sanitized.path_taken == "reencode"
    assert any(reason in r for r in asset.sanitized.plan.reasons), asset.sanitized.plan.reasons
    _assert_clean(asset)
    assert asset.sanitized.probe.duration_s == pytest.approx(asset.probe.duration_s, abs=0.3)


def video_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams.video[0]) if p.size]


def test_a_silent_compliant_clip_keeps_its_video_bit_exact_and_says_so(settings: Settings, clips):
    """Only the audio is made (a silent track): the record says the video was copied, not re-encoded."""
    asset = _prepare(settings, clips["silent"])
    assert asset.sanitized.path_taken == "audio-reencode"
    assert (asset.sanitized.plan.video, asset.sanitized.plan.audio) == ("copy", "silent")
    assert any("no audio track" in r for r in asset.sanitized.plan.reasons)
    _assert_clean(asset)
    assert video_packets(Path(asset.sanitized.path)) == video_packets(clips["silent"])


def test_odd_dimensions_are_made_even(settings: Settings, odd_clip):
    asset = _prepare(settings, odd_clip)
    assert any("odd dimension" in r for r in asset.sanitized.plan.reasons)
    assert asset.sanitized.path_taken == "reencode"
    assert (asset.sanitized.probe.width, asset.sanitized.probe.height) == (320, 240)
    _assert_clean(asset)


def test_large_quicktime_is_scaled_to_the_cap(settings: Settings, copy_fixture):
    copy_fixture("C-recorded-as-mov.mov")
    asset = prepare_media("C-recorded-as-mov.mov", settings)
    assert asset.probe.has_audio is False and (asset.probe.width, asset.probe.height) == (2750, 1834)
    assert asset.sanitized.path_taken == "reencode"
    assert max(asset.sanitized.probe.width, asset.sanitized.probe.height) <= settings.sanitize_max_side
    assert asset.sanitized.probe.width / asset.sanitized.probe.height == pytest.approx(2750 / 1834, rel=0.01)
    _assert_clean(asset)


def test_metadata_is_stripped(settings: Settings, clips):
    original_tags = probe_tags(clips["tagged"])
    assert "secret title" in original_tags.values()
    asset = _prepare(settings, clips["tagged"])
    tags = probe_tags(Path(asset.sanitized.path))
    for value in ("secret title", "do not keep", "vChatTestEncoder 1.0"):
        assert value not in tags.values(), tags
    assert not any(key in tags for key in ("creation_time", "title", "comment", "encoder")), tags


def probe_tags(path: Path) -> dict[str, str]:
    with av.open(str(path)) as container:
        tags = dict(container.metadata)
        for stream in container.streams:
            tags.update({f"{k}": v for k, v in stream.metadata.items() if k != "handler_name"})
    return tags


def test_duration_cap_is_applied(tmp_path: Path, clips):
    settings = Settings(data_dir=tmp_path / "data", media_dir=tmp_path, sanitize_max_duration_s=5)
    asset = _prepare(settings, clips["long"])
    assert asset.probe.duration_s == pytest.approx(12, abs=0.2)
    assert asset.sanitized.plan.trim_to_s == 5
    assert asset.sanitized.probe.duration_s == pytest.approx(5, abs=0.5)


def test_plan_reads_only_the_probe(settings: Settings, clips):
    info = probe(clips["h264"], settings)
    assert plan_sanitize(info, settings).path_taken == "remux"
    small = Settings(data_dir=settings.data_dir, media_dir=settings.media_dir, sanitize_max_side=160)
    plan = plan_sanitize(info, small)
    assert plan.path_taken == "reencode" and (plan.width, plan.height) == (160, 120)


def test_the_same_bytes_are_sanitized_once(settings: Settings, clips):
    first = _prepare(settings, clips["vp9"])
    mtime = Path(first.sanitized.path).stat().st_mtime_ns
    second = _prepare(settings, clips["vp9"], name="copy.webm")
    assert second.sanitized.reused and not first.sanitized.reused
    assert Path(second.sanitized.path).stat().st_mtime_ns == mtime
