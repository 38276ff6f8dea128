"""How a video reaches Gemini: inline bytes, the Files API, or a public YouTube URL.

Small files go inline (one request, nothing left at Google). Larger ones are uploaded,
polled until ACTIVE, and deleted after use unless VCHAT_GEMINI_KEEP_UPLOADS is set, in
which case the upload is remembered by sha256 and reused while Google still has it.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from core.media.storage import atomic_write_json, read_json
from core.models.gemini.client import CallRecord, GeminiClient, GeminiError, GeminiInputError

VideoPath = Literal["inline", "upload", "youtube"]
YOUTUBE_HOSTS = {"youtube.com", "www.youtube.com", "m.youtube.com", "youtu.be", "music.youtube.com"}
UPLOAD_LIFETIME = timedelta(hours=47)  # Google keeps uploads 48 h


@dataclass
class VideoInput:
    """The part to put in `contents`, and which way the video went."""

    part: Any
    path_taken: VideoPath
    file_name: str | None = None  # files/... when uploaded
    reused_upload: bool = False


def is_youtube_url(url: str) -> bool:
    parts = urlsplit(url.strip())
    return parts.scheme in ("http", "https") and (parts.hostname or "").lower() in YOUTUBE_HOSTS


def _video_metadata(fps: float | None, start_s: float | None, end_s: float | None) -> Any:
    from google.genai import types

    if fps is None and start_s is None and end_s is None:
        return None
    return types.VideoMetadata(
        fps=fps,
        start_offset=f"{start_s:.3f}s" if start_s is not None else None,
        end_offset=f"{end_s:.3f}s" if end_s is not None else None,
    )


def youtube_input(url: str, fps: float | None = None) -> VideoInput:
    """A public YouTube video passed by URL: Gemini fetches it, nothing is downloaded here."""
    from google.genai import types

    if not is_youtube_url(url):
        raise GeminiInputError(f"'{url}' is not a YouTube URL.", "Only public YouTube videos can be passed by URL.")
    part = types.Part(file_data=types.FileData(file_uri=url), video_metadata=_video_metadata(fps, None, None))
    return VideoInput(part=part, path_taken="youtube")


class _UploadRegistry:
    """Uploads kept for reuse, by the video's sha256 (only with gemini_keep_uploads)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def get(self, sha256: str) -> str | None:
        entry = (read_json(self.path) or {}).get(sha256)
        if not entry or datetime.fromisoformat(entry["expires"]) <= datetime.now(UTC):
            return None
        return str(entry["name"])

    def put(self, sha256: str, name: str) -> None:
        entries = read_json(self.path) or {}
        entries[sha256] = {"name": name, "expires": (datetime.now(UTC) + UPLOAD_LIFETIME).isoformat()}
        atomic_write_json(self.path, entries)

    def forget(self, sha256: str) -> None:
        entries = read_json(self.path) or {}
        if entries.pop(sha256, None) is not None:
            atomic_write_json(self.path, entries)


def _wait_active(client: GeminiClient, file: Any, record: CallRecord) -> Any:
    """Poll files.get until the upload is ACTIVE; FAILED and the deadline are errors."""
    deadline = time.monotonic() + client.settings.gemini_max_wait_s
    while True:
        state = str(getattr(file.state, "value", file.state) or "")
        if state == "ACTIVE":
            return file
        if state == "FAILED":
            reason = getattr(getattr(file, "error", None), "message", None) or "no reason given"
            raise GeminiError(
                f"Gemini could not process the uploaded video ({reason}).",
                "Check that the clip plays; a re-encoded copy (the sanitized mp4) usually works.",
            )
        if time.monotonic() >= deadline:
            raise GeminiError(
                f"Gemini was still processing the upload after {client.settings.gemini_max_wait_s:g} s.",
                "Try again later, or raise VCHAT_GEMINI_MAX_WAIT_S.",
            )
        time.sleep(client.settings.gemini_poll_s)
        file = client.call("checking the upload", functools.partial(client.sdk.files.get, name=file.name), record)


def _delete(client: GeminiClient, name: str) -> None:
    with contextlib.suppress(Exception):  # best effort: Google deletes it after 48 h anyway
        client.sdk.files.delete(name=name)


@contextlib.contextmanager
def file_input(
    client: GeminiClient,
    path: Path,
    sha256: str,
    records: list[CallRecord],
    fps: float | None = None,
    clip: tuple[float, float] | None = None,
) -> Iterator[VideoInput]:
    """The video at `path` as a part: inline under the size threshold, else uploaded (and cleaned up)."""
    from google.genai import types

    metadata = _video_metadata(fps, *(clip or (None, None)))
    size = path.stat().st_size
    if size <= client.settings.gemini_inline_max_mb * 1024 * 1024:
        blob = types.Blob(data=path.read_bytes(), mime_type="video/mp4")
        part = types.Part(inline_data=blob, video_metadata=metadata)
        yield VideoInput(part=part, path_taken="inline")
        return

    keep = client.settings.gemini_keep_uploads
    registry = _UploadRegistry(client.settings.data_dir / "gemini_uploads.json")
    file = None
    reused = False
    if keep and (name := registry.get(sha256)):
        record = CallRecord(what="reusing the upload")
        records.append(record)
        try:
            found = client.call("reusing the upload", lambda: client.sdk.files.get(name=name), record)
            file = _wait_active(client, found, record)
            reused = True
        except (GeminiError, GeminiInputError):
            registry.forget(sha256)
            file = None
    if file is None:
        record = CallRecord(what="uploading the video")
        records.append(record)
        config = types.UploadFileConfig(mime_type="video/mp4", display_name=f"vchat-{sha256[:12]}")
        file = client.call("uploading the video", lambda: client.sdk.files.upload(file=path, config=config), record)
        try:
            file = _wait_active(client, file, record)
        except BaseException:
            _delete(client, file.name)
            raise
        if keep:
            registry.put(sha256, file.name)
    part = types.Part(file_data=types.FileData(file_uri=file.uri, mime_type="video/mp4"), video_metadata=metadata)
    try:
        yield VideoInput(part=part, path_taken="upload", file_name=file.name, reused_upload=reused)
    finally:
        if not keep:
            _delete(client, file.name)
