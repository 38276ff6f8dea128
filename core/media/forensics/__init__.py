"""Evidence that needs no model: provenance flags, shots and keyframes, audio and picture signals.

`gather_evidence(asset, settings, progress)` measures a prepared video (core.media.pipeline) and
stores what it found in the media store; `keyframes_zip` packs the keyframes; `search_links` builds
reverse-image-search links for a picture with a public URL. Importing this package is cheap:
OpenCV and PySceneDetect are imported only when shots are measured.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from core.media.forensics.gather import FORENSICS_VERSION, evidence_key, gather_evidence
from core.media.forensics.links import search_links
from core.media.forensics.models import (
    AudioEvidence,
    Event,
    Evidence,
    Fact,
    Flag,
    Keyframe,
    ProvenanceEvidence,
    SearchLink,
    Shot,
    ShotEvidence,
    Signal,
    Thumbnail,
    VisualEvidence,
)


def keyframes_zip(evidence: Evidence) -> bytes:
    """A zip of every keyframe JPEG still in the media store, each under its `filename`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:  # JPEGs do not compress
        for frame in evidence.shots.keyframes:
            path = Path(frame.path)
            if path.is_file():
                archive.write(path, arcname=frame.filename)
    return buffer.getvalue()


__all__ = [
    "FORENSICS_VERSION",
    "AudioEvidence",
    "Event",
    "Evidence",
    "Fact",
    "Flag",
    "Keyframe",
    "ProvenanceEvidence",
    "SearchLink",
    "Shot",
    "ShotEvidence",
    "Signal",
    "Thumbnail",
    "VisualEvidence",
    "evidence_key",
    "gather_evidence",
    "keyframes_zip",
    "search_links",
]
