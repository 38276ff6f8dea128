"""The one decode of the sanitized video: ffmpeg decodes it once and splits the frames two ways,
into freezedetect and blackdetect (full size, findings in its log) and, scaled to the detection
size, into raw BGR frames that Python hands to the cut detectors (core.media.forensics.shots).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from core.config import Settings
from core.errors import MediaError
from core.media.forensics.runner import FramePipe
from core.media.forensics.shots import CutFinder, detection_size
from core.media.forensics.visual import FRAME_FILTERS
from core.media.frames import FrameIndex
from core.media.sniff import ffmpeg_input

SecondsRead = Callable[[float], None]


def scan_sanitized(
    path: Path, index: FrameIndex, settings: Settings, on_read: SecondsRead | None = None
) -> tuple[CutFinder, str]:
    """(the cut finder fed every frame, ffmpeg's log with the frozen and black stretches)."""
    import numpy as np

    width, height = detection_size(index.width, index.height)
    graph = (
        f"[0:v:0]split[full][small];[full]{FRAME_FILTERS},nullsink;"
        f"[small]scale={width}:{height}:flags=fast_bilinear,format=bgr24[out]"
    )
    args = ["-v", "info", "-nostats", *ffmpeg_input(path, "mov"), "-copyts", "-filter_complex", graph]
    args += ["-map", "[out]", "-fps_mode", "passthrough", "-an", "-sn", "-dn", "-f", "rawvideo", "pipe:1"]
    finder = CutFinder(index.fps)
    reported = time.monotonic()
    with FramePipe(args, width * height * 3, settings.sanitize_timeout_s, settings.ffmpeg_path) as pipe:
        for data in pipe.frames():
            finder.add(np.frombuffer(data, np.uint8).reshape(height, width, 3))
            if on_read is not None and time.monotonic() - reported > 0.5:
                reported = time.monotonic()
                on_read(index.seconds(min(finder.frames, index.count) - 1))
    if pipe.returncode != 0 and finder.frames == 0:
        detail = pipe.log.strip().splitlines()[-1] if pipe.log.strip() else f"exit code {pipe.returncode}"
        raise MediaError(f"ffmpeg could not read the sanitized video: {detail[:300]}")
    return finder, pipe.log
