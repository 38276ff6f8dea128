"""The media pipeline: source -> original (stored, provenance) -> probe -> sanitized mp4.

`prepare_media` is the one entry point the UI, the CLI and batch jobs call. Each step's
result is stored next to the original, keyed by the bytes' sha256 (and by the settings
the step depends on), so the same bytes are never probed, read or sanitized twice.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import BinaryIO

from pydantic import BaseModel

from core.config import Settings
from core.errors import LimitExceeded, MediaError
from core.media.fetch import ingest_local, ingest_upload, looks_like_url
from core.media.frames import FrameSource, frame_source
from core.media.probe import PROBE_VERSION, ProbeInfo, probe
from core.media.provenance import Provenance, SourceInfo, read_provenance
from core.media.sanitize import SanitizeResult, sanitize, sanitize_key
from core.media.storage import MediaStore, atomic_write_json, read_json
from core.progress import ProgressFn, no_progress


class InspectedMedia(BaseModel):
    """A fetched video, known to be media: where it came from, what it is, what it says about
    itself. Everything a fact-checker reads before any model runs (`vchat inspect`)."""

    sha256: str
    original_path: str
    source: SourceInfo
    reused_download: bool = False
    provenance: Provenance
    probe: ProbeInfo


class MediaAsset(InspectedMedia):
    """An inspected video, ready for analysis: with the sanitized file that frames are taken from."""

    sanitized: SanitizeResult

    @property
    def sanitized_path(self) -> Path:
        return Path(self.sanitized.path)

    def frames(self, settings: Settings) -> FrameSource:
        """The shared frame source of the sanitized video (decoded frames are kept)."""
        return frame_source(self.sanitized_path, settings.frame_cache_mb * 1024 * 1024)


def prepare_media(
    source: str | Path | BinaryIO,
    settings: Settings,
    filename: str | None = None,
    progress: ProgressFn | None = None,
) -> MediaAsset:
    """Fetch, check, read provenance of and sanitize `source`; reuse every stored step."""
    return finish_media(inspect_media(source, settings, filename, progress), settings, progress)


def inspect_media(
    source: str | Path | BinaryIO,
    settings: Settings,
    filename: str | None = None,
    progress: ProgressFn | None = None,
) -> InspectedMedia:
    """Fetch `source`, check that it is a video within the limits, read its provenance (no sanitize)."""
    report = progress or no_progress
    store = MediaStore(settings)
    reused = False
    report("fetch", "reading the source", None)
    if isinstance(source, (str, Path)) and looks_like_url(str(source)):
        from core.media.download import fetch_url  # yt-dlp is imported only when a URL is fetched

        sha, original, origin, reused = fetch_url(str(source), settings, store, progress)
    elif isinstance(source, (str, Path)):
        sha, original, origin = ingest_local(source, settings, store)
    else:
        sha, original, origin = ingest_upload(source, filename, settings, store)
    report("fetch", "fetched (reused the stored copy)" if reused else "fetched", 1.0)

    name = origin.filename or origin.url
    probe_file = store.result_path(sha, f"probe-v{PROBE_VERSION}.json")
    stored = read_json(probe_file)
    if stored:
        info = ProbeInfo(**stored)
    else:
        report("probe", "checking the video", None)
        try:
            info = probe(original, settings, name=name)
        except MediaError:
            # Not a usable video: keep nothing of it (the next try fails the same way).
            shutil.rmtree(store.object_dir(sha), ignore_errors=True)
            raise
        atomic_write_json(probe_file, info.model_dump())
    if info.content_duration_s > settings.max_duration_s:
        raise LimitExceeded(
            f"The video is {info.content_duration_s:.0f} s long; the limit is {settings.max_duration_s:g} s.",
            "Raise VCHAT_MAX_DURATION_S, or use a shorter clip.",
        )

    # Read after the probe: only a file known to be media is opened again (with the same demuxer).
    provenance_file = store.result_path(sha, "provenance.json")
    stored = read_json(provenance_file)
    if stored:
        provenance = Provenance(**stored)
    else:
        report("provenance", "reading metadata and C2PA", None)
        provenance = read_provenance(original, sha, info.demuxer)
        atomic_write_json(provenance_file, provenance.model_dump())
    return InspectedMedia(
        sha256=sha,
        original_path=str(original),
        source=origin,
        reused_download=reused,
        provenance=provenance,
        probe=info,
    )


def finish_media(inspected: InspectedMedia, settings: Settings, progress: ProgressFn | None = None) -> MediaAsset:
    """The sanitized mp4 of an inspected video (stored per sanitize settings, reused when there)."""
    report = progress or no_progress
    store = MediaStore(settings)
    original = Path(inspected.original_path)
    key = sanitize_key(settings)
    target = store.result_path(inspected.sha256, f"sanitized/{key}.mp4")
    result_file = target.with_suffix(".json")
    stored = read_json(result_file)
    if stored and target.exists():
        sanitized = SanitizeResult(**stored)
        sanitized.reused = True
        sanitized.path = str(target)
    else:
        report("sanitize", "making a clean mp4", 0.0)
        name = inspected.source.filename or inspected.source.url
        sanitized = sanitize(original, inspected.probe, target, settings, name=name, progress=report)
        atomic_write_json(result_file, sanitized.model_dump())
    report("ready", "ready", 1.0)
    return MediaAsset(**dict(inspected), sanitized=sanitized)
