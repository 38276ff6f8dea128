"""Content-addressed storage of originals and of every later step's results.

Layout under `<data dir>/media`:
    objects/<sha[:2]>/<sha256>/original.<ext>   the bytes as fetched, never rewritten
    objects/<sha[:2]>/<sha256>/<name>.json      per-bytes results (probe, provenance)
    objects/<sha[:2]>/<sha256>/sanitized/<key>.mp4 (+ .json, .frames.json)
    urls/<key>.json                              URL + fetch settings -> sha256
Every write goes to a temporary name first and is renamed into place, so a crash or a
refusal never leaves a half-written file where a reader would take it for a result; the
temporary names carry their owner process (core.media.scratch), so what a killed process
leaves is swept when the next one starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from core.config import Settings
from core.media.scratch import scratch_dir, temporary_name

CHUNK = 1024 * 1024
_EXT_RE = re.compile(r"^[a-z0-9]{1,8}$")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def safe_extension(name: str | None) -> str:
    """A short lowercase extension taken from a file name, or 'bin'."""
    suffix = Path(name or "").suffix.lower().lstrip(".")
    return suffix if _EXT_RE.match(suffix) else "bin"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_json(path: Path, obj: Any, indent: int | None = 2) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=indent, sort_keys=True, default=str).encode())


def read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def settings_key(fields: dict[str, Any]) -> str:
    """A short stable hash of the settings a cached result depends on."""
    blob = json.dumps(fields, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class MediaStore:
    def __init__(self, settings: Settings) -> None:
        self.root = settings.media_cache_dir
        self.tmp_root = settings.tmp_dir

    # -- objects --------------------------------------------------------------------------
    def object_dir(self, sha256: str) -> Path:
        return self.root / "objects" / sha256[:2] / sha256

    def original_path(self, sha256: str) -> Path | None:
        folder = self.object_dir(sha256)
        if folder.is_dir():
            for candidate in folder.glob("original.*"):
                return candidate
        return None

    def add_original(self, path: Path, sha256: str, extension: str, move: bool) -> Path:
        """Put the file at `path` in the store under its hash (idempotent)."""
        existing = self.original_path(sha256)
        if existing is not None:
            if move:
                path.unlink(missing_ok=True)
            return existing
        folder = self.object_dir(sha256)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"original.{extension}"
        staging = temporary_name(target)
        try:
            if move:
                shutil.move(str(path), staging)
            else:
                try:
                    os.link(path, staging)
                except OSError:
                    shutil.copyfile(path, staging)
            os.chmod(staging, 0o444)
            os.replace(staging, target)
        finally:
            staging.unlink(missing_ok=True)
        return target

    def result_path(self, sha256: str, name: str) -> Path:
        return self.object_dir(sha256) / name

    # -- URL records ------------------------------------------------------------------------
    def url_record_path(self, key: str) -> Path:
        return self.root / "urls" / f"{key}.json"

    # -- scratch space ----------------------------------------------------------------------
    @contextmanager
    def scratch_dir(self, kind: str = "fetch") -> Iterator[Path]:
        """A private temporary folder under the data dir, removed whatever happens (and swept
        by the next process to start, should this one be killed)."""
        with scratch_dir(self.tmp_root, kind) as folder:
            yield folder


def copy_stream_hashing(src: BinaryIO, dest: Path, max_bytes: int) -> tuple[str, int]:
    """Copy a file object to `dest`, returning (sha256, size); stops at `max_bytes` + 1.

    Returns the size actually read so the caller can refuse oversize input; the caller
    owns cleanup of `dest`.
    """
    digest = hashlib.sha256()
    size = 0
    with open(dest, "wb") as out:
        while True:
            chunk = src.read(CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                return digest.hexdigest(), size
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest(), size
