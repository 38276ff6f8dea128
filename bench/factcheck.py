"""Fact-check benchmark: the evidence that needs no model (core.media.forensics) against a plain decode.

Run from the repository root:

    python bench/factcheck.py            # a 10 min 1280x720 clip (a few minutes on 2 cores)
    python bench/factcheck.py --quick    # a 1 min clip, a smoke run

The clip (ffmpeg testsrc2 + a sine tone, h264 (ultrafast, crf 28) + AAC in mp4, 2 s GOP, with five
hard cuts and a 2 s silence) is made once with the ffmpeg vChat uses and kept in `--workdir` (default
bench/.cache/). It goes through the real pipeline (prepare_media: the sanitizer remuxes it), then
in the same run: a plain full decode of the sanitized file by ffmpeg (`-f null`) and by PyAV
(every frame), and `gather_evidence` with a cold store (shots and keyframes, audio, picture
signals, provenance) and again warm. The goal: cold evidence at most 3x the plain decode.
Figures are wall-clock seconds; the script reports PASS/MISS and exits 0 either way.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


from core.config import Settings  # noqa: E402
from core.media.ffmpeg import run_ffmpeg  # noqa: E402
from core.media.forensics import gather_evidence  # noqa: E402
from core.media.pipeline import prepare_media  # noqa: E402
from core.media.sniff import ffmpeg_input, open_media  # noqa: E402
from core.media.storage import MediaStore  # noqa: E402

GOAL = 3.0  # cold evidence / plain decode, at most


def cut_times(seconds: int) -> list[float]:
    """Five hard cuts spread over the clip."""
    return [round(seconds * share, 1) for share in (0.1, 0.25, 0.45, 0.7, 0.9)]


def generation_args(seconds: int, target: Path) -> list[str]:
    # Every cut flips the picture between testsrc2 as is and its negative with the hue turned.
    flips = "+".join(f"gte(t,{t})" for t in cut_times(seconds))
    video = f"testsrc2=size=1280x720:rate=30:duration={seconds}"
    audio = f"sine=frequency=440:sample_rate=48000:duration={seconds}"
    silence = f"volume=enable='between(t,{seconds * 0.5:.1f},{seconds * 0.5 + 2:.1f})':volume=0"
    return [
        *("-f", "lavfi", "-i", video, "-f", "lavfi", "-i", audio),
        *("-vf", f"negate=enable='mod({flips},2)',hue=h=120:enable='mod({flips},2)'", "-af", silence),
        *("-map", "0:v:0", "-map", "1:a:0", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "28", "-g", "60"),
        *("-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-ac", "2", "-shortest"),
        *("-movflags", "+faststart", "-f", "mp4", "-y", str(target)),
    ]


def ensure_clip(seconds: int, workdir: Path) -> Path:
    path = workdir / f"factcheck_testsrc2_1280x720_30fps_crf28_{seconds}s.mp4"
    if path.exists() and path.stat().st_size > 0:
        print(f"  reusing {path}", flush=True)
        return path
    workdir.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.partial.mp4")
    started = time.perf_counter()
    run = run_ffmpeg(generation_args(seconds, staging), timeout_s=3600)
    if run.returncode != 0 or not staging.exists():
        staging.unlink(missing_ok=True)
        raise SystemExit(f"ffmpeg could not generate {path.name}: {run.stderr[-500:]}")
    os.replace(staging, path)
    print(f"  generated {path} in {time.perf_counter() - started:.1f} s", flush=True)
    return path


def ffmpeg_decode(path: Path) -> float:
    """Every video frame and audio sample decoded by ffmpeg, to a null output."""
    started = time.perf_counter()
    run = run_ffmpeg([*ffmpeg_input(path, "mov"), "-f", "null", "-"], timeout_s=3600)
    if run.returncode != 0:
        raise SystemExit(f"ffmpeg could not decode {path.name}: {run.stderr[-500:]}")
    return time.perf_counter() - started


def pyav_decode(path: Path) -> tuple[float, int]:
    """Every video frame decoded by PyAV (frame threads on), nothing converted."""
    started = time.perf_counter()
    frames = 0
    with open_media(path, "mov") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in container.decode(stream):
            frames += 1
    return time.perf_counter() - started, frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 1 min clip instead of 10 min")
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / "bench" / ".cache")
    args = parser.parse_args()
    seconds = 60 if args.quick else 600
    print(f"vChat fact-check evidence bench: python {platform.python_version()}, {os.cpu_count()} CPUs", flush=True)
    clip = ensure_clip(seconds, args.workdir)
    with tempfile.TemporaryDirectory(prefix="vchat-bench-factcheck-") as tmp:
        root = Path(tmp)
        settings = Settings(data_dir=root / "data", media_dir=root / "videos", max_download_mb=4000)
        settings.media_dir.mkdir(parents=True)
        try:
            os.link(clip, settings.media_dir / clip.name)
        except OSError:
            shutil.copyfile(clip, settings.media_dir / clip.name)
        started = time.perf_counter()
        asset = prepare_media(clip.name, settings)
        print(f"  prepare_media: {time.perf_counter() - started:.2f} s ({asset.sanitized.path_taken})", flush=True)
        sanitized = Path(asset.sanitized.path)

        decode_ffmpeg = ffmpeg_decode(sanitized)
        print(f"  plain decode, ffmpeg -f null (video + audio): {decode_ffmpeg:.2f} s", flush=True)
        decode_pyav, frames = pyav_decode(sanitized)
        print(f"  plain decode, PyAV every frame ({frames} frames): {decode_pyav:.2f} s", flush=True)

        shutil.rmtree(MediaStore(settings).result_path(asset.sha256, "forensics"), ignore_errors=True)
        started = time.perf_counter()
        evidence = gather_evidence(asset, settings)
        cold = time.perf_counter() - started
        stages = ", ".join(f"{name} {value:.2f} s" for name, value in evidence.stage_seconds.items())
        print(f"  gather_evidence, cold: {cold:.2f} s ({stages})", flush=True)
        started = time.perf_counter()
        again = gather_evidence(asset, settings)
        warm = time.perf_counter() - started
        print(f"  gather_evidence, warm (reused={again.reused}): {warm * 1000:.1f} ms", flush=True)

        cuts = [round(shot.start_s, 2) for shot in evidence.shots.shots[1:]]
        print(f"  found: cuts at {cuts} (made at {cut_times(seconds)})", flush=True)
        for signal in evidence.signals:
            print(f"  found: {signal.title}: {signal.summary}", flush=True)

        best = min(decode_ffmpeg, decode_pyav)
        for name, base in (("ffmpeg decode", decode_ffmpeg), ("PyAV decode", decode_pyav), ("faster decode", best)):
            ratio = cold / base
            verdict = "PASS" if ratio <= GOAL else "MISS"
            print(f"ratio cold evidence / {name}: {ratio:.2f}x (goal <= {GOAL:g}x) {verdict}", flush=True)


if __name__ == "__main__":
    main()
