"""What a file is, decided from its bytes: real media in, playlists and other references out.

FFmpeg's demuxer probing follows references: an HLS playlist (or a DASH manifest, a concat
list, an SDP description...) names other files or URLs, and FFmpeg opens them, so a text
file whose "segment" is `file:///etc/...` would be read back frame for frame. vChat
therefore
- refuses text files that are reference formats, with a message that says which one,
- lets FFmpeg pick a demuxer only from MEDIA_DEMUXERS (self-contained media containers and
  raw elementary streams), with the `file` protocol only, and
- opens the file again, for decoding and for ffmpeg's command line, with the demuxer it
  picked the first time (never a fresh probe).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import MediaError

if TYPE_CHECKING:
    import av

# Demuxers that read one self-contained file (FFmpeg short names). Anything else (hls, dash,
# concat, sdp, rtsp, image2 patterns, tee, subfile, ...) is refused before read_header runs.
MEDIA_DEMUXERS: tuple[str, ...] = (
    "mov",  # mp4, m4v, mov, 3gp, 3g2, mj2, avif (drefs to other files are off by default)
    "mp4",
    "3gp",
    "matroska",  # mkv, webm
    "webm",
    "avi",
    "mpegts",
    "mpeg",  # MPEG program stream (.mpg, .vob)
    "mpegvideo",  # raw MPEG-1/2 video
    "m4v",  # raw MPEG-4 part 2 video
    "h261",
    "h263",
    "h264",
    "hevc",
    "vc1",
    "ivf",  # raw VP8/VP9/AV1 in IVF
    "obu",  # raw AV1
    "mjpeg",
    "jpeg_pipe",  # concatenated JPEGs (raw MJPEG)
    "mpjpeg",
    "flv",
    "asf",  # wmv
    "ogg",  # ogv
    "gif",
    "apng",
    "rm",
    "dv",
    "nut",
    "mxf",
    "yuv4mpegpipe",
    "wtv",
    # audio-only formats: no picture, so the probe refuses them with its own message, but yt-dlp's
    # ffmpeg must read them to merge a separately downloaded audio stream
    "aac",
    "mp3",
    "wav",
    "flac",
)

PROTOCOLS = "file"  # no http, crypto, data, hls, subfile, concat nesting: the one local file
SNIFF_BYTES = 64 * 1024

# (what it is, a test on the first bytes decoded as Latin-1, lowercased, BOM and blanks stripped)
_REFERENCE_FORMATS: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("an HLS/M3U playlist", lambda head: head.startswith("#extm3u") or "#ext-x-" in head),
    ("a DASH manifest (MPD)", lambda head: "<mpd" in head[:4096]),
    (
        "an FFmpeg concat list",
        lambda head: head.startswith("ffconcat") or re.search(r"(?m)^\s*file\s+'", head) is not None,
    ),
    ("an SDP session description", lambda head: re.match(r"v=0\s*\n", head) is not None and "\nm=" in head),
    ("a PLS playlist", lambda head: head.startswith("[playlist]")),
    ("an ASX/SMIL/XSPF playlist", lambda head: any(tag in head[:4096] for tag in ("<asx", "<smil", "<playlist"))),
    ("a list of media links", lambda head: _text_with_links(head)),
)


def _text_with_links(head: str) -> bool:
    """A short text file whose lines are mostly URLs or absolute paths (an M3U without its header)."""
    lines = [line.strip() for line in head.splitlines() if line.strip()]
    if not lines or any(ord(c) < 9 for c in head[:4096]):
        return False
    links = [line for line in lines if re.match(r"^([a-z][a-z0-9+.-]*://|/)", line)]
    return len(links) >= max(1, len(lines) // 2)


def reference_format(path: Path) -> str | None:
    """What reference format the file is (e.g. "an HLS/M3U playlist"), or None."""
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    text = head.decode("latin-1").lstrip().lower()
    if not text or _binary(head):  # media, not text (the demuxer whitelist is the real boundary)
        return None
    for what, test in _REFERENCE_FORMATS:
        if test(text):
            return what
    return None


def _binary(head: bytes) -> bool:
    """True when the bytes look like binary media rather than text."""
    sample = head[:4096]
    controls = sum(1 for b in sample if b < 9 or 13 < b < 32)
    return controls > len(sample) // 100


def refuse_references(path: Path, name: str) -> None:
    """MediaError when the file is a playlist or another format that points at other files."""
    what = reference_format(path)
    if what:
        raise MediaError(
            f"'{name}' is {what}, not a video: it lists other files or links, and vChat reads only "
            "the file it is given.",
            "Give the video file itself, or its page's URL.",
        )


def demuxer_name(container: av.container.InputContainer) -> str:
    """The short name of the demuxer FFmpeg picked (e.g. "mov" for "mov,mp4,m4a,3gp,3g2,mj2")."""
    return container.format.name.split(",")[0]


def open_media(path: Path, demuxer: str | None = None) -> av.container.InputContainer:
    """Open `path` for reading with the `file` protocol only and a demuxer from MEDIA_DEMUXERS:
    `demuxer` when given (no probing), else the one FFmpeg's probe picks among them."""
    if demuxer is not None and demuxer not in MEDIA_DEMUXERS:
        raise MediaError(f"The '{demuxer}' format is not accepted as video.")
    import av

    options = {"protocol_whitelist": PROTOCOLS, "format_whitelist": ",".join(MEDIA_DEMUXERS)}
    return av.open(str(path), mode="r", format=demuxer, options=options, metadata_errors="ignore")


def ffmpeg_input(path: Path, demuxer: str) -> list[str]:
    """ffmpeg's arguments for reading `path` as `open_media` does: the same demuxer, no probing."""
    if demuxer not in MEDIA_DEMUXERS:
        raise MediaError(f"The '{demuxer}' format is not accepted as video.")
    return [
        "-protocol_whitelist",
        PROTOCOLS,
        "-format_whitelist",
        ",".join(MEDIA_DEMUXERS),
        "-f",
        demuxer,
        "-i",
        str(path),
    ]
