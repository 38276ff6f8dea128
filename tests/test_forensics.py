"""Evidence that needs no model (core.media.forensics), through the real pipeline on generated clips.

Each clip is made once per session and measured once per module where several tests read the same
evidence; every clip goes through prepare_media (fetch, probe, provenance, sanitize) first.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest

from core.config import Settings
from core.media.forensics import FORENSICS_VERSION, Evidence, gather_evidence, keyframes_zip, search_links
from core.media.frames import load_frame_index
from core.media.pipeline import MediaAsset, prepare_media
from core.progress import ProgressFn
from tests.media_factory import ffmpeg, make_clip
from tests.support import LocalServer, Route

ROOT = Path(__file__).resolve().parents[1]
X264 = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")


def _settings(root: Path) -> Settings:
    media = root / "videos"
    media.mkdir(parents=True, exist_ok=True)
    return Settings(data_dir=root / "data", media_dir=media)


def _measure(clip: Path, settings: Settings, progress: ProgressFn | None = None) -> tuple[MediaAsset, Evidence]:
    shutil.copyfile(clip, settings.media_dir / clip.name)
    asset = prepare_media(clip.name, settings)
    return asset, gather_evidence(asset, settings, progress)


@pytest.fixture(scope="session")
def forensic_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The generated clips the evidence is checked against (25 fps, small pictures)."""
    root = tmp_path_factory.mktemp("forensic_clips")
    clips = {name: root / f"{name}.mp4" for name in ("spliced", "signals", "clipped")}
    # testsrc2 for 3 s, then SMPTE bars for 3 s, with a steady tone under both.
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=3",
        "-f", "lavfi", "-i", "smptebars=size=320x240:rate=25:duration=3",
        "-f", "lavfi", "-i", "sine=frequency=440:duration=6",
        "-filter_complex", "[0:v][1:v]concat=n=2:v=1:a=0[v]", "-map", "[v]", "-map", "2:a",
        *X264, "-c:a", "aac", str(clips["spliced"]),
    )  # fmt: skip
    # Frame 25 (1.0 s) held until 2.0 s, black from 4.0 to 5.0 s; the tone silent from 2.0 to 4.0 s.
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=6",
        "-f", "lavfi", "-i", "sine=frequency=440:duration=6",
        "-vf", "loop=loop=25:size=1:start=25,setpts=N/25/TB,trim=duration=6,"
        "drawbox=enable='between(t,4,5)':color=black:t=fill",
        "-af", "volume=enable='between(t,2,4)':volume=0", *X264, "-c:a", "aac", str(clips["signals"]),
    )  # fmt: skip
    # A tone driven 30 dB past full scale.
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:duration=2",
        "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
        "-af", "volume=30dB", *X264, "-c:a", "aac", str(clips["clipped"]),
    )  # fmt: skip
    clips["silent"] = make_clip(root / "silent.mp4", duration=2, size="160x120", audio=False)
    clips["tagged"] = make_clip(
        root / "tagged.mov",
        duration=2,
        size="160x120",
        audio=False,
        extra=[
            "-metadata", "make=Canon", "-metadata", "model=EOS R5",
            "-metadata", "software=Adobe Premiere Pro 2024.1",
            "-metadata", "creation_time=2024-05-06T07:08:09Z", "-movflags", "use_metadata_tags",
        ],
    )  # fmt: skip
    return clips


@pytest.fixture(scope="module")
def spliced_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return _settings(tmp_path_factory.mktemp("spliced"))


@pytest.fixture(scope="module")
def spliced_progress() -> list[tuple[str, str, float | None]]:
    return []


@pytest.fixture(scope="module")
def spliced(
    forensic_clips: dict[str, Path], spliced_settings: Settings, spliced_progress: list[tuple[str, str, float | None]]
) -> tuple[MediaAsset, Evidence]:
    return _measure(forensic_clips["spliced"], spliced_settings, lambda *report: spliced_progress.append(report))


