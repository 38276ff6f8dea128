"""Provenance, read from the original bytes before anything rewrites them.

C2PA manifests and container metadata do not survive a re-encode or a remux, so this
runs on the stored original: sha256, size, container and stream tags (encoder, creation
time, camera make/model), and the C2PA manifest state via c2pa-python.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from core.media.sniff import open_media

log = logging.getLogger(__name__)

_MAX_TAGS = 64
_MAX_TAG_LEN = 500
_MAKE_KEYS = ("com.apple.quicktime.make", "make", "com.android.manufacturer")
_MODEL_KEYS = ("com.apple.quicktime.model", "model", "com.android.model")
_SOFTWARE_KEYS = ("com.apple.quicktime.software", "software", "com.android.version")
_LOCATION_KEYS = ("com.apple.quicktime.location.ISO6709", "location", "location-eng")
_CREATION_KEYS = ("com.apple.quicktime.creationdate", "creation_time", "date")


class SourceInfo(BaseModel):
    """Where the bytes came from (filled per fetch; the same bytes may come from elsewhere)."""

    kind: Literal["url", "upload", "local"]
    url: str | None = None
    webpage_url: str | None = None
    extractor: str | None = None
    uploader: str | None = None
    uploader_id: str | None = None
    channel: str | None = None
    upload_date: str | None = None
    title: str | None = None
    duration_s: float | None = None
    filename: str | None = None
    fetched_at: str | None = None
    thumbnails: list[str] = Field(default_factory=list)  # the platform's public pictures of the video (URL sources)


class C2paInfo(BaseModel):
    state: Literal["none", "valid", "invalid", "unreadable"]
    summary: str
    trusted: bool | None = None
    issuer: str | None = None
    signer: str | None = None
    signed_at: str | None = None
    claim_generator: str | None = None
    title: str | None = None
    validation_issues: list[str] = Field(default_factory=list)


class Provenance(BaseModel):
    sha256: str
    size_bytes: int
    container: str | None = None
    encoder: str | None = None  # the application that wrote the container
    video_encoder: str | None = None  # the encoder named by the video stream
    creation_time: str | None = None
    make: str | None = None
    model: str | None = None
    software: str | None = None
    location: str | None = None
    container_tags: dict[str, str] = Field(default_factory=dict)
    stream_tags: dict[str, dict[str, str]] = Field(default_factory=dict)
    c2pa: C2paInfo


def _clean_tags(tags: dict[str, object]) -> dict[str, str]:
    cleaned: dict[str, str] = {}
    for key, value in list(tags.items())[:_MAX_TAGS]:
        text = "".join(ch for ch in str(value) if ch.isprintable())[:_MAX_TAG_LEN]
        cleaned[str(key)[:100]] = text
    return cleaned


def _first(tags: list[dict[str, str]], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        for group in tags:
            if group.get(key):
                return group[key]
    return None


def read_c2pa(path: Path) -> C2paInfo:
    """The C2PA manifest state of `path`: none, valid (with signer) or invalid (with why)."""
    import c2pa

    try:
        with c2pa.Reader(str(path)) as reader:
            manifest_store = json.loads(reader.json())
            state = (reader.get_validation_state() or "").lower()
    except c2pa.C2paError as exc:
        if type(exc).__name__.endswith("ManifestNotFound") or "ManifestNotFound" in str(exc):
            return C2paInfo(state="none", summary="no C2PA manifest")
        if "NotSupported" in type(exc).__name__ or "type is unsupported" in str(exc):
            return C2paInfo(state="none", summary="no C2PA manifest (format not supported by C2PA)")
        log.info("C2PA read failed for %s: %s", path.name, exc)
        return C2paInfo(state="unreadable", summary=f"C2PA data present but unreadable: {str(exc)[:200]}")
    active = manifest_store.get("manifests", {}).get(manifest_store.get("active_manifest") or "", {})
    signature = active.get("signature_info") or {}
    statuses = manifest_store.get("validation_status") or []
    codes = [s.get("code", "") for s in statuses]
    untrusted = any(code == "signingCredential.untrusted" for code in codes)
    issues = sorted({f"{s.get('code')}: {s.get('explanation', '')}"[:200] for s in statuses})
    generator = active.get("claim_generator") or ", ".join(
        str(g.get("name", "")) for g in active.get("claim_generator_info") or [] if isinstance(g, dict)
    )
    valid = state in ("valid", "trusted")
    if valid:
        summary = "C2PA manifest valid" + ("; the signer is not on a trust list" if untrusted else "")
    else:
        problems = [c for c in codes if c != "signingCredential.untrusted"]
        summary = "C2PA manifest INVALID" + (f" ({', '.join(sorted(set(problems)))})" if problems else "")
    return C2paInfo(
        state="valid" if valid else "invalid",
        summary=summary,
        trusted=state == "trusted" or (valid and not untrusted),
        issuer=signature.get("issuer"),
        signer=signature.get("common_name"),
        signed_at=signature.get("time"),
        claim_generator=generator or None,
        title=active.get("title"),
        validation_issues=issues,
    )


def read_provenance(path: Path, sha256: str, demuxer: str) -> Provenance:
    """Container metadata and C2PA state of the original file at `path`, opened with the demuxer
    the probe chose (`core.media.sniff`: never a fresh probe that could follow a reference)."""
    container_tags: dict[str, str] = {}
    stream_tags: dict[str, dict[str, str]] = {}
    container_name = None
    import av

    try:
        with open_media(path, demuxer) as container:
            container_name = container.format.name
            container_tags = _clean_tags(dict(container.metadata))
            for stream in container.streams:
                stream_tags[f"{stream.index}:{stream.type}"] = _clean_tags(dict(stream.metadata))
    except av.error.FFmpegError as exc:
        log.info("no container metadata for %s: %s", path.name, exc)
    groups = [container_tags, *stream_tags.values()]
    video_tags = [tags for key, tags in stream_tags.items() if key.endswith(":video")]
    return Provenance(
        sha256=sha256,
        size_bytes=path.stat().st_size,
        container=container_name,
        encoder=_first([container_tags], ("encoder", "encoded_by", "com.apple.quicktime.encoder")),
        video_encoder=_first(video_tags, ("encoder",)),
        creation_time=_first(groups, _CREATION_KEYS),
        make=_first(groups, _MAKE_KEYS),
        model=_first(groups, _MODEL_KEYS),
        software=_first(groups, _SOFTWARE_KEYS),
        location=_first(groups, _LOCATION_KEYS),
        container_tags=container_tags,
        stream_tags=stream_tags,
        c2pa=read_c2pa(path),
    )
