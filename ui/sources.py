"""Where the video comes from: a URL, an upload (streamed to disk by the pipeline), or the media folder."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import streamlit as st

from core.config import Settings
from core.errors import InputError, VChatError
from core.media.fetch import VIDEO_SUFFIXES, url_from_field
from core.models.gemini.video import is_youtube_url
from ui import state
from ui.feedback import md, show_info

VIDEO_TYPES = sorted(VIDEO_SUFFIXES)
MAX_LISTED = 500
KINDS = ("URL", "Upload", "Media folder")

SOURCE_KIND = "source_kind"
SOURCE_URL = "source_url"
SOURCE_UPLOAD = "source_upload"
SOURCE_FILE = "source_file"
GEMINI_READS_URL = "gemini_reads_url"


@dataclass
class SourceInput:
    source: str | BinaryIO
    filename: str | None
    label: str  # what to call it in messages
    gemini_reads_url: bool = False  # Gemini reads a YouTube URL itself: nothing is downloaded
    refused: VChatError | None = None  # what the URL field held is no URL


def media_files(settings: Settings) -> list[str]:
    """Video files under the media dir, as paths relative to it (hidden files and links left out)."""
    root = settings.media_dir
    if not root.is_dir():
        return []
    found: list[str] = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts) or path.is_symlink() or not path.is_file():
            continue
        if path.suffix.lower().lstrip(".") in VIDEO_TYPES:
            found.append(relative.as_posix())
        if len(found) >= MAX_LISTED:
            break
    return found


def source_input(settings: Settings) -> SourceInput | None:
    """Draw the source widgets; return what the user gave (None: nothing yet)."""
    kind = st.radio("Video", KINDS, horizontal=True, key=SOURCE_KIND)
    if kind == "URL":
        url = st.text_input(
            "Video URL", key=SOURCE_URL, placeholder="https://www.youtube.com/watch?v=... or a direct .mp4 link"
        )
        reads_itself = False
        if state.selected_choice(settings).capabilities.reads_urls and is_youtube_url(url):
            reads_itself = st.checkbox(
                "Gemini reads the YouTube video itself (no download)",
                key=GEMINI_READS_URL,
                disabled=not settings.gemini_allow_youtube_urls,
                help="Faster for long videos, but nothing is downloaded here: no provenance, no metadata, no frames. "
                "Only public videos work.",
            )
        if not url.strip():
            return None
        try:
            address = url_from_field(url)
        except VChatError as exc:  # said when Analyze is pressed (see `require`)
            return SourceInput(url.strip(), None, url.strip(), refused=exc)
        return SourceInput(address, None, address, bool(reads_itself))
    if kind == "Upload":
        upload = st.file_uploader(
            "Video file",
            type=VIDEO_TYPES,
            key=SOURCE_UPLOAD,
            max_upload_size=max(1, math.floor(settings.max_download_mb)),
            help=f"Up to {settings.max_download_mb:g} MB; written to disk in chunks, then checked.",
        )
        if upload is None:
            return None
        upload.seek(0)
        return SourceInput(upload, upload.name, upload.name)
    files = media_files(settings)
    if not files:
        show_info(f"No videos in the media folder {settings.media_dir} yet. Copy files there, or use a URL or upload.")
        return None
    chosen = st.selectbox(md("File in {}", settings.media_dir), files, key=SOURCE_FILE)
    return SourceInput(chosen, None, Path(chosen).name) if chosen else None


def require(source: SourceInput | None, question: str | None = None) -> SourceInput:
    """The source given (and the question, when one is needed), or InputError saying what is missing."""
    if source is None:
        raise InputError("No video given.", "Paste a URL, upload a file or pick one from the media folder.")
    if source.refused is not None:
        raise source.refused
    if question is not None and not question.strip():
        raise InputError("The question is empty.", "Type what you want to know about the video.")
    return source