@pytest.fixture(scope="module")
def signals(forensic_clips: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Evidence:
    return _measure(forensic_clips["signals"], _settings(tmp_path_factory.mktemp("signals")))[1]


# --- shots and keyframes -------------------------------------------------------------------------


def test_the_splice_is_a_shot_boundary_with_a_keyframe_on_each_side(spliced: tuple[MediaAsset, Evidence]):
    asset, evidence = spliced
    shots = evidence.shots
    assert shots.applicable and not shots.capped and shots.cuts_found == 1
    assert [shot.index for shot in shots.shots] == [1, 2]
    first, second = shots.shots
    assert abs(second.start_s - 3.0) <= 0.1 and abs(first.end_s - 3.0) <= 0.1
    assert first.start_s == 0.0 and abs(second.end_s - 6.0) <= 0.05
    assert second.cut_strength is not None and second.cut_strength > 20 and first.cut_strength is None
    index = load_frame_index(Path(asset.sanitized.path))
    for shot in shots.shots:
        frame = shot.keyframe
        assert frame is not None and frame.shot == shot.index
        assert shot.start_s <= frame.time_s < shot.end_s
        assert shot.first_frame <= frame.frame_index <= shot.last_frame
        assert frame.time_s == pytest.approx(index.seconds(frame.frame_index), abs=1e-6)  # the true PTS
        data = Path(frame.path).read_bytes()
        assert data[:3] == b"\xff\xd8\xff" and (frame.width, frame.height) == (320, 240)
        assert frame.filename == f"shot-{shot.index:03d}_{frame.time_s:.3f}s.jpg"
    assert "PySceneDetect" in shots.method and "sharpest" in shots.keyframe_rule
    assert evidence.version == FORENSICS_VERSION and evidence.frames == 150 and evidence.fps == pytest.approx(25)


def test_the_spliced_clip_has_no_other_finding(spliced: tuple[MediaAsset, Evidence]):
    _, evidence = spliced
    assert evidence.audio.applicable and evidence.audio.integrated_lufs is not None
    assert evidence.audio.loudness_range_lu is not None
    # SMPTE bars are a still picture: the second shot is one frozen stretch, and nothing else is found.
    assert [signal.kind for signal in evidence.signals if signal.found] == ["frozen"]
    (still,) = evidence.visual.frozen.events
    assert abs(still.start_s - 3.0) <= 0.1 and abs(still.end_s - 6.0) <= 0.1
    assert all(signal.applicable and signal.method and signal.summary for signal in evidence.signals)


def test_evidence_is_read_back_from_the_store_with_fresh_provenance(
    spliced: tuple[MediaAsset, Evidence], spliced_settings: Settings
):
    asset, evidence = spliced
    settings = spliced_settings
    started = time.perf_counter()
    again = gather_evidence(asset, settings)
    assert time.perf_counter() - started < 0.5
    assert again.reused and not evidence.reused
    assert again.shots == evidence.shots and again.audio == evidence.audio and again.visual == evidence.visual
    # Provenance and thumbnails depend on where the bytes came from: computed afresh on every call.
    source = asset.source.model_copy(
        update={"upload_date": "20000101", "thumbnails": ["https://img.example/t.jpg?a=1&b=2", "file:///etc/passwd"]}
    )
    tagged = gather_evidence(asset.model_copy(update={"source": source}), settings)
    assert tagged.reused
    assert [thumbnail.url for thumbnail in tagged.shots.thumbnails] == ["https://img.example/t.jpg?a=1&b=2"]
    assert len(tagged.shots.thumbnails[0].search_links) == 4


def test_progress_is_reported_by_stage(
    spliced: tuple[MediaAsset, Evidence], spliced_progress: list[tuple[str, str, float | None]]
):
    assert {stage for stage, _, _ in spliced_progress} == {"evidence"}
    messages = [message for _, message, _ in spliced_progress]
    assert messages[0] == "shots: 0 of 6 s" and "visual signals" in messages and "audio signals" in messages
    fractions = [fraction for _, _, fraction in spliced_progress if fraction is not None]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_keyframes_zip_holds_every_keyframe(spliced: tuple[MediaAsset, Evidence]):
    _, evidence = spliced
    with zipfile.ZipFile(io.BytesIO(keyframes_zip(evidence))) as archive:
        assert sorted(archive.namelist()) == sorted(frame.filename for frame in evidence.shots.keyframes)
        for frame in evidence.shots.keyframes:
            assert archive.read(frame.filename) == Path(frame.path).read_bytes()


def test_a_missing_record_is_measured_again(forensic_clips: dict[str, Path], settings: Settings):
    asset, evidence = _measure(forensic_clips["silent"], settings)
    record = Path(evidence.shots.keyframes_dir).with_name(f"{evidence.key}.json")
    assert record.is_file()
    record.write_text("{half")  # a torn record is never read as evidence
    assert not gather_evidence(asset, settings).reused
    Path(evidence.shots.keyframes[0].path).unlink()  # nor one whose keyframes are gone
    again = gather_evidence(asset, settings)
    assert not again.reused and Path(again.shots.keyframes[0].path).is_file()


# --- audio ---------------------------------------------------------------------------------------


def test_silence_in_a_tone_is_found_with_its_times(signals: Evidence):
    silence = signals.audio.silence
    assert silence.total == 1
    event = silence.events[0]
    assert abs(event.start_s - 2.0) <= 0.1 and abs(event.end_s - 4.0) <= 0.1
    assert not signals.audio.clipping.found and not signals.audio.level_jumps.found
    assert "silencedetect" in silence.method and "-50" in silence.method


def test_a_clipped_tone_is_found_and_a_clean_one_is_not(forensic_clips: dict[str, Path], settings: Settings):
    _, evidence = _measure(forensic_clips["clipped"], settings)
    clipping = evidence.audio.clipping
    assert clipping.found and clipping.events[0].start_s < 0.2 and (clipping.events[0].value or 0) > 100
    assert evidence.audio.peak_dbfs is not None and evidence.audio.peak_dbfs >= 0


def test_clean_tone_has_no_clipping(spliced: tuple[MediaAsset, Evidence]):
    audio = spliced[1].audio
    assert not audio.clipping.found and audio.peak_dbfs is not None and audio.peak_dbfs < -10
    assert "No clipping" in audio.clipping.summary


def test_an_original_without_audio_is_not_measured(forensic_clips: dict[str, Path], settings: Settings):
    asset, evidence = _measure(forensic_clips["silent"], settings)
    assert asset.sanitized.probe.has_audio  # the sanitized copy has a silent track: it is never measured
    audio = evidence.audio
    assert not audio.applicable and audio.reason == "the original has no audio track"
    assert all(not signal.applicable and signal.reason == audio.reason for signal in audio.signals)
    assert audio.integrated_lufs is None


# --- pictures ------------------------------------------------------------------------------------


def test_frozen_and_black_stretches_are_found_with_their_times(signals: Evidence):
    frozen, black = signals.visual.frozen, signals.visual.black
    held = [event for event in frozen.events if event.start_s < 3]
    assert len(held) == 1 and abs(held[0].start_s - 1.0) <= 0.2 and abs(held[0].end_s - 2.0) <= 0.2
    assert black.total == 1
    assert abs(black.events[0].start_s - 4.0) <= 0.2 and abs(black.events[0].end_s - 5.0) <= 0.2
    assert not signals.visual.picture_changes.found and not signals.visual.timestamp_gaps.found
    assert not signals.visual.frame_rate_changes.found


# --- provenance ----------------------------------------------------------------------------------


def test_signed_c2pa_names_its_issuer(settings: Settings, copy_fixture: Callable[[str], Path]):
    copy_fixture("video1.mp4")
    evidence = gather_evidence(prepare_media("video1.mp4", settings), settings)
    flags = {flag.code: flag for flag in evidence.provenance.flags}
    assert "C2PA Test Signing Cert" in flags["c2pa-valid"].message and flags["c2pa-valid"].severity == "info"
    facts = {fact.label: fact.value for fact in evidence.provenance.facts}
    assert facts["C2PA issuer"] == "C2PA Test Signing Cert"
    assert not evidence.provenance.warnings


def test_tampered_c2pa_is_a_warning(settings: Settings, fixtures_dir: Path):
    data = bytearray((fixtures_dir / "video1.mp4").read_bytes())
    data[len(data) - 5000] ^= 0xFF  # as in test_provenance: one flipped byte in the media data
    (settings.media_dir / "tampered.mp4").write_bytes(bytes(data))
    evidence = gather_evidence(prepare_media("tampered.mp4", settings), settings)
    assert [flag.code for flag in evidence.provenance.warnings] == ["c2pa-invalid"]
    assert "INVALID" in evidence.provenance.warnings[0].message


def test_camera_tags_with_an_editor_and_a_late_creation_time(forensic_clips: dict[str, Path], settings: Settings):
    shutil.copyfile(forensic_clips["tagged"], settings.media_dir / "tagged.mov")
    asset = prepare_media("tagged.mov", settings)
    uploaded = asset.model_copy(update={"source": asset.source.model_copy(update={"upload_date": "20240101"})})
    flags = {flag.code: flag for flag in gather_evidence(uploaded, settings).provenance.flags}
    assert flags["camera-with-editor"].severity == "warning"
    assert "Canon EOS R5" in flags["camera-with-editor"].message and "Premiere" in flags["camera-with-editor"].message
    assert (
        flags["creation-after-upload"].severity == "warning" and "2024-05-06" in flags["creation-after-upload"].message
    )
    later = asset.model_copy(update={"source": asset.source.model_copy(update={"upload_date": "20240601"})})
    assert "creation-after-upload" not in {flag.code for flag in gather_evidence(later, settings).provenance.flags}


# --- links and the package ------------------------------------------------------------------------


def test_search_links_encode_the_image_url():
    url = "https://img.example.com/vi/a b/max.jpg?x=1&y=2#f"
    links = search_links(url)
    assert [link.engine for link in links] == ["Google Lens", "Bing", "Yandex", "TinEye"]
    encoded = quote(url, safe="")
    assert all(encoded in link.url and link.url.startswith("https://") for link in links)
    assert all("&y=2" not in link.url and " " not in link.url for link in links)
    assert links[0].url == f"https://lens.google.com/uploadbyurl?url={encoded}"
    assert links[3].url == f"https://tineye.com/search?url={encoded}"


def test_importing_the_package_loads_no_vision_library():
    code = "import sys, core.media.forensics; print(sorted({'cv2', 'scenedetect'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_page_poster_becomes_a_thumbnail_with_search_links(
    server: LocalServer, settings: Settings, forensic_clips: dict[str, Path]
):
    server.serve_file("/media/clip.mp4", forensic_clips["silent"])
    html = b"<html><body><video src='/media/clip.mp4' poster='/media/poster.jpg'></video></body></html>"
    server.routes["/page.html"] = Route(body=html, content_type="text/html")
    asset = prepare_media(server.url("/page.html"), settings)
    poster = server.url("/media/poster.jpg")
    assert asset.source.thumbnails == [poster]
    (thumbnail,) = gather_evidence(asset, settings).shots.thumbnails
    assert thumbnail.url == poster and thumbnail.search_links == search_links(poster)
    assert not any(path.endswith("poster.jpg") for path in server.hits)  # vChat never fetches the picture itself
