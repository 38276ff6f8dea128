"""Provenance flags: the inconsistencies a checker looks for in what a file says about itself.

Read from what the pipeline already stored (provenance of the original bytes, the downloader's
facts, the probe's notes): nothing here opens the file. Each flag is one plain sentence with a
severity: `warning` for an inconsistency worth a look, `info` for a fact that frames the rest.
"""

from __future__ import annotations

import datetime as dt
import re

from core.media.forensics.models import Fact, Flag, ProvenanceEvidence
from core.media.probe import ProbeInfo
from core.media.provenance import Provenance, SourceInfo

# Editing applications, matched as words in writer / encoder / software tags (case-insensitive).
EDITORS: tuple[tuple[str, str], ...] = (
    (r"premiere", "Adobe Premiere"),
    (r"after ?effects", "Adobe After Effects"),
    (r"media ?encoder", "Adobe Media Encoder"),
    (r"adobe", "Adobe software"),
    (r"final ?cut", "Final Cut Pro"),
    (r"imovie", "iMovie"),
    (r"davinci|resolve", "DaVinci Resolve"),
    (r"capcut|jianying", "CapCut"),
    (r"handbrake", "HandBrake"),
    (r"vegas", "VEGAS Pro"),
    (r"filmora|wondershare", "Wondershare Filmora"),
    (r"kinemaster", "KineMaster"),
    (r"inshot", "InShot"),
    (r"powerdirector|cyberlink", "PowerDirector"),
    (r"lumafusion", "LumaFusion"),
    (r"camtasia", "Camtasia"),
    (r"shotcut", "Shotcut"),
    (r"openshot", "OpenShot"),
    (r"kdenlive", "Kdenlive"),
    (r"lightworks", "Lightworks"),
    (r"movavi", "Movavi"),
    (r"clipchamp", "Clipchamp"),
    (r"avidemux", "Avidemux"),
    (r"videoleap", "Videoleap"),
    (r"media ?composer|\bavid\b", "Avid Media Composer"),
    (r"edius", "EDIUS"),
    (r"canva(?!s)", "Canva"),
    (r"blender", "Blender"),
)
# Conversion tools and libraries: a re-encode or re-mux, not an edit in itself.
TOOLS: tuple[tuple[str, str], ...] = (
    (r"lavf\d|lavc\d|libav|ffmpeg", "FFmpeg"),
    (r"x264", "the x264 encoder"),
    (r"x265", "the x265 encoder"),
    (r"gstreamer", "GStreamer"),
    (r"mencoder|mplayer", "MEncoder"),
    (r"mp4box|gpac", "GPAC MP4Box"),
)
# Tags that name the program that wrote the file (lower-cased keys, container and streams).
WRITER_KEYS = (
    "encoder", "encoded_by", "software", "writing_application", "writing_app", "com.apple.quicktime.software",
)
# Creation times that mean "not set" (the MP4 and Unix epochs).
PLACEHOLDER_YEARS = (1904, 1970)
DURATION_TOLERANCE_S = 2.0  # the platform's duration vs the file's: noted above this (and 5%)


def _match(value: str, table: tuple[tuple[str, str], ...]) -> str | None:
    for pattern, name in table:
        if re.search(rf"(?<![a-z0-9])(?:{pattern})", value, flags=re.IGNORECASE):
            return name
    return None


def _writers(provenance: Provenance) -> list[tuple[str, str]]:
    """(tag, value) of every tag that names the program that wrote the file, in a stable order."""
    found: list[tuple[str, str]] = []
    for label, value in (
        ("encoder", provenance.encoder),
        ("video encoder", provenance.video_encoder),
        ("software", provenance.software),
    ):
        if value:
            found.append((label, value))
    groups = [("container", provenance.container_tags)] + [
        (f"stream {key}", tags) for key, tags in provenance.stream_tags.items()
    ]
    for where, tags in groups:
        for key, value in tags.items():
            if key.lower() in WRITER_KEYS and value and all(value != seen for _, seen in found):
                found.append((f"{where} {key}", value))
    return found


