"""What the pipeline accepts, frames and analysis can use: damaged data in the middle of a file,
videos of a single frame, raw H.264 and MJPEG streams; and bad names are bad input (exit 2)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.config import Settings
from core.errors import InputError
from core.media.pipeline import prepare_media
from tests.media_factory import make_clip, make_kind

ROOT = Path(__file__).resolve().parents[1]


def run_cli(settings: Settings, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VCHAT_DATA_DIR": str(settings.data_dir), "VCHAT_MEDIA_DIR": str(settings.media_dir)}
    return subprocess.run(
        [sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A compliant h264/aac mp4 (so it is remuxed, damage and all) with 20 KB of noise in its media data."""
    folder = tmp_path_factory.mktemp("damaged")
    clip = make_clip(folder / "clean.mp4", duration=4)
    data = clip.read_bytes()
    middle = data.find(b"mdat") + (len(data) - data.find(b"mdat")) // 2
    noise = bytes(np.random.default_rng(1).integers(0, 256, 20_000, dtype=np.uint8))
    target = folder / "damaged.mp4"
    target.write_bytes(data[:middle] + noise + data[middle + 20_000 :])
    return target


def test_damaged_data_mid_file_keeps_the_decodable_part_and_says_so(settings: Settings, damaged: Path):
    shutil.copyfile(damaged, settings.media_dir / "damaged.mp4")
    asset = prepare_media("damaged.mp4", settings)
    assert asset.sanitized.path_taken == "remux"
    for _ in range(2):  # the frames CLI works on every run, not only the first
        proc = run_cli(settings, "frames", "damaged.mp4", "--n", "100", "--json", "-q")
        assert proc.returncode == 0, proc.stderr
    sample = json.loads(proc.stdout)
    assert sample["count"] == 100 and sample["substituted"], "damaged frames are served by neighbours, and listed"
    text = run_cli(settings, "frames", "damaged.mp4", "--n", "100")
    assert text.returncode == 0 and "could not be decoded (damaged data" in text.stderr


def test_an_analysis_of_a_damaged_file_answers_and_notes_it(settings: Settings, damaged: Path, tiny_model: Path):
    shutil.copyfile(damaged, settings.media_dir / "damaged.mp4")
    proc = run_cli(
        settings, "analyze", "damaged.mp4", "-Q", "What?", "--model-path", str(tiny_model),
        "--rounds", "1", "--frames", "100", "--max-new-tokens", "4", "--json", "-q",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    notes = json.loads(proc.stdout)["rounds"][0]["parse_notes"]
    assert any("could not be decoded (damaged data" in note for note in notes), notes


@pytest.mark.parametrize("kind", ["one-frame-mp4", "one-frame-mkv", "one-frame-gif"])
def test_a_video_of_one_frame_is_analysed(settings: Settings, tmp_path: Path, tiny_model: Path, kind: str):
    make_kind(settings.media_dir / "one.bin", kind)
    proc = run_cli(
        settings, "analyze", "one.bin", "-Q", "What?", "--model-path", str(tiny_model),
        "--rounds", "2", "--frames", "8", "--max-new-tokens", "4", "--json", "-q",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert [record["frame_indices"][0] for record in result["rounds"]] == [0, 0]
    assert all(record["sampled_fps"] > 0 for record in result["rounds"])


@pytest.mark.parametrize("kind", ["raw-h264", "raw-mjpeg"])
def test_raw_h264_and_mjpeg_streams_are_accepted(settings: Settings, kind: str):
    make_kind(settings.media_dir / "raw.bin", kind)
    proc = run_cli(settings, "fetch", "raw.bin", "-q")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)["sanitized"]["probe"]
    assert (out["video_codec"], out["pix_fmt"], out["video_frames"]) == ("h264", "yuv420p", 75)
    assert out["duration_s"] == pytest.approx(3.0, abs=0.1)


@pytest.mark.parametrize("name", ["a" * 300 + ".mp4", "dir/" + "b" * 256])
def test_an_impossible_local_name_is_bad_input(settings: Settings, name: str):
    proc = run_cli(settings, "fetch", name, "-q")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "is not a usable file name" in proc.stderr


def test_a_name_with_a_nul_byte_is_bad_input(settings: Settings):
    with pytest.raises(InputError, match="is not a usable file name"):
        prepare_media("x\x00.mp4", settings)
