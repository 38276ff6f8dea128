"""Probe: what is in a media file, and whether it is a video vChat can use.

PyAV (FFmpeg's libraries) reads the container and decodes the first frame and a frame
near the end, so an empty file, text renamed .mp4, a truncated download, an audio-only
file or absurd dimensions stop here with an error that names the problem.
"""

from __future__ import annotations

import math
from pathlib import Path

import av
from pydantic import BaseModel

from core.config import Settings
from core.errors import MediaError


class StreamInfo(BaseModel):
    index: int
    kind: str
    codec: str | None = None
    profile: str | None = None
    width: int | None = None
    height: int | None = None
    pix_fmt: str | None = None
    fps: float | None = None
    frames: int | None = None
    sample_rate: int | None = None
    channels: int | None = None
    bit_rate: int | None = None
    duration_s: float | None = None


class ProbeInfo(BaseModel):
    path: str
    size_bytes: int
    container: str
    duration_s: float
    bit_rate: int | None = None
    streams: list[StreamInfo]
    # Facts about the main (first) video stream and audio presence, for quick use.
    video_codec: str
    width: int
    height: int
    pix_fmt: str | None
    fps: float | None
    rotation: int = 0
    has_audio: bool
    audio_codec: str | None = None
    audio_channels: int | None = None


def _rate(value: object) -> float | None:
    try:
        rate = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return rate if math.isfinite(rate) and rate > 0 else None


def _stream_info(stream: av.stream.Stream) -> StreamInfo:
    ctx = stream.codec_context
    info = StreamInfo(
        index=stream.index,
        kind=stream.type,
        codec=ctx.name if ctx is not None else None,
        profile=getattr(ctx, "profile", None),
        bit_rate=getattr(ctx, "bit_rate", None) or None,
        frames=stream.frames or None,
    )
    if stream.duration is not None and stream.time_base is not None:
        info.duration_s = float(stream.duration * stream.time_base)
    if stream.type == "video":
        info.width, info.height = ctx.width, ctx.height
        info.pix_fmt = ctx.pix_fmt
        info.fps = _rate(stream.average_rate) or _rate(stream.guessed_rate)
    elif stream.type == "audio":
        info.sample_rate = ctx.sample_rate
        info.channels = ctx.channels
    return info


def _open(path: Path, name: str) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except av.error.InvalidDataError as exc:
        if _mp4_without_moov(path):
            raise MediaError(
                f"'{name}' is truncated or incomplete: its MP4 index (the moov atom) is missing.",
                "Download the video again, completely.",
            ) from exc
        raise MediaError(
            f"'{name}' is not a video file: FFmpeg recognises no media format in it.",
            "Check that the link or file is the video itself, not a web page or a document.",
        ) from exc
    except av.error.FFmpegError as exc:
        raise MediaError(f"'{name}' cannot be opened as media: {exc.strerror or exc}.") from exc


def _mp4_without_moov(path: Path) -> bool:
    """True for an ISO-BMFF file (mp4/mov) whose top-level boxes hold no 'moov' index:
    the typical download cut short before the index that ffmpeg writes last."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        offset, seen_ftyp = 0, False
        while offset + 8 <= size:
            fh.seek(offset)
            header = fh.read(16)
            box_size, box_type = int.from_bytes(header[:4], "big"), header[4:8]
            if box_type == b"moov":
                return False
            if offset == 0:
                if box_type != b"ftyp":
                    return False
                seen_ftyp = True
            if box_size == 1 and len(header) == 16:
                box_size = int.from_bytes(header[8:16], "big")
            if box_size < 8:
                break
            offset += box_size
        return seen_ftyp


def _first_frame(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> av.VideoFrame | None:
    try:
        for frame in container.decode(stream):
            return frame
    except av.error.FFmpegError:
        return None
    return None


def _decodes_near(container: av.container.InputContainer, stream: av.video.stream.VideoStream, seconds: float) -> bool:
    """True when a frame can be decoded at or after a keyframe before `seconds`."""
    try:
        container.seek(int(seconds / stream.time_base), stream=stream, backward=True, any_frame=False)
        for _frame in container.decode(stream):
            return True
    except av.error.FFmpegError:
        return False
    return False


def _index_past_end(stream: av.video.stream.VideoStream, size: int) -> bool:
    """True when the container's index points at bytes beyond the end of the file."""
    try:
        entries = stream.index_entries
        return any(entry.pos + entry.size > size for entry in entries if entry.pos >= 0)
    except (AttributeError, av.error.FFmpegError):
        return False


def probe(path: Path, settings: Settings, name: str | None = None) -> ProbeInfo:
    """Describe `path` and validate that it is a usable video, else raise MediaError.

    `name` is how the file is called in messages (the user's file name or URL)."""
    name = name or path.name
    size = path.stat().st_size
    if size == 0:
        raise MediaError(f"'{name}' is empty (0 bytes).", "The download or upload did not complete; try again.")
    container = _open(path, name)
    try:
        streams = [_stream_info(s) for s in container.streams]
        videos = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
        audios = list(container.streams.audio)
        if not videos:
            if audios:
                raise MediaError(
                    f"'{name}' has only audio, no video track.",
                    "vChat analyses videos; give it a file with a picture track.",
                )
            raise MediaError(f"'{name}' has no video track.")
        video = videos[0]
        ctx = video.codec_context
        width, height = ctx.width or 0, ctx.height or 0
        if width == 0 or height == 0:
            raise MediaError(f"'{name}' has a video track with no picture size; it cannot be decoded.")
        short, long = sorted((width, height))
        if (
            short < settings.min_video_side
            or long > settings.max_video_side
            or long / short > settings.max_aspect_ratio
        ):
            raise MediaError(
                f"'{name}' has absurd dimensions ({width}x{height}).",
                f"vChat accepts {settings.min_video_side} to {settings.max_video_side} pixels a side "
                f"and an aspect ratio up to {settings.max_aspect_ratio:g}:1.",
            )
        if container.duration:
            duration = container.duration / av.time_base
        elif video.duration and video.time_base:
            duration = float(video.duration * video.time_base)
        else:
            duration = 0.0
        first = _first_frame(container, video)
        if first is None:
            raise MediaError(
                f"'{name}' contains no decodable video frames.",
                "It may be a stream's initialisation segment or an incomplete download.",
            )
        rotation = int(getattr(first, "rotation", 0) or 0)
        if _index_past_end(video, size) or (duration > 1 and not _decodes_near(container, video, duration * 0.95)):
            raise MediaError(
                f"'{name}' is truncated: its index lists frames past the end of the file.",
                "Download the video again, completely.",
            )
        audio = audios[0] if audios else None
        return ProbeInfo(
            path=str(path),
            size_bytes=size,
            container=container.format.name,
            duration_s=round(duration, 6),
            bit_rate=container.bit_rate or None,
            streams=streams,
            video_codec=ctx.name,
            width=width,
            height=height,
            pix_fmt=ctx.pix_fmt,
            fps=_rate(video.average_rate) or _rate(video.guessed_rate),
            rotation=rotation,
            has_audio=audio is not None,
            audio_codec=audio.codec_context.name if audio else None,
            audio_channels=audio.codec_context.channels if audio else None,
        )
    finally:
        container.close()
