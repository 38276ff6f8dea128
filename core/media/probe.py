"""Probe: what is in a media file, and whether it is a video vChat can use.

The file is opened as `core.media.sniff` allows (real media demuxers only, the `file`
protocol only), then read once from end to end without decoding (every packet of the video
and audio streams): that gives the length the content really has, whatever the header says
(raw MPEG streams, APNG and live-written Matroska have none, some ASF headers lie), which
audio stream holds samples, and the packets after the last keyframe. The first frame and
that last stretch are decoded: a file whose start or end cannot be decoded is refused,
without relying on seeking (a complete Matroska file without a Cues index, or an MPEG
program stream, cannot seek and is not truncated for that).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
from pydantic import BaseModel, Field

from core.config import Settings
from core.errors import MediaError
from core.media.sniff import demuxer_name, open_media, refuse_references

PROBE_VERSION = 3  # bump when ProbeInfo changes meaning: stored probes of older versions are redone
# Demuxers of raw elementary streams: no container timestamps, so frames are re-timed on sanitize.
RAW_DEMUXERS = frozenset({"h261", "h263", "h264", "hevc", "mpegvideo", "m4v", "vc1", "mjpeg", "jpeg_pipe", "obu"})
TAIL_MAX_BYTES = 64 * 1024 * 1024  # packets kept from the last keyframe, to decode the end
DURATION_DISAGREEMENT = 0.1  # header vs packets: noted above this share (and 1 s)
MAX_SAR = 10.0


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
    packets: int | None = None  # packets with data, counted by reading the file


class ProbeInfo(BaseModel):
    path: str
    size_bytes: int
    container: str  # FFmpeg's name of the format, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    demuxer: str = ""  # the demuxer that read it, used again for every later read (e.g. "mov")
    duration_s: float  # the video's length, measured from its packets (the header's value only when there are none)
    content_duration_s: float = 0.0  # the longest stream (video or audio): what duration limits apply to
    header_duration_s: float | None = None
    duration_source: Literal["packets", "header"] = "packets"
    bit_rate: int | None = None
    streams: list[StreamInfo]
    # Facts about the video stream used (the first that is not a cover picture) and the audio.
    video_stream: int = 0
    video_codec: str
    width: int
    height: int
    pix_fmt: str | None
    full_range: bool = False  # full-range (JPEG) levels: yuvj*, or flagged so
    sample_aspect_ratio: str | None = None  # "12:11" when pixels are not square
    display_width: int = 0  # the picture as it is meant to be shown (square pixels)
    display_height: int = 0
    fps: float | None
    video_frames: int = 0  # video packets with data
    raw_stream: bool = False  # an elementary stream without container timestamps
    timestamp_resets: int = 0  # the video's timestamps jump back this often: its frames are re-timed
    rotation: int = 0
    audio_stream: int | None = None  # the audio stream used: the first that holds samples
    has_audio: bool
    audio_codec: str | None = None
    audio_channels: int | None = None
    notes: list[str] = Field(default_factory=list)


def _rate(value: object) -> float | None:
    try:
        rate = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return rate if math.isfinite(rate) and rate > 0 else None


def _stream_info(stream: av.stream.Stream, packets: int | None) -> StreamInfo:
    ctx = stream.codec_context
    info = StreamInfo(
        index=stream.index,
        kind=stream.type,
        codec=ctx.name if ctx is not None else None,
        profile=getattr(ctx, "profile", None),
        bit_rate=getattr(ctx, "bit_rate", None) or None,
        frames=stream.frames or None,
        packets=packets,
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
        return open_media(path)
    except (av.error.InvalidDataError, av.error.ArgumentError) as exc:
        # ArgumentError (EINVAL): FFmpeg recognised a format that is not on the media whitelist
        # (an image, an audio-only format, a reference format the sniff did not name).
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


def _index_past_end(stream: av.video.stream.VideoStream, size: int) -> bool:
    """True when the container's index points at bytes beyond the end of the file."""
    try:
        entries = stream.index_entries
        return any(entry.pos + entry.size > size for entry in entries if entry.pos >= 0)
    except (AttributeError, av.error.FFmpegError):
        return False


@dataclass
class _Span:
    """Packets of one stream: how many, and the time they cover (in the stream's ticks)."""

    packets: int = 0
    first_pts: int | None = None
    end_pts: int | None = None  # the largest pts + duration seen
    without_pts: int = 0
    duration_ticks: int = 0  # the last non-zero packet duration
    resets: int = 0  # times the decode timestamps jump back (files joined without re-timing)
    last_dts: int | None = None

    def add(self, packet: av.Packet) -> None:
        self.packets += 1
        if packet.duration:
            self.duration_ticks = int(packet.duration)
        dts = packet.dts if packet.dts is not None else packet.pts
        if dts is not None:
            if self.last_dts is not None and dts < self.last_dts - max(self.duration_ticks, 1):
                self.resets += 1
            self.last_dts = int(dts)
        if packet.pts is None:
            self.without_pts += 1
            return
        pts = int(packet.pts)
        end = pts + int(packet.duration or 0)
        self.first_pts = pts if self.first_pts is None else min(self.first_pts, pts)
        self.end_pts = end if self.end_pts is None else max(self.end_pts, end)

    def seconds(self, time_base: Fraction | None, frame_s: float | None) -> float:
        """The time the packets cover; by counting them when they carry no timestamps."""
        step = float(self.duration_ticks * time_base) if time_base and self.duration_ticks else frame_s or 0.0
        if self.first_pts is None or self.end_pts is None or time_base is None or self.resets:
            return self.packets * step
        span = float((self.end_pts - self.first_pts) * time_base)
        if self.packets and not self.duration_ticks:  # no durations: the last packet lasts one step
            span += step
        return max(span, 0.0)