def parse_time(text: str | None) -> dt.datetime | None:
    """A tag's date and time as an aware UTC datetime (naive times are taken as UTC), or None."""
    if not text:
        return None
    cleaned = text.strip()
    cleaned = re.sub(r"^(\d{4}):(\d{2}):(\d{2})", r"\1-\2-\3", cleaned)  # EXIF style 2024:05:06
    try:
        value = dt.datetime.fromisoformat(cleaned)
    except ValueError:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def parse_upload_date(text: str | None) -> dt.date | None:
    """yt-dlp's upload_date (YYYYMMDD, UTC) as a date."""
    if not text or not re.fullmatch(r"\d{8}", text):
        return None
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def _time_flags(provenance: Provenance, source: SourceInfo) -> list[Flag]:
    created = parse_time(provenance.creation_time)
    if provenance.creation_time and created is None:
        return [Flag(code="creation-unreadable", severity="info", message=f"The creation time tag "
                     f"({provenance.creation_time[:40]}) is not a date vChat can read.")]
    if created is None:
        return []
    if created.year in PLACEHOLDER_YEARS:
        return [Flag(code="creation-placeholder", severity="info", message=f"The creation time is a placeholder "
                     f"({created.date().isoformat()}): the tool that wrote the file did not keep the real one.")]
    flags: list[Flag] = []
    uploaded = parse_upload_date(source.upload_date)
    if uploaded is not None and created.date() > uploaded:
        flags.append(Flag(code="creation-after-upload", severity="warning", message=(
            f"The file says it was created on {created.date().isoformat()}, after the upload date "
            f"{uploaded.isoformat()}: these bytes were written after the video was published "
            "(a platform re-encode, a re-upload or an edit)."
        )))
    fetched = parse_time(source.fetched_at)
    if fetched is not None and created > fetched + dt.timedelta(days=1):
        flags.append(Flag(code="creation-in-future", severity="warning", message=(
            f"The creation time ({created.isoformat(timespec='seconds')}) is later than the moment vChat "
            "fetched the file: the clock of the device or tool that wrote it was wrong, or the tag was edited."
        )))
    return flags


def _writer_flags(provenance: Provenance, source: SourceInfo) -> list[Flag]:
    writers = _writers(provenance)
    editors = [(tag, value, name) for tag, value in writers if (name := _match(value, EDITORS))]
    tools = [(tag, value, name) for tag, value in writers if (name := _match(value, TOOLS))]
    camera = " ".join(part for part in (provenance.make, provenance.model) if part).strip()
    flags: list[Flag] = []
    if editors:
        tag, value, name = editors[0]
        if camera:
            flags.append(Flag(code="camera-with-editor", severity="warning", message=(
                f"The camera tags say {camera}, but the file was written by {name} ({tag}: {value[:80]}): "
                "it was edited or exported after it was recorded."
            )))
        else:
            flags.append(Flag(code="editor", severity="info", message=(
                f"Written by an editing application: {name} ({tag}: {value[:80]})."
            )))
    if tools:
        tag, value, name = tools[0]
        note = (
            " vChat's downloader (yt-dlp) joins downloaded streams with FFmpeg, so this is expected for a download."
            if source.kind == "url" and name == "FFmpeg"
            else ""
        )
        kept = f" The camera tags ({camera}) were kept." if camera and not editors else ""
        flags.append(Flag(code="re-encoded", severity="info", message=(
            f"Re-encoded or re-packaged by a tool: {name} ({tag}: {value[:80]}).{kept}{note}"
        )))
    return flags


