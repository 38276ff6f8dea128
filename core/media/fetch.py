"""Fetch: turn what the user gave (a URL, an uploaded file object, a local path) into an
original file in the content-addressed store, with where it came from.

URLs go through yt-dlp as a library (YouTube, TikTok, direct files, pages the generic
extractor understands) inside the URL guard, with limits on size and duration checked
before and during the download and verified on the written file. Everything is written
in a scratch folder that is removed whatever happens, so a refusal leaves nothing behind.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import yt_dlp
from yt_dlp.utils import DownloadCancelled

from core.config import Settings
from core.errors import DownloadError, InputError, LimitExceeded, VChatError
from core.media.ffmpeg import ffmpeg_binary
from core.media.provenance import SourceInfo
from core.media.storage import (
    MediaStore,
    atomic_write_json,
    copy_stream_hashing,
    read_json,
    safe_extension,
    settings_key,
    sha256_file,
)
from core.media.urlguard import UrlPolicy, check_url, guarded_connections

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, float | None, str], None]
# mp4 up to 720p in one file first (no merge), then mp4 video + m4a audio, then anything
# up to 720p, then the smallest above. `?` lets formats of unknown height (direct files) pass.
FORMAT_SELECTOR = (
    "b[height<=?720][ext=mp4]/bv*[height<=?720][ext=mp4]+ba[ext=m4a]/b[height<=?720]/bv*[height<=?720]+ba/wv*+ba/w"
)
# Protocols whose every connection goes through yt-dlp's own HTTP stack (and so the guard).
SAFE_PROTOCOLS = {"http", "https", "m3u8_native", "http_dash_segments"}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_URL_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def looks_like_url(source: str) -> bool:
    """True for anything with a URL scheme (so `file:`, `data:` and friends reach the guard)."""
    return "://" in source or (bool(_URL_SCHEME.match(source)) and not Path(source).exists())


def redact_url(url: str) -> str:
    """The URL without user:password@ (never stored or shown)."""
    return re.sub(r"(?<=://)[^/@]*@", "", url)


# --- uploads ---------------------------------------------------------------------------------


def ingest_upload(
    fileobj: BinaryIO, filename: str | None, settings: Settings, store: MediaStore | None = None
) -> tuple[str, Path, SourceInfo]:
    """Stream a file object (a browser upload, stdin) into the store, enforcing the size limit."""
    store = store or MediaStore(settings)
    with store.scratch_dir() as scratch:
        staging = scratch / "upload"
        sha, size = copy_stream_hashing(fileobj, staging, settings.max_download_bytes)
        if size > settings.max_download_bytes:
            raise LimitExceeded(
                f"The upload is larger than the {settings.max_download_mb:g} MB limit.",
                "Trim the video first, or raise VCHAT_MAX_DOWNLOAD_MB.",
            )
        path = store.add_original(staging, sha, safe_extension(filename), move=True)
    name = Path(filename).name if filename else None
    return sha, path, SourceInfo(kind="upload", filename=name, fetched_at=_now())


# --- local paths -----------------------------------------------------------------------------


def resolve_local_path(raw: str | Path, settings: Settings) -> Path:
    """The real path of a file inside the media dir, or InputError (no `..`, no escapes)."""
    media_dir = settings.media_dir.resolve()
    media_roots = (media_dir, settings.media_dir.absolute())
    given = Path(raw).expanduser()
    if ".." in given.parts:
        raise InputError(f"Paths with '..' are refused: {raw}", f"Give a path inside the media folder {media_dir}.")
    candidates = [given] if given.is_absolute() else [media_dir / given, Path.cwd() / given]
    for candidate in candidates:
        if not any(_inside(candidate.absolute(), root) for root in media_roots):
            continue
        if not candidate.exists():
            continue
        real = candidate.resolve()
        if not _inside(real, media_dir):
            raise InputError(
                f"'{raw}' is a link that points outside the media folder; it is refused.",
                f"Copy the file into {media_dir} instead.",
            )
        if not real.is_file():
            raise InputError(f"'{raw}' is not a file.")
        return real
    if given.is_absolute() and not any(_inside(given, root) for root in media_roots):
        raise InputError(
            f"Local files must be inside the media folder {media_dir}; '{raw}' is not.",
            "Copy the file there, set VCHAT_MEDIA_DIR, or upload it.",
        )
    raise InputError(f"No such file in the media folder {media_dir}: '{raw}'.")


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def ingest_local(raw: str | Path, settings: Settings, store: MediaStore | None = None) -> tuple[str, Path, SourceInfo]:
    store = store or MediaStore(settings)
    real = resolve_local_path(raw, settings)
    size = real.stat().st_size
    if size > settings.max_download_bytes:
        raise LimitExceeded(f"'{real.name}' is larger than the {settings.max_download_mb:g} MB limit.")
    sha = sha256_file(real)
    path = store.add_original(real, sha, safe_extension(real.name), move=False)
    return sha, path, SourceInfo(kind="local", filename=real.name, fetched_at=_now())


# --- URLs ------------------------------------------------------------------------------------


class _Refused(DownloadCancelled):
    """Carries a VChatError out of yt-dlp's download loop."""

    def __init__(self, error: VChatError) -> None:
        super().__init__(error.one_line())
        self.error = error