@dataclass
class _Scan:
    video: _Span = field(default_factory=_Span)
    audio: dict[int, _Span] = field(default_factory=dict)
    keyframes: int = 0
    tail: list[av.Packet] = field(default_factory=list)  # from the last keyframe
    tail_bytes: int = 0
    tail_complete: bool = True  # False when the last keyframe's stretch was too large to keep
    first_frame: av.VideoFrame | None = None
    decode_errors: int = 0
    demux_error: str | None = None


def _decode(ctx: av.CodecContext, packet: av.Packet | None, scan: _Scan) -> list[av.VideoFrame]:
    try:
        return list(ctx.decode(packet))
    except av.error.FFmpegError:
        scan.decode_errors += 1
        return []


def _scan(container: av.container.InputContainer, video: av.video.stream.VideoStream) -> _Scan:
    """Read every video and audio packet once; decode the first frame on the way."""
    scan = _Scan(audio={stream.index: _Span() for stream in container.streams.audio})
    ctx = video.codec_context
    try:
        for packet in container.demux(video, *container.streams.audio):
            if not packet.size:
                continue
            if packet.stream.index != video.index:
                scan.audio[packet.stream.index].add(packet)
                continue
            scan.video.add(packet)
            if packet.is_keyframe:
                scan.keyframes += 1
                scan.tail, scan.tail_bytes, scan.tail_complete = [], 0, True
            scan.tail.append(packet)
            scan.tail_bytes += packet.size
            while scan.tail_bytes > TAIL_MAX_BYTES and len(scan.tail) > 1:
                scan.tail_bytes -= scan.tail.pop(0).size
                scan.tail_complete = False
            if scan.first_frame is None:
                frames = _decode(ctx, packet, scan)
                scan.first_frame = frames[0] if frames else None
    except av.error.FFmpegError as exc:
        scan.demux_error = str(exc.strerror or exc)
    if scan.first_frame is None:  # a decoder with delay gives its first frame when drained
        frames = _decode(ctx, None, scan)
        scan.first_frame = frames[0] if frames else None
    return scan


def _end_decodes(video: av.video.stream.VideoStream, scan: _Scan) -> bool:
    """True when the stretch from the last keyframe to the end gives at least one frame."""
    ctx = video.codec_context
    with contextlib.suppress(AttributeError, av.error.FFmpegError):
        ctx.flush_buffers()
    produced = 0
    for packet in scan.tail:
        produced += len(_decode(ctx, packet, scan))
    produced += len(_decode(ctx, None, scan))
    return produced > 0


def _sar(video: av.video.stream.VideoStream) -> Fraction | None:
    for value in (video.sample_aspect_ratio, video.codec_context.sample_aspect_ratio):
        try:
            sar = Fraction(value) if value is not None else None
        except (TypeError, ValueError, ZeroDivisionError):
            sar = None
        if sar and sar > 0:
            return sar
    return None


def _display_size(width: int, height: int, sar: Fraction | None) -> tuple[int, int]:
    """The size at which the picture is meant to be shown, with square pixels."""
    if not sar or sar == 1:
        return width, height
    if sar > 1:
        return round(width * sar), height
    return width, round(height / sar)


def probe(path: Path, settings: Settings, name: str | None = None) -> ProbeInfo:
    """Describe `path` and validate that it is a usable video, else raise MediaError.

    `name` is how the file is called in messages (the user's file name or URL)."""
    name = name or path.name
    size = path.stat().st_size
    if size == 0:
        raise MediaError(f"'{name}' is empty (0 bytes).", "The download or upload did not complete; try again.")
    refuse_references(path, name)
    container = _open(path, name)
    try:
        return _describe(container, path, size, name, settings)
    finally:
        container.close()


