"""Generated test media: clips made by ffmpeg's lavfi sources or encoded frame by frame."""

from __future__ import annotations

import subprocess
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


def make_numbered_clip(path: Path, frames: int = 250, fps: int = 25, gop: int = 50) -> Path:
    """An h264 mp4 whose frame k shows k in binary, so a sampled frame tells its own index."""
    width, height = BITS * BLOCK + 64, 240
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "12", "preset": "ultrafast", "g": str(gop), "keyint_min": str(gop)}
        for k in range(frames):
            frame = av.VideoFrame.from_ndarray(encode_frame_number(k, width, height), format="rgb24")
            frame.pts = k
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
