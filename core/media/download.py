"""Download: a URL (YouTube, TikTok, direct files, pages the generic extractor understands) into
the content-addressed store through yt-dlp as a library, inside the URL guard, with limits on
size and duration checked before and during the download and verified on the written file, and a
deadline over every network read.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

import yt_dlp
import yt_dlp.postprocessor
from yt_dlp.postprocessor.ffmpeg import FFmpegPostProcessor
from yt_dlp.utils import DownloadCancelled

from core.config import Settings
from core.errors import DownloadError, InputError, LimitExceeded, VChatError
from core.media.fetch import now, redact_url
from core.media.ffmpeg import ffmpeg_binary
from core.media.provenance import SourceInfo
from core.media.sniff import MEDIA_DEMUXERS
from core.media.storage import MediaStore, atomic_write_json, read_json, safe_extension, settings_key, sha256_file
from core.media.urlguard import GuardSession, UrlPolicy, check_proxies, check_url, guarded_connections
from core.progress import ProgressFn

log = logging.getLogger(__name__)

# mp4 up to 720p in one file first (no merge), then mp4 video + m4a audio, then anything
# up to 720p, then the smallest above. `?` lets formats of unknown height (direct files) pass.
FORMAT_SELECTOR = (
    "b[height<=?720][ext=mp4]/bv*[height<=?720][ext=mp4]+ba[ext=m4a]/b[height<=?720]/bv*[height<=?720]+ba/wv*+ba/w"
)
# Protocols whose every connection goes through yt-dlp's own HTTP stack (and so the guard).
SAFE_PROTOCOLS = {"http", "https", "m3u8_native", "http_dash_segments"}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


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
    if "file:// urls are disabled" in low:  # a manifest or a redirect that names a local file
        return DownloadError("The video's playlist or page points at a local file (file://); vChat refuses it.")
    if low.startswith("postprocessing:"):  # ffmpeg refused to merge or fix the downloaded streams
        return DownloadError(
            f"The downloaded streams could not be combined into one video ({first.split(':', 1)[1].strip()[:200]}).",
            "The site serves them in a form vChat does not accept; download the video yourself and upload it.",
        )
    first = re.sub(r"^\[[^\]]+\]\s*", "", first)
    return DownloadError(f"The download failed: {first[:300]}")


def _ffmpeg_input_args() -> dict[str, list[str]]:
    """yt-dlp's `postprocessor_args` that open every input of every ffmpeg it runs (merging separate
    video and audio, the fixups) as one local media file: the `file` protocol only and a demuxer
    from MEDIA_DEMUXERS. Without them ffmpeg probes a downloaded "stream" that is really an HLS
    playlist and follows its segments (`file:///...`: a local file read into the download).
    yt-dlp looks up '<postprocessor>+ffmpeg_i' (args before each `-i`); there is no key for all of
    them, so every ffmpeg postprocessor yt-dlp has is named."""
    args = ["-protocol_whitelist", "file", "-format_whitelist", ",".join(MEDIA_DEMUXERS)]
    keys = {
        cls.pp_key().lower()
        for cls in vars(yt_dlp.postprocessor).values()
        if isinstance(cls, type) and issubclass(cls, FFmpegPostProcessor)
    }
    return {f"{key}+ffmpeg_i": list(args) for key in sorted(keys)}


def _deadline_error(settings: Settings) -> DownloadError:
    return DownloadError(
        f"The download took longer than {settings.download_timeout_s:g} s and was stopped.",
        "Try again later, or raise VCHAT_DOWNLOAD_TIMEOUT_S.",
    )


def _guard_error(guard: GuardSession, settings: Settings) -> VChatError | None:
    """What the guard itself stopped, which wins over how yt-dlp reported it."""
    if guard.refusal is not None:
        return guard.refusal
    if guard.expired:
        return _deadline_error(settings)
    return None


def fetch_url(
    url: str, settings: Settings, store: MediaStore | None = None, progress: ProgressFn | None = None
) -> tuple[str, Path, SourceInfo, bool]:
    """Download `url` (guarded) into the store. Returns (sha256, path, source, reused).

    `download_timeout_s` is one deadline from this call's start over every connect, read and
    write of the fetch (page, manifests, fragments, media, redirects): the URL guard caps each
    socket call at the time left (see core/media/urlguard.py), so a server that drips bytes
    slower than any socket timeout is cut off at the deadline, not only between progress hooks."""
    started = time.monotonic()
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
            raise _Refused(_deadline_error(settings))
        if progress:
            progress("download", f"{done / 1e6:.1f} MB", done / total if total else None)

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
            "enable_file_urls": False,  # yt-dlp's default, kept: no file:// page, manifest or fragment
            "concurrent_fragment_downloads": 1,  # the guard and the deadline hold for this thread only
            "postprocessor_args": _ffmpeg_input_args(),
            "restrictfilenames": True,
            "updatetime": False,
            "color": {"stdout": "no_color", "stderr": "no_color"},
        }
        deadline = started + settings.download_timeout_s
        with guarded_connections(policy, deadline=deadline) as guard:
            try:
                with yt_dlp.YoutubeDL(options) as ydl:
                    check_proxies(ydl.proxies)  # HTTP_PROXY and friends, as yt-dlp reads them
                    info = ydl.extract_info(url, download=False)
                    info = _single_video(info, ydl)
                    _check_info_limits(info, settings)
                    _check_protocols(info)
                    info = ydl.process_ie_result(info, download=True)
            except _Refused as refused:
                raise (_guard_error(guard, settings) or refused.error) from None
            except yt_dlp.utils.DownloadError as exc:
                raise (_guard_error(guard, settings) or _friendly_download_error(str(exc), settings)) from None
            except VChatError:
                raise
            except Exception as exc:  # yt-dlp's many internal errors: one line, no traceback
                stopped = _guard_error(guard, settings)
                if stopped is not None:
                    raise stopped from None
                raise _friendly_download_error(str(exc) or type(exc).__name__, settings) from exc
        # yt-dlp may go on past an error it swallowed (a skipped fragment, a fallback extractor):
        # what it wrote then is incomplete or came another way, so the guard's stop still stands.
        stopped = _guard_error(guard, settings)
        if stopped is not None:
            raise stopped
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
        fetched_at=now(),
        thumbnails=_thumbnail_urls(info),
    )
    atomic_write_json(
        store.url_record_path(key), {"url": redact_url(url), "sha256": sha, "source": source.model_dump()}
    )
    return sha, path, source, False


def _thumbnail_urls(info: dict[str, Any], limit: int = 4) -> list[str]:
    """The platform's public pictures of the video, from yt-dlp's info (`thumbnail` first, then the
    largest of `thumbnails`): http(s) URLs only, for the fact-check page's reverse-image-search links."""
    listed = [entry for entry in info.get("thumbnails") or [] if isinstance(entry, dict)]
    listed.sort(key=lambda entry: -((entry.get("width") or 0) * (entry.get("height") or 0)))
    urls: list[str] = []
    for url in [info.get("thumbnail"), *(entry.get("url") for entry in listed)]:
        if isinstance(url, str) and url.startswith(("https://", "http://")) and url not in urls:
            urls.append(redact_url(url))
    return urls[:limit]


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