def _describe(
    container: av.container.InputContainer, path: Path, size: int, name: str, settings: Settings
) -> ProbeInfo:
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
    if short < settings.min_video_side or long > settings.max_video_side or long / short > settings.max_aspect_ratio:
        raise MediaError(
            f"'{name}' has absurd dimensions ({width}x{height}).",
            f"vChat accepts {settings.min_video_side} to {settings.max_video_side} pixels a side "
            f"and an aspect ratio up to {settings.max_aspect_ratio:g}:1.",
        )
    if _index_past_end(video, size):
        raise MediaError(
            f"'{name}' is truncated: its index lists frames past the end of the file.",
            "Download the video again, completely.",
        )
    notes: list[str] = []
    scan = _scan(container, video)
    if scan.first_frame is None:
        raise MediaError(
            f"'{name}' contains no decodable video frames.",
            "It may be a stream's initialisation segment or an incomplete download.",
        )
    if scan.tail_complete and not _end_decodes(video, scan):
        raise MediaError(
            f"'{name}' is truncated: the frames at its end cannot be decoded.",
            "Download the video again, completely.",
        )
    if not scan.tail_complete:
        notes.append("the last keyframe is too far from the end to check that the end decodes")
    if scan.demux_error:
        notes.append(f"reading stopped early ({scan.demux_error[:120]}); the part before it is used")
    if scan.decode_errors:
        notes.append(f"{scan.decode_errors} decoding error(s) in the parts checked")
    if scan.video.resets:
        notes.append(
            f"the video's timestamps start again {scan.video.resets} time(s) (parts joined without re-timing); "
            "its frames are counted and re-timed at the stream's rate"
        )

    nominal_fps = _rate(video.average_rate) or _rate(video.guessed_rate)
    frame_s = 1 / nominal_fps if nominal_fps else None
    video_s = scan.video.seconds(video.time_base, frame_s)
    audio = _audio_with_samples(audios, scan, notes)
    audio_s = scan.audio[audio.index].seconds(audio.time_base, None) if audio is not None else 0.0
    measured = max(video_s, audio_s)
    header = container.duration / av.time_base if container.duration else None
    if header is None and video.duration and video.time_base:
        header = float(video.duration * video.time_base)
    duration, source = (video_s or measured, "packets") if measured > 0 else (header or 0.0, "header")
    content = measured if measured > 0 else duration
    if header is not None and measured > 0 and abs(header - measured) > max(1.0, DURATION_DISAGREEMENT * measured):
        notes.append(f"the header says {header:.2f} s but the content lasts {measured:.2f} s (the content counts)")

    sar = _sar(video)
    if sar is not None and not 1 / MAX_SAR <= sar <= MAX_SAR:
        notes.append(f"an implausible pixel aspect ratio ({sar}) was ignored")
        sar = None
    display_width, display_height = _display_size(width, height, sar)
    demuxer = demuxer_name(container)
    fps = nominal_fps
    if scan.video.packets > 1 and video_s > 0:  # the rate the packets show wins over a nominal one that differs
        counted = scan.video.packets / video_s
        if fps is None or abs(counted - fps) > 0.05 * fps:
            fps = counted
    return ProbeInfo(
        path=str(path),
        size_bytes=size,
        container=container.format.name,
        demuxer=demuxer,
        duration_s=round(duration, 6),
        content_duration_s=round(content, 6),
        header_duration_s=round(header, 6) if header is not None else None,
        duration_source=source,
        bit_rate=container.bit_rate or None,
        streams=[_stream_info(s, _packets(s, video, scan)) for s in container.streams],
        video_stream=video.index,
        video_codec=ctx.name,
        width=width,
        height=height,
        pix_fmt=ctx.pix_fmt,
        full_range=_full_range(ctx, scan.first_frame),
        sample_aspect_ratio=f"{sar.numerator}:{sar.denominator}" if sar is not None and sar != 1 else None,
        display_width=display_width,
        display_height=display_height,
        fps=fps,
        video_frames=scan.video.packets,
        raw_stream=demuxer in RAW_DEMUXERS,
        timestamp_resets=scan.video.resets,
        rotation=int(getattr(scan.first_frame, "rotation", 0) or 0),
        audio_stream=audio.index if audio is not None else None,
        has_audio=audio is not None,
        audio_codec=audio.codec_context.name if audio is not None else None,
        audio_channels=audio.codec_context.channels if audio is not None else None,
        notes=notes,
    )


def _packets(stream: av.stream.Stream, video: av.video.stream.VideoStream, scan: _Scan) -> int | None:
    if stream.index == video.index:
        return scan.video.packets
    span = scan.audio.get(stream.index)
    return span.packets if span is not None else None


def _audio_with_samples(
    audios: list[av.audio.stream.AudioStream], scan: _Scan, notes: list[str]
) -> av.audio.stream.AudioStream | None:
    """The first audio stream that has channels and packets; the others are noted."""
    for stream in audios:
        channels = stream.codec_context.channels or 0
        packets = scan.audio[stream.index].packets
        if channels > 0 and packets > 0:
            return stream
        notes.append(f"audio stream #{stream.index} has no samples ({channels} channels, {packets} packets); ignored")
    return None


def _full_range(ctx: av.CodecContext, frame: av.VideoFrame | None) -> bool:
    """Full-range ("JPEG") levels: a yuvj* pixel format, or the range flag set to full."""
    if (ctx.pix_fmt or "").startswith("yuvj"):
        return True
    for value in (getattr(frame, "color_range", None), getattr(ctx, "color_range", None)):
        if value is not None and int(value) == 2:  # AVCOL_RANGE_JPEG
            return True
    return False
