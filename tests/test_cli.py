"""The CLI, run as a user runs it: exit codes, JSON on stdout, one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from core.media.sampling import plan_frames
from tests.support import LocalServer, run_cli

ROOT = Path(__file__).resolve().parents[1]


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    err = proc.stderr.decode()
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_fetch_local_path_prints_the_media_asset(tmp_path: Path, clips):
    (tmp_path / "videos").mkdir()
    shutil.copyfile(clips["h264"], tmp_path / "videos" / "clip.mp4")
    proc = run_cli(["fetch", "clip.mp4", "-q"], tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    asset = json.loads(proc.stdout)
    assert asset["source"]["kind"] == "local"
    assert asset["sanitized"]["path_taken"] == "remux"
    assert len(asset["sha256"]) == 64 and Path(asset["sanitized"]["path"]).is_file()
    assert asset["probe"]["has_audio"] is True and asset["provenance"]["c2pa"]["state"] == "none"


def test_fetch_direct_url(tmp_path: Path, server: LocalServer, clips):
    url = server.serve_file("/v/clip.mp4", clips["h264"])
    proc = run_cli(["fetch", url, "-q"], tmp_path, VCHAT_URL_ALLOWLIST="127.0.0.1")
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(proc.stdout)["source"]["url"] == url


def test_fetch_upload_from_stdin(tmp_path: Path, fixtures_dir: Path):
    data = (fixtures_dir / "video1.mp4").read_bytes()
    proc = run_cli(["fetch", "-", "--filename", "phone.mp4", "-q"], tmp_path, stdin=data)
    assert proc.returncode == 0, proc.stderr.decode()
    asset = json.loads(proc.stdout)
    assert asset["source"] == {**asset["source"], "kind": "upload", "filename": "phone.mp4"}
    assert asset["provenance"]["c2pa"]["state"] == "valid"


def test_progress_goes_to_stderr_not_stdout(tmp_path: Path, clips):
    (tmp_path / "videos").mkdir()
    shutil.copyfile(clips["h264"], tmp_path / "videos" / "clip.mp4")
    proc = run_cli(["fetch", "clip.mp4"], tmp_path)
    assert proc.returncode == 0
    assert "[sanitize]" in proc.stderr.decode()
    json.loads(proc.stdout)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("file:///etc/passwd", "Only http and https URLs"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata address"),
        ("http://localhost:8005/", "loopback"),
        ("/etc/passwd", "must be inside the media folder"),
        ("../secret.mp4", "'..' are refused"),
        ("nope.mp4", "No such file"),
    ],
)
def test_refusals_exit_2_with_one_line(tmp_path: Path, source: str, message: str):
    proc = run_cli(["fetch", source], tmp_path)
    assert proc.returncode == 2
    assert message in _one_line_error(proc)
    assert proc.stdout == b""


def test_bad_media_exits_2(tmp_path: Path):
    proc = run_cli(["fetch", "-", "--filename", "notes.mp4"], tmp_path, stdin=b"just some text\n" * 100)
    assert proc.returncode == 2
    assert "'notes.mp4' is not a video file" in _one_line_error(proc)


def test_usage_errors_exit_2(tmp_path: Path):
    assert run_cli([], tmp_path).returncode == 2
    proc = run_cli(["frames", "clip.mp4", "--n", "many"], tmp_path)
    assert proc.returncode == 2 and "invalid int value" in _one_line_error(proc)


def test_frames_prints_true_timestamps(tmp_path: Path, clips):
    """`--n 6` shows the frames a 1-round analysis with a budget of 6 sees: the official uniform rule,
    first and last frame included."""
    (tmp_path / "videos").mkdir()
    shutil.copyfile(clips["numbered"], tmp_path / "videos" / "n.mp4")
    proc = run_cli(["frames", "n.mp4", "--n", "6", "-q"], tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    rows = [line.split() for line in proc.stdout.decode().splitlines()]
    assert [int(r[2]) for r in rows] == [0, 50, 100, 149, 199, 249]
    assert [float(r[0]) for r in rows] == [i / 25 for i in (0, 50, 100, 149, 199, 249)]


def test_frames_json_with_segments(tmp_path: Path, clips):
    """`--segments` shows the frames the next round sees after that glue."""
    (tmp_path / "videos").mkdir()
    shutil.copyfile(clips["numbered"], tmp_path / "videos" / "n.mp4")
    proc = run_cli(["frames", "n.mp4", "--n", "20", "--segments", "2-4", "--json", "-q"], tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    out = json.loads(proc.stdout)
    assert out["sampling"] == "weighted" and out["segments"] == [[2.0, 4.04]], "frames 50-100, as seconds"
    assert out["indices"] == plan_frames(250, 25.0, frames=20, key_time=[(2.0, 4.0)]).indices
    assert sum(50 <= i <= 100 for i in out["indices"]) > 20 * 51 / 250, "denser inside the segment"
    proc = run_cli(["frames", "n.mp4", "--segments", "15-10"], tmp_path)
    assert proc.returncode == 2 and "ends before it starts" in _one_line_error(proc)
    proc = run_cli(["frames", "n.mp4", "--segments", "two-four"], tmp_path)
    assert proc.returncode == 2 and "START-END" in _one_line_error(proc)
