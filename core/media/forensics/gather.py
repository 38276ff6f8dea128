"""`gather_evidence`: the deterministic evidence about one prepared video, stored in the media store.

Stored per bytes under `forensics/<key>.json` (key: FORENSICS_VERSION and the sanitized file's
settings key), the keyframe JPEGs in `forensics/<key>-keyframes/`. The JPEGs are written first and
the JSON last (each atomically), so a reader finds a complete record or none. Provenance flags are
computed afresh on every call: they depend on where the bytes came from (the upload date, the URL),
not only on the bytes.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from pydantic import ValidationError

from core.config import Settings
from core.media.forensics.audio import audio_evidence
from core.media.forensics.flags import provenance_evidence
from core.media.forensics.links import SEARCH_NOTE, thumbnails
from core.media.forensics.models import Evidence, VisualEvidence
from core.media.forensics.scan import scan_sanitized
from core.media.forensics.shots import MAX_SHOTS, build_shots
from core.media.forensics.visual import frame_rate_signal, frozen_and_black, gap_signal, picture_signal, read_stream
from core.media.frames import load_frame_index
from core.media.pipeline import MediaAsset
from core.media.storage import MediaStore, atomic_write_json, read_json, settings_key
from core.progress import ProgressFn, no_progress

FORENSICS_VERSION = 1  # bump when what is measured or how changes: stored evidence of older versions is redone


def evidence_key(asset: MediaAsset) -> str:
    return settings_key({"version": FORENSICS_VERSION, "sanitized": asset.sanitized.settings_key, "shots": MAX_SHOTS})


def _paths(asset: MediaAsset, settings: Settings) -> tuple[str, Path, Path]:
    key = evidence_key(asset)
    folder = MediaStore(settings).result_path(asset.sha256, "forensics")
    return key, folder / f"{key}.json", folder / f"{key}-keyframes"


def _stored(record: Path) -> Evidence | None:
    data = read_json(record)
    if not data:
        return None
    try:
        evidence = Evidence(**data)
    except ValidationError:
        return None
    if not all(Path(frame.path).is_file() for frame in evidence.shots.keyframes):
        return None
    return evidence


def _notes(asset: MediaAsset) -> list[str]:
    notes = ["Shots, frozen and black stretches are timed on the sanitized video; audio and stream signals on the "
             "original's; the two axes agree unless a note below says otherwise."]  # fmt: skip
    plan = asset.sanitized.plan
    if plan.trim_to_s:
        notes.append(f"The sanitized video stops at {plan.trim_to_s:g} s (the duration cap): shots and picture signals "
                     "cover only that part; audio and stream signals cover the whole original.")  # fmt: skip
    if asset.probe.timestamp_resets or asset.probe.raw_stream:
        notes.append("The original's timestamps were rebuilt for the sanitized copy (they restart or are missing): "
                     "its times and the original's may not line up.")  # fmt: skip
    return notes


def gather_evidence(asset: MediaAsset, settings: Settings, progress: ProgressFn | None = None) -> Evidence:
    """The evidence that needs no model about `asset` (shots and keyframes, audio and picture signals,
    provenance flags), read back from the media store when it is there (`reused=True`)."""
    report = progress or no_progress
    provenance = provenance_evidence(asset.provenance, asset.source, asset.probe)
    key, record, folder = _paths(asset, settings)
    stored = _stored(record)
    if stored is not None:
        report("evidence", "evidence read back from the media store", 1.0)
        stored.shots.thumbnails = thumbnails(asset.source.thumbnails)  # like provenance: per source, not per bytes
        return stored.model_copy(update={"provenance": provenance, "reused": True})

    started = time.perf_counter()
    stages: dict[str, float] = {}
    sanitized, original, info = Path(asset.sanitized.path), Path(asset.original_path), asset.probe
    index = load_frame_index(sanitized)
    total = index.duration_s

    def on_read(seconds: float) -> None:
        report(
            "evidence", f"shots: {seconds:.0f} of {total:.0f} s", min(seconds / total, 1.0) * 0.75 if total else None
        )

    def timed(name: str, work):  # type: ignore[no-untyped-def]
        began = time.perf_counter()
        try:
            return work()
        finally:
            stages[name] = round(time.perf_counter() - began, 3)

    report("evidence", f"shots: 0 of {total:.0f} s", 0.0)
    finder, log = timed("scan", lambda: scan_sanitized(sanitized, index, settings, on_read))
    report("evidence", "keyframes", 0.75)
    shots = timed("keyframes", lambda: build_shots(sanitized, index, finder, folder, MAX_SHOTS))
    report("evidence", "visual signals", 0.8)
    frozen, black = frozen_and_black(log, index)
    facts = timed("stream", lambda: read_stream(original, info))
    report("evidence", "audio signals", 0.85)
    audio = timed("audio", lambda: audio_evidence(original, info, settings))
    visual = VisualEvidence(frozen=frozen, black=black, picture_changes=picture_signal(facts),
                            frame_rate_changes=frame_rate_signal(facts), timestamp_gaps=gap_signal(facts))  # fmt: skip
    shots.thumbnails = thumbnails(asset.source.thumbnails)
    shots.search_note = SEARCH_NOTE
    evidence = Evidence(
        version=FORENSICS_VERSION,
        sha256=asset.sha256,
        key=key,
        duration_s=round(index.duration_s, 6),
        frames=index.count,
        fps=round(index.fps, 6),
        width=index.width,
        height=index.height,
        provenance=provenance,
        shots=shots,
        audio=audio,
        visual=visual,
        notes=_notes(asset),
        stage_seconds=stages,
        seconds=round(time.perf_counter() - started, 3),
        computed_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    atomic_write_json(record, evidence.model_dump(mode="json"))  # last: the record exists only when complete
    report("evidence", "evidence measured", 1.0)
    return evidence
