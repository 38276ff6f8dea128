"""Generated test media: clips made by ffmpeg's lavfi sources or encoded frame by frame."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from pathlib import Path

import av
import numpy as np

from core.media.ffmpeg import ffmpeg_binary

BITS = 10  # frame numbers up to 1023 are encoded in the picture
BLOCK = 32


def make_clip(
    path: Path,
    *,
    duration: float = 2.0,
    size: str = "320x240",
    rate: int = 25,
    vcodec: str = "libx264",
    pix_fmt: str = "yuv420p",
    audio: bool = True,
    acodec: str = "aac",
    extra: list[str] | None = None,
) -> Path:
    """A testsrc clip (with a 440 Hz tone unless audio=False), written by ffmpeg."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [ffmpeg_binary(), "-hide_banner", "-v", "error", "-y"]
    cmd += ["-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}:duration={duration}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={duration}"]
        cmd += ["-c:a", acodec]
    cmd += ["-c:v", vcodec, "-pix_fmt", pix_fmt, "-g", str(rate)]
    if vcodec == "libx264":
        cmd += ["-preset", "ultrafast"]
    if vcodec == "libvpx-vp9":
        cmd += ["-deadline", "realtime", "-cpu-used", "8"]
    cmd += [*(extra or []), str(path)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return path


def encode_frame_number(k: int, width: int, height: int) -> np.ndarray:
    """A frame whose top row of blocks spells `k` in binary (white = 1)."""
    image = np.full((height, width, 3), 40, dtype=np.uint8)
    for bit in range(BITS):
        if k >> bit & 1:
            image[:BLOCK, bit * BLOCK : (bit + 1) * BLOCK] = 255
    return image


def read_frame_number(frame: np.ndarray) -> int:
    """Inverse of encode_frame_number, on a frame resized to any size."""
    height, width = frame.shape[:2]
    scale_x, scale_y = width / (BITS * BLOCK + 64), height / 240
    value = 0
    for bit in range(BITS):
        x = int((bit + 0.5) * BLOCK * scale_x)
        y = int(0.5 * BLOCK * scale_y)
        if frame[y, x].mean() > 150:
            value |= 1 << bit
    return value


def encode_frames(
    path: Path,
    images: Iterable[np.ndarray],
    *,
    fps: int = 25,
    pix_fmt: str = "yuv420p",
    container_format: str | None = None,
    options: dict[str, str] | None = None,
    extra_stream: str | None = None,
) -> Path:
    """Encode RGB images as h264 (frame k at pts k), optionally with an extra stream that gets no data."""
    images = iter(images)
    first = next(images)
    height, width = first.shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = options or {"preset": "ultrafast"}
        if extra_stream:
            container.add_stream(extra_stream, rate=48000)
        for k, image in enumerate((first, *images)):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = k
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_numbered_clip(path: Path, frames: int = 250, fps: int = 25, gop: int = 50) -> Path:
    """An h264 mp4 whose frame k shows k in binary, so a sampled frame tells its own index."""
    width, height = BITS * BLOCK + 64, 240
    images = (encode_frame_number(k, width, height) for k in range(frames))
    options = {"crf": "12", "preset": "ultrafast", "g": str(gop), "keyint_min": str(gop)}
    return encode_frames(path, images, fps=fps, options=options)


# --- files of the kinds that break naive pipelines (each kind also has a real-world fixture) -----


def ffmpeg(*args: str) -> None:
    """Run the ffmpeg that vChat uses with `args` (errors only), failing the test on an error."""
    subprocess.run([ffmpeg_binary(), "-hide_banner", "-v", "error", "-y", *args], check=True, timeout=120)


TESTSRC = ("-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=3")
TONE = ("-f", "lavfi", "-i", "sine=frequency=440:duration=3")


def make_kind(path: Path, kind: str) -> Path:
    """A 3 s, 25 fps clip of a troublesome kind, written by ffmpeg or PyAV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    x264 = ("-c:v", "libx264", "-preset", "ultrafast")
    recipes: dict[str, tuple[str, ...]] = {
        # full-range levels: h264 marked yuvj420p, MJPEG (always full range) in AVI, raw MJPEG
        "full-range-h264": (*TESTSRC, *x264, "-pix_fmt", "yuvj420p", "-f", "mp4"),
        "mjpeg-avi": (*TESTSRC, "-c:v", "mjpeg", "-pix_fmt", "yuvj422p", "-f", "avi"),
        "raw-mjpeg": (*TESTSRC, "-c:v", "mjpeg", "-f", "mjpeg"),
        # pixels that are not square: stored 320x240, shown 465x240
        "non-square": (*TESTSRC, "-vf", "setsar=16/11", *x264, "-pix_fmt", "yuv420p", "-f", "mp4"),
        # no duration in the header: raw MPEG-2 video, raw H.264, APNG, Matroska written to a pipe
        "raw-m2v": (*TESTSRC, "-c:v", "mpeg2video", "-f", "mpeg2video"),
        "raw-h264": (*TESTSRC, *x264, "-f", "h264"),
        "apng": (*TESTSRC, "-plays", "0", "-f", "apng"),
        # MPEG program stream (its own seeking rules), Matroska without Cues (written live)
        "mpeg-ps": (*TESTSRC, *TONE, "-c:v", "mpeg2video", "-c:a", "mp2", "-f", "mpeg"),
        "one-frame-mp4": ("-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=0.04", *x264, "-f", "mp4"),
        "one-frame-mkv": ("-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=0.04", *x264, "-f", "matroska"),
        "one-frame-gif": ("-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=0.04", "-f", "gif"),
    }
    if kind in recipes:
        ffmpeg(*recipes[kind], str(path))
    elif kind == "live-mkv":  # a pipe cannot be sought back: no Cues, no Duration
        with open(path, "wb") as out:
            subprocess.run(
                [ffmpeg_binary(), "-v", "error", *TESTSRC, *TONE, *x264, "-c:a", "aac", "-f", "matroska", "pipe:1"],
                stdout=out,
                check=True,
                timeout=120,
            )
    elif kind == "ten-hour-gap-mkv":  # 957 KB of frames, 10 hours of timestamps
        with open(path, "wb") as out:
            subprocess.run(
                [
                    ffmpeg_binary(),
                    "-v",
                    "error",
                    *TESTSRC,
                    "-vf",
                    "setpts=if(gte(N\\,50)\\,PTS+36000/TB\\,PTS)",
                    *x264,
                    "-fps_mode",
                    "passthrough",
                    "-f",
                    "matroska",
                    "pipe:1",
                ],
                stdout=out,
                check=True,
                timeout=120,
            )
    elif kind == "joined-ts":  # two TS files joined byte for byte: the timestamps start again
        first, second = path.with_suffix(".a.ts"), path.with_suffix(".b.ts")
        for part in (first, second):
            ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=1.5", *x264, "-f", "mpegts", str(part))
        path.write_bytes(first.read_bytes() + second.read_bytes())
        first.unlink()
        second.unlink()
    elif kind == "ts-empty-audio":  # an AAC stream declared in the TS but never given a sample
        write_ts_with_empty_audio(path)
    else:
        raise ValueError(kind)
    return path


def write_ts_with_empty_audio(path: Path, frames: int = 75) -> Path:
    images = (np.full((240, 320, 3), k * 3 % 255, np.uint8) for k in range(frames))
    return encode_frames(path, images, container_format="mpegts", extra_stream="aac")


def write_levels_clip(path: Path, pix_fmt: str = "yuvj420p", frames: int = 25) -> Path:
    """An h264 clip whose left half is black and right half white, in `pix_fmt` (yuvj420p: full range)."""
    image = np.zeros((240, 320, 3), np.uint8)
    image[:, 160:] = 255
    return encode_frames(path, (image for _ in range(frames)), pix_fmt=pix_fmt, container_format="mp4")


def ffmpeg_frame_count(path: Path) -> int:
    """How many frames ffmpeg itself decodes from `path`: the truth a sanitized file is held to."""
    result = subprocess.run(
        [ffmpeg_binary(), "-hide_banner", "-nostats", "-i", str(path), "-map", "0:v:0", "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    counts = [int(n) for n in re.findall(r"frame=\s*(\d+)", result.stderr)]
    return counts[-1]
