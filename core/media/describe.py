"""A video's source and provenance in words a fact-checker reads: where it came from, when, who
signed it. Shared by the result page, the fact-check page and the HTML report (no Streamlit here)."""

from __future__ import annotations

from core.media.pipeline import InspectedMedia
from core.media.provenance import C2paInfo, SourceInfo


def origin(source: SourceInfo) -> str:
    if source.kind == "url":
        return source.webpage_url or source.url or "a URL"
    if source.kind == "upload":
        return f"uploaded file {source.filename}"
    return f"{source.filename} (from the media folder)"


def day(value: str | None) -> str | None:
    """yt-dlp's 20240115 as 2024-01-15; anything else as it is."""
    if value and len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value


def c2pa_words(c2pa: C2paInfo) -> str:
    """The content credentials' state as a sentence a non-specialist can act on."""
    if c2pa.state == "none":
        why = " (this format cannot carry them)" if "not supported" in c2pa.summary else ""
        return f"none{why}: nothing in the file says who made or edited it (most videos carry none)"
    if c2pa.state == "unreadable":
        return f"present but unreadable ({c2pa.summary})"
    if c2pa.state == "invalid":
        issues = f" ({'; '.join(c2pa.validation_issues)})" if c2pa.validation_issues else ""
        return f"present but INVALID: the file was changed after it was signed, or the signature is broken{issues}"
    signer = c2pa.signer or "an unnamed signer"
    if c2pa.issuer and c2pa.issuer != c2pa.signer:
        signer += f" (certificate issued by {c2pa.issuer})"
    made = f" with {c2pa.claim_generator}" if c2pa.claim_generator else ""
    when = f" on {c2pa.signed_at}" if c2pa.signed_at else ""
    words = f"valid: signed by {signer}{when}{made}; the file is unchanged since it was signed"
    if not c2pa.trusted:
        words += "; the signer is not on a trust list, so this does not prove who made it"
    return words


def summary(asset: InspectedMedia) -> list[tuple[str, object]]:
    source, provenance, probe = asset.source, asset.provenance, asset.probe
    uploader = source.uploader or source.channel
    if uploader and source.uploader_id and source.uploader_id not in uploader:
        uploader = f"{uploader} ({source.uploader_id})"
    fetched = source.fetched_at
    if fetched and asset.reused_download:
        fetched += " (the copy downloaded then was used again)"
    audio = "with sound" if probe.has_audio else "no sound"
    return [
        ("Origin", origin(source)),
        ("Title", source.title),
        ("Site", source.extractor),
        ("Uploader", uploader),
        ("Uploaded (says the site)", day(source.upload_date)),
        ("Created (says the file's metadata)", provenance.creation_time),
        ("Camera", " ".join(p for p in (provenance.make, provenance.model) if p) or None),
        ("Content credentials (C2PA)", c2pa_words(provenance.c2pa)),
        ("Fetched", fetched),
        ("The video", f"{probe.duration_s:.1f} s, {probe.width}x{probe.height} {probe.video_codec}, {audio}"),
        ("sha256", asset.sha256),
    ]