class _QuietLogger:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def debug(self, msg: str) -> None:
        pass

    def info(self, msg: str) -> None:
        pass

    def warning(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    def error(self, msg: str) -> None:
        self.errors.append(_ANSI.sub("", msg))


def url_fetch_key(url: str, settings: Settings) -> str:
    return settings_key(
        {
            "url": url,
            "format": FORMAT_SELECTOR,
            "max_bytes": settings.max_download_bytes,
            "max_duration": settings.max_duration_s,
        }
    )


def _friendly_download_error(message: str, settings: Settings) -> DownloadError:
    text = _ANSI.sub("", message).replace("ERROR: ", "").strip()
    first = text.splitlines()[0] if text else "the download failed"
    low = first.lower()
    if "timed out" in low or "timeout" in low:
        return DownloadError(
            f"The server did not answer within {settings.socket_timeout_s:g} s.",
            "Try again later, or raise VCHAT_SOCKET_TIMEOUT_S.",
        )
    if "unsupported url" in low:
        return DownloadError(
            "No video was found at this URL.", "Paste the link of the video page or of the video file itself."
        )
    if "http error 404" in low:
        return DownloadError("The server answered 404 Not Found for this URL.")
    if "http error 403" in low or "http error 401" in low:
        return DownloadError(
            "The server refused access to this video (login or region lock?).",
            "Download it yourself and upload the file.",
        )
    if "private video" in low or "sign in" in low:
        return DownloadError("This video is private or needs a login.", "Download it yourself and upload the file.")
    first = re.sub(r"^\[[^\]]+\]\s*", "", first)
    return DownloadError(f"The download failed: {first[:300]}")


def fetch_url(
    url: str, settings: Settings, store: MediaStore | None = None, progress: ProgressFn | None = None
) -> tuple[str, Path, SourceInfo, bool]:
    """Download `url` (guarded) into the store. Returns (sha256, path, source, reused)."""
    store = store or MediaStore(settings)
    policy = UrlPolicy.from_settings(settings)
    url = check_url(url, policy)
    key = url_fetch_key(url, settings)
    record = read_json(store.url_record_path(key))
    if record:
        existing = store.original_path(record["sha256"])
        if existing is not None:
            return record["sha256"], existing, SourceInfo(**record["source"]), True

    logger = _QuietLogger()
    started = time.monotonic()
    max_bytes = settings.max_download_bytes

    def on_progress(status: dict[str, Any]) -> None:
        done = status.get("downloaded_bytes") or 0
        total = status.get("total_bytes") or status.get("total_bytes_estimate")
        if done > max_bytes or (total and total > max_bytes * 1.05):
            raise _Refused(
                LimitExceeded(
                    f"The video is larger than the {settings.max_download_mb:g} MB download limit.",
                    "Raise VCHAT_MAX_DOWNLOAD_MB, or download a shorter or smaller version.",
                )
            )
        if time.monotonic() - started > settings.download_timeout_s:
            raise _Refused(
                DownloadError(f"The download took longer than {settings.download_timeout_s:g} s and was stopped.")
            )
        if progress:
            progress("download", done / total if total else None, f"{done / 1e6:.1f} MB")

    with store.scratch_dir() as scratch:
        options: dict[str, Any] = {
            "format": FORMAT_SELECTOR,
            "merge_output_format": "mp4",
            "noplaylist": True,
            "extract_flat": "in_playlist",
            "playlistend": 2,
            "outtmpl": {"default": str(scratch / "download.%(ext)s")},
            "socket_timeout": settings.socket_timeout_s,
            "retries": 1,
            "fragment_retries": 1,
            "extractor_retries": 0,
            "quiet": True,
            "no_warnings": True,
            "noprogress": True,
            "logger": logger,
            "progress_hooks": [on_progress],
            "cachedir": False,
            "ffmpeg_location": ffmpeg_binary(settings.ffmpeg_path),
            "hls_prefer_native": True,
            "restrictfilenames": True,
            "updatetime": False,
            "color": {"stdout": "no_color", "stderr": "no_color"},
        }
        with guarded_connections(policy) as guard:
            try:
                with yt_dlp.YoutubeDL(options) as ydl:
                    info = ydl.extract_info(url, download=False)
                    info = _single_video(info, ydl)
                    _check_info_limits(info, settings)
                    _check_protocols(info)
                    info = ydl.process_ie_result(info, download=True)
            except _Refused as refused:
                raise refused.error from None
            except yt_dlp.utils.DownloadError as exc:
                if guard.refusal is not None:
                    raise guard.refusal from None
                raise _friendly_download_error(str(exc), settings) from None
            except VChatError:
                raise
            except Exception as exc:  # yt-dlp's many internal errors: one line, no traceback
                if guard.refusal is not None:
                    raise guard.refusal from None
                raise _friendly_download_error(str(exc) or type(exc).__name__, settings) from exc
        files = [p for p in scratch.iterdir() if p.is_file() and not p.name.endswith((".part", ".ytdl"))]
        if not files:
            if info.get("filesize") or info.get("filesize_approx"):
                raise LimitExceeded(f"The video is larger than the {settings.max_download_mb:g} MB download limit.")
            raise DownloadError(
                "The download finished without writing a file.", "The site may have changed; try uploading the file."
            )
        downloaded = max(files, key=lambda p: p.stat().st_size)
        size = downloaded.stat().st_size
        if size > max_bytes:
            raise LimitExceeded(
                f"The downloaded file ({size / 1e6:.0f} MB) is larger than the {settings.max_download_mb:g} MB limit."
            )
        if size == 0:
            raise DownloadError("The server sent an empty file.")
        sha = sha256_file(downloaded)
        path = store.add_original(downloaded, sha, safe_extension(downloaded.name), move=True)
    source = SourceInfo(
        kind="url",
        url=redact_url(url),
        webpage_url=redact_url(str(info.get("webpage_url") or url)),
        extractor=info.get("extractor_key") or info.get("extractor"),
        uploader=info.get("uploader"),
        uploader_id=info.get("uploader_id"),
        channel=info.get("channel"),
        upload_date=info.get("upload_date"),
        title=info.get("title"),
        duration_s=info.get("duration"),
        filename=downloaded.name,
        fetched_at=_now(),
    )
    atomic_write_json(
        store.url_record_path(key), {"url": redact_url(url), "sha256": sha, "source": source.model_dump()}
    )
    return sha, path, source, False


def _single_video(info: dict[str, Any], ydl: yt_dlp.YoutubeDL) -> dict[str, Any]:
    if info.get("_type") in ("playlist", "multi_video"):
        entries = [e for e in info.get("entries") or [] if e]
        if len(entries) != 1:
            raise InputError(
                "This URL is a playlist or a page with several videos; vChat fetches one video at a time.",
                "Paste the link of a single video.",
            )
        entry = entries[0]
        if entry.get("_type") == "url":
            return _single_video(ydl.extract_info(entry["url"], download=False), ydl)
        return entry
    if info.get("_type") == "url":
        return _single_video(ydl.extract_info(info["url"], download=False), ydl)
    return info


def _check_info_limits(info: dict[str, Any], settings: Settings) -> None:
    if info.get("is_live") or info.get("live_status") == "is_live":
        raise InputError(
            "This is a live stream; vChat analyses recorded videos.", "Try again once the recording is published."
        )
    duration = info.get("duration")
    if duration and duration > settings.max_duration_s:
        raise LimitExceeded(
            f"The video is {duration:.0f} s long; the limit is {settings.max_duration_s:g} s.",
            "Raise VCHAT_MAX_DURATION_S, or use a shorter clip.",
        )
    size = info.get("filesize") or info.get("filesize_approx")
    if size and size > settings.max_download_bytes * 1.05:
        raise LimitExceeded(
            f"The video is about {size / 1e6:.0f} MB; the download limit is {settings.max_download_mb:g} MB.",
            "Raise VCHAT_MAX_DOWNLOAD_MB, or download a shorter or smaller version.",
        )


def _check_protocols(info: dict[str, Any]) -> None:
    formats = info.get("requested_formats") or [info]
    for fmt in formats:
        protocol = str(fmt.get("protocol") or "https")
        if any(part not in SAFE_PROTOCOLS for part in protocol.split("+")):
            raise DownloadError(
                f"This video is only offered over the '{protocol}' protocol, which vChat does not fetch.",
                "Download it yourself and upload the file.",
            )
