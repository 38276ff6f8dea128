"""The top of a result, what a fact-checker reads first: where the video came from, who put it
online and when, its content credentials (C2PA) in words, and what looks wrong about the file;
then every media fact, unabridged, in a detail view."""

from __future__ import annotations

import streamlit as st

from core.analysis.runner import AnalysisRun
from core.media.describe import day, summary
from core.media.pipeline import InspectedMedia, MediaAsset
from ui.feedback import md, plain, show_caption, show_warning
from ui.result_text import bullets
from ui.text import human_bytes

PATHS_TAKEN = {
    "remux": "copied into a clean mp4 (picture and sound untouched)",
    "audio-reencode": "picture copied untouched, sound converted",
    "reencode": "re-encoded",
}


def render_source(run: AnalysisRun) -> None:
    """Origin, uploader and dates, C2PA state and warnings; the full facts in an expander."""
    st.subheader("Source")
    if run.asset is None:
        st.markdown(md("**Origin:** {} (Gemini read the video from YouTube itself)", run.source_url))
        show_caption(
            "Gemini read the video from its URL: no copy was downloaded, so no provenance, metadata or "
            "C2PA was read, and the uploader and dates are not known here."
        )
        return
    render_facts(run.asset)


def render_facts(media: InspectedMedia) -> None:
    """The summary, the warnings, how the copy analysed was made (once there is one), all facts."""
    st.markdown(plain(bullets(summary(media))))
    for warning in warnings(media):
        show_warning(warning, icon=":material/report:")
    if isinstance(media, MediaAsset):
        sanitized = media.sanitized
        how = PATHS_TAKEN.get(sanitized.path_taken, sanitized.path_taken)
        reasons = f": {'; '.join(sanitized.plan.reasons)}" if sanitized.plan.reasons else ""
        show_caption(f"Analysed from a playable copy, {how}{reasons}. Provenance was read from the original bytes.")
    with st.expander("All media facts"):
        st.markdown(plain(bullets(media_facts(media))))
        st.caption("Everything read from the original bytes, before sanitizing:")
        st.json(media.provenance.model_dump(mode="json"), expanded=False)


def warnings(asset: InspectedMedia) -> list[str]:
    """What a reader must not miss: an invalid signature, a file that contradicts itself, a cut."""
    found = []
    if asset.provenance.c2pa.state == "invalid":
        found.append("The content credentials (C2PA) of this file are invalid: it was changed after signing.")
    found += [f"The file: {note}." for note in asset.probe.notes]
    if not isinstance(asset, MediaAsset):
        return found
    trim = asset.sanitized.plan.trim_to_s
    if trim:
        found.append(f"Only the first {trim:g} s of the video were analysed (the length cap).")
    found += [f"ffmpeg, making the playable copy: {line}" for line in asset.sanitized.warnings]
    return found


def media_facts(asset: InspectedMedia) -> list[tuple[str, object]]:
    """Every fact about the source and the bytes, for the detail view."""
    source, provenance, probe = asset.source, asset.provenance, asset.probe
    fps = f"{probe.fps:.3g} fps" if probe.fps else None
    return [
        ("source", source.kind),
        ("URL", source.webpage_url or source.url),
        ("title", source.title),
        ("uploader", source.uploader or source.channel),
        ("upload date", day(source.upload_date)),
        ("file name", source.filename),
        ("fetched at", source.fetched_at),
        ("sha256", asset.sha256),
        ("size", human_bytes(provenance.size_bytes)),
        ("container", probe.container),
        ("duration", f"{probe.duration_s:.2f} s"),
        ("video", " ".join(p for p in (probe.video_codec, f"{probe.width}x{probe.height}", probe.pix_fmt, fps) if p)),
        ("rotation", f"{probe.rotation}°" if probe.rotation else None),
        ("audio", f"{probe.audio_codec} ({probe.audio_channels} ch)" if probe.has_audio else "none"),
        ("C2PA", provenance.c2pa.summary),
        ("created", provenance.creation_time),
        ("written by", provenance.encoder),
        ("camera", " ".join(p for p in (provenance.make, provenance.model) if p) or None),
        ("software", provenance.software),
        ("location", provenance.location),
    ] + (
        [("sanitized", asset.sanitized.path_taken + (" (reused)" if asset.sanitized.reused else ""))]
        if isinstance(asset, MediaAsset)
        else []
    )
