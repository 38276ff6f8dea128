"""Locating and running the ffmpeg binary.

A system ffmpeg is used when present (usually the fastest build), else the static binary
that imageio-ffmpeg ships, so vChat needs nothing outside its Python packages.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from dataclasses import dataclass

from core.errors import ProcessingError


@functools.lru_cache(maxsize=4)
def ffmpeg_binary(preferred: str | None = None) -> str:
    """Path of the ffmpeg to run: `preferred`, else the system one, else imageio-ffmpeg's."""
    if preferred:
        found = shutil.which(preferred)
        if not found:
            raise ProcessingError(f"VCHAT_FFMPEG_PATH points to {preferred!r}, which is not an executable.")
        return found
    system = shutil.which("ffmpeg")
    if system:
        return system
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class FfmpegRun:
    returncode: int
    stderr: str
    seconds: float


def run_ffmpeg(args: list[str], timeout_s: float, binary: str | None = None) -> FfmpegRun:
    """Run ffmpeg with `args` (no stdin, errors-only log), raising ProcessingError on timeout."""
    import time

    cmd = [ffmpeg_binary(binary), "-hide_banner", "-nostdin", "-v", "error", *args]
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ProcessingError(
            f"ffmpeg did not finish within {timeout_s:.0f} s.",
            "Raise VCHAT_SANITIZE_TIMEOUT_S for very long videos.",
        ) from exc
    return FfmpegRun(proc.returncode, proc.stderr.strip(), time.perf_counter() - started)
