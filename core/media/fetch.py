"""Fetch: turn what the user gave (an uploaded file object, a local path) into an original file in
the content-addressed store, with where it came from; and tell URLs from paths. Downloading a URL
is `core.media.download` (yt-dlp, imported only when a URL is fetched).

Everything is written in a scratch folder that is removed whatever happens, so a refusal leaves
nothing behind.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from pathlib import Path
from typing import BinaryIO

from core.config import Settings
from core.errors import InputError, LimitExceeded
from core.media.provenance import SourceInfo
from core.media.storage import (
    MediaStore,
    copy_stream_hashing,
    safe_extension,
)
from core.paths import is_within

log = logging.getLogger(__name__)

_URL_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def looks_like_url(source: str) -> bool:
    """True for anything with a URL scheme (so `file:`, `data:` and friends reach the guard)."""
    if "://" in source:
        return True
    if not _URL_SCHEME.match(source):
        return False
    try:
        return not Path(source).exists()
    except (OSError, ValueError):  # a name too long or holding a NUL: no such file, so a URL to refuse
        return True


# Endings of file names that look like host names (clip.mp4) but are never a top-level domain.
VIDEO_SUFFIXES = frozenset({"mp4", "mov", "m4v", "webm", "mkv", "avi", "mpeg", "mpg", "ts", "3gp", "ogv", "flv", "wmv"})
_BARE_HOST = re.compile(r"^[\w-]+(\.[\w-]+)+(:\d+)?(/\S*)?$")


def url_from_field(text: str) -> str:
    """What was typed in a URL field, as a URL: `www.example.com/v.mp4` gets https://; text that is no
    URL is refused here, never taken for a file name (files come from the upload or the media folder)."""
    text = text.strip()
    if "://" in text or (_URL_SCHEME.match(text) and not _BARE_HOST.match(text)):
        return text
    host = text.split("/")[0].split(":")[0]
    if _BARE_HOST.match(text) and host.rsplit(".", 1)[-1].lower() not in VIDEO_SUFFIXES:
        return f"https://{text}"
    shown = text if len(text) <= 60 else f"{text[:57]}..."
    raise InputError(
        f"'{shown}' is not a URL.",
        "Paste an address that starts with https://, or choose Upload or Media folder for a file.",
    )


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
    return sha, path, SourceInfo(kind="upload", filename=name, fetched_at=now())


# --- local paths -----------------------------------------------------------------------------


def resolve_local_path(raw: str | Path, settings: Settings) -> Path:
    """The real path of a file inside the media dir, or InputError (no `..`, no escapes)."""
    media_dir = settings.media_dir.resolve()
    media_roots = (media_dir, settings.media_dir.absolute())
    shown = str(raw) if len(str(raw)) <= 80 else f"{str(raw)[:77]}..."
    if "\x00" in str(raw) or any(len(part.encode()) > 255 for part in Path(raw).parts):
        raise InputError(
            f"'{shown}' is not a usable file name (a part is longer than 255 bytes, or it holds a NUL).",
            f"Give the name of a file inside the media folder {media_dir}.",
        )
    given = Path(raw).expanduser()
    if ".." in given.parts:
        raise InputError(f"Paths with '..' are refused: {raw}", f"Give a path inside the media folder {media_dir}.")
    candidates = [given] if given.is_absolute() else [media_dir / given, Path.cwd() / given]
    for candidate in candidates:
        if not any(is_within(candidate.absolute(), root) for root in media_roots):
            continue
        try:
            if not candidate.exists():
                continue
            real = candidate.resolve()
        except (OSError, RuntimeError) as exc:  # a path too long, a loop of links
            raise InputError(f"'{shown}' cannot be read as a path ({type(exc).__name__}).") from None
        if not is_within(real, media_dir):
            raise InputError(
                f"'{raw}' is a link that points outside the media folder; it is refused.",
                f"Copy the file into {media_dir} instead.",
            )
        if not real.is_file():
            raise InputError(f"'{raw}' is not a file.")
        return real
    if given.is_absolute() and not any(is_within(given, root) for root in media_roots):
        raise InputError(
            f"Local files must be inside the media folder {media_dir}; '{raw}' is not.",
            "Copy the file there, set VCHAT_MEDIA_DIR, or upload it.",
        )
    raise InputError(f"No such file in the media folder {media_dir}: '{raw}'.")


def ingest_local(raw: str | Path, settings: Settings, store: MediaStore | None = None) -> tuple[str, Path, SourceInfo]:
    """Copy a file of the media folder into the store (hashing as it is read: the store holds the
    bytes that were hashed, and the user's file is left as it was)."""
    store = store or MediaStore(settings)
    real = resolve_local_path(raw, settings)
    size = real.stat().st_size
    if size > settings.max_download_bytes:
        raise LimitExceeded(f"'{real.name}' is larger than the {settings.max_download_mb:g} MB limit.")
    try:
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))  # a link swapped in since: refused
    except OSError as exc:
        raise InputError(f"'{real.name}' cannot be read ({exc.strerror}).") from None
    with store.scratch_dir("local") as scratch, os.fdopen(fd, "rb") as source:
        staging = scratch / "original"
        sha, copied = copy_stream_hashing(source, staging, settings.max_download_bytes)
        if copied > settings.max_download_bytes:
            raise LimitExceeded(f"'{real.name}' is larger than the {settings.max_download_mb:g} MB limit.")
        path = store.add_original(staging, sha, safe_extension(real.name), move=True)
    return sha, path, SourceInfo(kind="local", filename=real.name, fetched_at=now())


