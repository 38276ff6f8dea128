"""Sanitize: a playable h264/yuv420p/aac mp4 with faststart, even dimensions, square pixels,
limited-range levels, capped resolution and duration, and no metadata, made by ffmpeg under a
timeout, with the demuxer the probe chose and the `file` protocol only. When the input already
fits, the streams are copied (remux), which is far faster than a re-encode; the result says
which stream was copied and which re-encoded, why, and how long it took.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from core.config import Settings
from core.errors import MediaError, ProcessingError
from core.media.ffmpeg import run_ffmpeg
from core.media.probe import ProbeInfo, probe
from core.media.scratch import scratch_dir
from core.media.sniff import ffmpeg_input
from core.media.storage import settings_key
from core.progress import ProgressFn

SANITIZE_VERSION = 2  # bump when the ffmpeg recipe changes, so cached outputs are redone
_COPYABLE_AUDIO = {"aac"}
DURATION_SLACK_S = 1.0  # the sanitized file may exceed the duration cap by a frame or an audio packet
PathTaken = Literal["remux", "reencode", "audio-reencode"]


class SanitizePlan(BaseModel):
    video: Literal["copy", "encode"]
    audio: Literal["copy", "encode", "silent"]
    width: int
    height: int
    trim_to_s: float | None = None
    reasons: list[str] = Field(default_factory=list)

    @property
    def path_taken(self) -> PathTaken:
        """remux: both streams copied; audio-reencode: the video copied bit-exact, the audio converted
        (or a silent track added); reencode: the video re-encoded."""
        if self.video == "encode":
            return "reencode"
        return "remux" if self.audio == "copy" else "audio-reencode"


class SanitizeResult(BaseModel):
    path: str
    path_taken: PathTaken
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
    shown_width, shown_height = info.display_width or info.width, info.display_height or info.height
    if abs(info.rotation) % 180 == 90:  # ffmpeg turns the picture upright before it scales
        shown_width, shown_height = shown_height, shown_width
    width, height = target_size(shown_width, shown_height, settings.sanitize_max_side)
    if info.raw_stream:
        reasons.append(f"a raw {info.video_codec} stream has no container timestamps (frames are re-timed)")
    if info.timestamp_resets:
        reasons.append(f"timestamps start again {info.timestamp_resets} time(s): frames are re-timed in order")
    if info.video_codec != "h264":
        reasons.append(f"video codec is {info.video_codec}, not h264")
    if info.full_range:
        reasons.append(f"full-range levels ({info.pix_fmt}) are converted to limited range")
    elif info.pix_fmt != "yuv420p":
        reasons.append(f"pixel format is {info.pix_fmt}, not yuv420p")
    if info.sample_aspect_ratio:
        reasons.append(
            f"non-square pixels (aspect {info.sample_aspect_ratio}): scaled to the display size "
            f"{info.display_width}x{info.display_height}"
        )
    if (width, height) != (shown_width, shown_height):
        if max(shown_width, shown_height) > settings.sanitize_max_side:
            reasons.append(f"{shown_width}x{shown_height} is above the {settings.sanitize_max_side} px cap")
        else:
            reasons.append(f"{shown_width}x{shown_height} has an odd dimension")
    if info.rotation:
        reasons.append(f"rotated {info.rotation} degrees by metadata (frames are turned upright)")
    video: Literal["copy", "encode"] = "encode" if reasons else "copy"
    if not info.has_audio:
        audio: Literal["copy", "encode", "silent"] = "silent"
        reasons.append("no audio track (a silent AAC track is added)")
    elif info.audio_codec not in _COPYABLE_AUDIO or (info.audio_channels or 0) > 2:
        audio = "encode"
        reasons.append(f"audio is {info.audio_codec} with {info.audio_channels} channels, not AAC stereo")
    else:
        audio = "copy"
    cap = settings.effective_sanitize_max_duration_s
    trim = cap if info.content_duration_s > cap else None
    if trim:
        reasons.append(f"duration {info.content_duration_s:.1f} s is cut to the {cap:g} s cap")
    return SanitizePlan(video=video, audio=audio, width=width, height=height, trim_to_s=trim, reasons=reasons)


def ffmpeg_args(source: Path, info: ProbeInfo, target: Path, plan: SanitizePlan, settings: Settings) -> list[str]:
    """The ffmpeg command line (after the binary) that carries out `plan`: the input read with the
    demuxer the probe chose, the probe's video and audio streams mapped by index."""
    args = ffmpeg_input(source, info.demuxer)
    if plan.audio == "silent":
        args += ["-f", "lavfi", "-i", "anullsrc=channel_layout=stereo:sample_rate=48000"]
    audio_map = "1:a:0" if plan.audio == "silent" else f"0:{info.audio_stream}"
    args += ["-map", f"0:{info.video_stream}", "-map", audio_map]
    args += ["-map_metadata", "-1", "-map_chapters", "-1", "-dn", "-sn"]
    if plan.video == "copy":
        args += ["-c:v", "copy"]
    else:
        levels = "in_range=full:out_range=limited" if info.full_range else "out_range=limited"
        filters = f"scale={plan.width}:{plan.height}:flags=bicubic:{levels},setsar=1,format=yuv420p"
        if info.timestamp_resets and info.fps:  # one frame after the other, at the stream's rate
            filters = f"setpts=N/({info.fps:.6f}*TB)," + filters
        args += ["-vf", filters, "-c:v", "libx264", "-preset", settings.sanitize_preset]
        args += ["-crf", str(settings.sanitize_crf), "-pix_fmt", "yuv420p", "-color_range", "tv"]
        args += ["-fps_mode", "vfr"]
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


