"""Sanitize: a playable h264/yuv420p/aac mp4 with faststart, even dimensions, capped
resolution and duration, and no metadata, made by ffmpeg under a timeout and a protocol
whitelist. When the input already fits, the streams are copied (remux), which is far
faster than a re-encode; the result says which path it took, why, and how long it took.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from core.config import Settings
from core.errors import MediaError, ProcessingError
from core.media.ffmpeg import run_ffmpeg
from core.media.probe import ProbeInfo, probe
from core.media.storage import settings_key

SANITIZE_VERSION = 1  # bump when the ffmpeg recipe changes, so cached outputs are redone
_COPYABLE_AUDIO = {"aac"}


class SanitizePlan(BaseModel):
    video: Literal["copy", "encode"]
    audio: Literal["copy", "encode", "silent"]
    width: int
    height: int
    trim_to_s: float | None = None
    reasons: list[str] = Field(default_factory=list)

    @property
    def path_taken(self) -> Literal["remux", "reencode"]:
        return "remux" if self.video == "copy" and self.audio == "copy" else "reencode"


class SanitizeResult(BaseModel):
    path: str
    path_taken: Literal["remux", "reencode"]
    plan: SanitizePlan
    seconds: float
    warnings: list[str] = Field(default_factory=list)
    probe: ProbeInfo
    settings_key: str
    reused: bool = False


def _even(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def target_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Fit (width, height) within `max_side` keeping the aspect ratio, both even."""
    scale = min(1.0, max_side / max(width, height))
    return _even(width * scale), _even(height * scale)


def plan_sanitize(info: ProbeInfo, settings: Settings) -> SanitizePlan:
    """Decide, from the probe of the original, what must be re-encoded and why."""
    reasons: list[str] = []
    width, height = target_size(info.width, info.height, settings.sanitize_max_side)
    if info.video_codec != "h264":
        reasons.append(f"video codec is {info.video_codec}, not h264")
    if info.pix_fmt != "yuv420p":
        reasons.append(f"pixel format is {info.pix_fmt}, not yuv420p")
    if (width, height) != (info.width, info.height):
        if max(info.width, info.height) > settings.sanitize_max_side:
            reasons.append(f"{info.width}x{info.height} is above the {settings.sanitize_max_side} px cap")
        else:
            reasons.append(f"{info.width}x{info.height} has an odd dimension")
    if info.rotation:
        reasons.append(f"rotated {info.rotation} degrees by metadata (frames are turned upright)")
    video = "encode" if reasons else "copy"
    if not info.has_audio:
        audio = "silent"
        reasons.append("no audio track (a silent AAC track is added)")
    elif info.audio_codec not in _COPYABLE_AUDIO or (info.audio_channels or 0) > 2:
        audio = "encode"
        reasons.append(f"audio is {info.audio_codec} with {info.audio_channels} channels, not AAC stereo")
    else:
        audio = "copy"
    cap = settings.effective_sanitize_max_duration_s
    trim = cap if info.duration_s > cap else None
    if trim:
        reasons.append(f"duration {info.duration_s:.1f} s is cut to the {cap:g} s cap")
    return SanitizePlan(video=video, audio=audio, width=width, height=height, trim_to_s=trim, reasons=reasons)


def ffmpeg_args(source: Path, target: Path, plan: SanitizePlan, settings: Settings) -> list[str]:
    """The ffmpeg command line (after the binary) that carries out `plan`."""
    args = ["-protocol_whitelist", "file,pipe", "-i", str(source)]
    if plan.audio == "silent":
        args += ["-f", "lavfi", "-i", "anullsrc=channel_layout=stereo:sample_rate=48000"]
    args += ["-map", "0:v:0", "-map", "1:a:0" if plan.audio == "silent" else "0:a:0"]
    args += ["-map_metadata", "-1", "-map_chapters", "-1", "-dn", "-sn"]
    if plan.video == "copy":
        args += ["-c:v", "copy"]
    else:
        scale = f"scale={plan.width}:{plan.height}:flags=bicubic,setsar=1,format=yuv420p"
        args += ["-vf", scale, "-c:v", "libx264", "-preset", settings.sanitize_preset]
        args += ["-crf", str(settings.sanitize_crf), "-pix_fmt", "yuv420p", "-fps_mode", "vfr"]
    if plan.audio == "copy":
        args += ["-c:a", "copy"]
    else:
        args += ["-c:a", "aac", "-b:a", "128k", "-ac", "2"]
    if plan.audio == "silent":
        args += ["-shortest"]
    if plan.trim_to_s:
        args += ["-t", f"{plan.trim_to_s:.3f}"]
    args += ["-fflags", "+bitexact", "-movflags", "+faststart", "-f", "mp4", "-y", str(target)]
    return args


def sanitize_key(settings: Settings) -> str:
    return settings_key(
        {
            "version": SANITIZE_VERSION,
            "max_side": settings.sanitize_max_side,
            "max_duration": settings.effective_sanitize_max_duration_s,
            "crf": settings.sanitize_crf,
            "preset": settings.sanitize_preset,
        }
    )


def _check_output(info: ProbeInfo) -> None:
    problems = []
    if info.video_codec != "h264" or info.pix_fmt != "yuv420p":
        problems.append(f"video is {info.video_codec}/{info.pix_fmt}")
    if info.width % 2 or info.height % 2:
        problems.append(f"odd size {info.width}x{info.height}")
    if info.audio_codec != "aac":
        problems.append(f"audio is {info.audio_codec}")
    if problems:
        raise ProcessingError(f"Sanitizing produced an unexpected file ({', '.join(problems)}).")


def sanitize(
    source: Path, info: ProbeInfo, target: Path, settings: Settings, name: str | None = None
) -> SanitizeResult:
    """Write the sanitized mp4 of `source` to `target` (atomically) and describe it."""
    name = name or source.name
    plan = plan_sanitize(info, settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.stem}.{uuid.uuid4().hex}.mp4")
    started = time.perf_counter()
    try:
        run = run_ffmpeg(
            ffmpeg_args(source, staging, plan, settings), settings.sanitize_timeout_s, settings.ffmpeg_path
        )
        if run.returncode != 0 or not staging.exists() or staging.stat().st_size == 0:
            detail = run.stderr.splitlines()[-1] if run.stderr else f"exit code {run.returncode}"
            raise MediaError(f"'{name}' could not be converted to a playable mp4: {detail[:300]}")
        out_info = probe(staging, settings)
        _check_output(out_info)
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)
    out_info.path = str(target)
    warnings = [line[:300] for line in run.stderr.splitlines()[:5]]
    return SanitizeResult(
        path=str(target),
        path_taken=plan.path_taken,
        plan=plan,
        seconds=round(time.perf_counter() - started, 3),
        warnings=warnings,
        probe=out_info,
        settings_key=sanitize_key(settings),
    )