def _c2pa_flags(provenance: Provenance) -> list[Flag]:
    c2pa = provenance.c2pa
    if c2pa.state == "valid":
        who = c2pa.signer or c2pa.issuer or "an unnamed signer"
        issuer = f", issued by {c2pa.issuer}" if c2pa.issuer and c2pa.issuer != who else ""
        tool = f", made with {c2pa.claim_generator}" if c2pa.claim_generator else ""
        trust = "; the signer is not on a trust list" if c2pa.trusted is False else ""
        when = f" on {c2pa.signed_at}" if c2pa.signed_at else ""
        return [Flag(code="c2pa-valid", severity="info", message=(
            f"C2PA content credentials are valid: signed by {who}{issuer}{when}{tool}{trust}. "
            "They say who signed these bytes, not that what they show is true."
        ))]
    if c2pa.state == "invalid":
        issues = "; ".join(c2pa.validation_issues[:3])
        return [Flag(code="c2pa-invalid", severity="warning", message=(
            "The C2PA content credentials are INVALID: the file was changed after it was signed, or the "
            f"signature is broken ({issues or c2pa.summary})."
        ))]
    if c2pa.state == "unreadable":
        return [Flag(code="c2pa-unreadable", severity="warning", message=(
            f"The file carries C2PA data that cannot be read ({c2pa.summary})."
        ))]
    return [Flag(code="c2pa-absent", severity="info", message=(
        "No C2PA content credentials. Most videos have none (platforms and editors drop them), so their "
        "absence proves nothing."
    ))]


def _probe_flags(info: ProbeInfo, source: SourceInfo) -> list[Flag]:
    """The probe's own notes (header disagreements, joined parts, damage), as flags: reused, not re-derived."""
    flags: list[Flag] = []
    for note in info.notes:
        joined = "start again" in note
        flags.append(Flag(
            code="joined-parts" if joined else "probe-note",
            severity="warning" if joined else "info",
            message=note[:1].upper() + note[1:].rstrip(".") + ".",
        ))
    listed = source.duration_s
    actual = info.content_duration_s
    if listed and actual and abs(listed - actual) > max(DURATION_TOLERANCE_S, 0.05 * listed):
        flags.append(Flag(code="duration-differs", severity="info", message=(
            f"The platform lists the video as {listed:.0f} s long, but the file lasts {actual:.1f} s."
        )))
    return flags


def _facts(provenance: Provenance, source: SourceInfo, info: ProbeInfo) -> list[Fact]:
    c2pa = provenance.c2pa
    upload = parse_upload_date(source.upload_date)
    camera = " ".join(part for part in (provenance.make, provenance.model) if part).strip()
    rows: list[tuple[str, str | None]] = [
        ("Source", source.webpage_url or source.url or source.filename or source.kind),
        ("Platform", source.extractor),
        ("Uploader", source.uploader or source.channel),
        ("Upload date", upload.isoformat() if upload else source.upload_date),
        ("Title", source.title),
        ("Fetched at", source.fetched_at),
        ("SHA-256", provenance.sha256),
        ("Size", f"{provenance.size_bytes / 1e6:.1f} MB"),
        ("Container", provenance.container),
        ("Video", f"{info.video_codec} {info.width}x{info.height}" + (f" at {info.fps:.3g} fps" if info.fps else "")),
        ("Audio", f"{info.audio_codec}, {info.audio_channels} channel(s)" if info.has_audio else "none"),
        ("Duration", f"{info.content_duration_s:.2f} s"),
        ("Creation time", provenance.creation_time),
        ("Camera", camera or None),
        ("Software", provenance.software),
        ("Encoder", provenance.encoder),
        ("Video encoder", provenance.video_encoder),
        ("Location", provenance.location),
        ("C2PA", c2pa.summary),
        ("C2PA signer", c2pa.signer),
        ("C2PA issuer", c2pa.issuer),
        ("C2PA signed at", c2pa.signed_at),
        ("C2PA made with", c2pa.claim_generator),
    ]
    return [Fact(label=label, value=str(value)) for label, value in rows if value]


def provenance_evidence(provenance: Provenance, source: SourceInfo, info: ProbeInfo) -> ProvenanceEvidence:
    """The provenance panel and its flags, from what the pipeline stored (no file is read)."""
    flags = [
        *_c2pa_flags(provenance),
        *_time_flags(provenance, source),
        *_writer_flags(provenance, source),
        *_probe_flags(info, source),
    ]
    if provenance.location:
        flags.append(Flag(code="location", severity="info", message=(
            f"The file carries a location tag ({provenance.location[:60]}): where the device says it was recorded."
        )))
    flags.sort(key=lambda flag: flag.severity != "warning")  # warnings first, otherwise in order
    return ProvenanceEvidence(c2pa=provenance.c2pa, flags=flags, facts=_facts(provenance, source, info))