def _check_output(info: ProbeInfo, cap_s: float) -> None:
    problems = []
    if info.video_codec != "h264" or info.pix_fmt != "yuv420p" or info.full_range:
        problems.append(f"video is {info.video_codec}/{info.pix_fmt}" + (" full range" if info.full_range else ""))
    if info.width % 2 or info.height % 2:
        problems.append(f"odd size {info.width}x{info.height}")
    if info.sample_aspect_ratio:
        problems.append(f"non-square pixels ({info.sample_aspect_ratio})")
    if info.audio_codec != "aac":
        problems.append(f"audio is {info.audio_codec}")
    if problems:
        raise ProcessingError(f"Sanitizing produced an unexpected file ({', '.join(problems)}).")
    if info.content_duration_s > cap_s + DURATION_SLACK_S:
        raise MediaError(
            f"The converted video lasts {info.content_duration_s:.0f} s, above the {cap_s:g} s limit.",
            "The file's timestamps are inconsistent; re-encode it yourself, or raise VCHAT_SANITIZE_MAX_DURATION_S.",
        )


def sanitize(
    source: Path,
    info: ProbeInfo,
    target: Path,
    settings: Settings,
    name: str | None = None,
    progress: ProgressFn | None = None,
) -> SanitizeResult:
    """Write the sanitized mp4 of `source` to `target` (atomically) and describe it. ffmpeg writes
    into a scratch folder of its own, so a kill leaves nothing beside `target`."""
    name = name or source.name
    plan = plan_sanitize(info, settings)
    expected_s = min(info.content_duration_s, plan.trim_to_s or info.content_duration_s)
    started = time.perf_counter()

    def on_output(seconds: float) -> None:
        if progress is not None:
            fraction = min(seconds / expected_s, 1.0) if expected_s > 0 else None
            written = f"{seconds:.0f} of {expected_s:.0f} s written ({time.perf_counter() - started:.0f} s)"
            progress("sanitize", written, fraction)

    target.parent.mkdir(parents=True, exist_ok=True)
    with scratch_dir(settings.tmp_dir, "sanitize") as scratch:
        staging = scratch / "sanitized.mp4"
        run = run_ffmpeg(
            ffmpeg_args(source, info, staging, plan, settings),
            settings.sanitize_timeout_s,
            settings.ffmpeg_path,
            on_progress=on_output if progress is not None else None,
        )
        if run.returncode != 0 or not staging.exists() or staging.stat().st_size == 0:
            detail = run.stderr.splitlines()[-1] if run.stderr else f"exit code {run.returncode}"
            raise MediaError(f"'{name}' could not be converted to a playable mp4: {detail[:300]}")
        if progress is not None:  # ffmpeg's last report comes a little before its end
            on_output(expected_s)
        out_info = probe(staging, settings)
        _check_output(out_info, settings.effective_sanitize_max_duration_s)
        os.replace(staging, target)
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
