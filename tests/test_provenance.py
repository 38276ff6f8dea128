"""Provenance read from the original bytes: tags and the C2PA manifest state."""

from __future__ import annotations

import shutil
from pathlib import Path

from core.config import Settings
from core.media.pipeline import prepare_media
from core.media.provenance import read_c2pa, read_provenance


def test_creation_time_and_encoder_are_read_from_a_tagged_file(settings: Settings, clips):
    shutil.copyfile(clips["tagged"], settings.media_dir / "tagged.mov")
    asset = prepare_media("tagged.mov", settings)
    assert asset.provenance.creation_time.startswith("2024-05-06T07:08:09")
    assert asset.provenance.video_encoder == "vChatTestEncoder 1.0"
    assert asset.provenance.encoder.startswith("Lavf")  # the container was written by FFmpeg
    assert asset.provenance.container_tags["title"] == "secret title"
    assert asset.provenance.size_bytes == clips["tagged"].stat().st_size


def test_camera_make_and_model_from_a_quicktime_recording(fixtures_dir: Path):
    prov = read_provenance(fixtures_dir / "C-recorded-as-mov.mov", "x", "mov")
    assert (prov.make, prov.model) == ("Apple", "Mac15,9")
    assert prov.software.startswith("macOS")
    assert prov.c2pa.state == "none" and prov.c2pa.summary == "no C2PA manifest"


def test_c2pa_signed_video_is_valid_with_its_signer(settings: Settings, copy_fixture):
    copy_fixture("video1.mp4")
    asset = prepare_media("video1.mp4", settings)
    c2pa = asset.provenance.c2pa
    assert c2pa.state == "valid"
    assert c2pa.issuer == "C2PA Test Signing Cert"
    assert c2pa.claim_generator.startswith("TestApp")
    assert c2pa.trusted is False and "not on a trust list" in c2pa.summary


def test_legacy_manifest_layout_is_valid(fixtures_dir: Path):
    assert read_c2pa(fixtures_dir / "legacy.mp4").state == "valid"


def test_one_flipped_byte_makes_the_manifest_invalid(tmp_path: Path, fixtures_dir: Path):
    data = bytearray((fixtures_dir / "video1.mp4").read_bytes())
    data[len(data) - 5000] ^= 0xFF
    tampered = tmp_path / "tampered.mp4"
    tampered.write_bytes(bytes(data))
    c2pa = read_c2pa(tampered)
    assert c2pa.state == "invalid"
    assert "INVALID" in c2pa.summary and any("mismatch" in issue for issue in c2pa.validation_issues)


def test_unsigned_files_have_no_manifest(fixtures_dir: Path, clips):
    assert read_c2pa(fixtures_dir / "test.avi").summary == "no C2PA manifest"
    assert read_c2pa(clips["h264"]).state == "none"


def test_dash_init_segment_manifest_reads_invalid(fixtures_dir: Path):
    assert read_c2pa(fixtures_dir / "dashinit.mp4").state == "invalid"


def test_provenance_is_read_before_sanitizing_drops_the_manifest(settings: Settings, copy_fixture):
    copy_fixture("video1.mp4")
    asset = prepare_media("video1.mp4", settings)
    assert asset.provenance.c2pa.state == "valid"
    assert read_c2pa(Path(asset.sanitized.path)).state == "none"
