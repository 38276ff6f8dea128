"""The moments a judgement rests on, each with one frame a person can look at (and print).

The local loop cites spans through its glue (the last round that named any); Gemini lists the spans
its answer rests on, each with what is seen or heard there. Each span gets the frame at its middle,
from the sanitized video (square pixels, its true time), kept as a JPEG in the report's folder.
"""

from __future__ import annotations

import re
from pathlib import Path

from PIL import Image

from core.analysis.factcheck.report import CitedMoment, Judgement
from core.config import Settings
from core.media.pipeline import MediaAsset
from core.media.scratch import temporary_name
from core.models.base import AnalysisResult

MAX_MOMENTS = 12
FRAME_PIXELS = 384 * 28 * 28  # about 540x540: enough to see, small enough to embed in an HTML report
_NOTE = re.compile(r"^(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?) s: (.+)$", re.S)


def cited_moments(result: AnalysisResult) -> list[CitedMoment]:
    """The spans the result's answer rests on, with what the engine said of each when it did."""
    for record in reversed(result.rounds):
        if not record.segments:
            continue
        said = {}
        for note in record.parse_notes:
            match = _NOTE.match(note)
            if match:
                said[(float(match.group(1)), float(match.group(2)))] = match.group(3).strip()
        moments = []
        for segment in record.segments[:MAX_MOMENTS]:
            what = said.get((segment.start_s, segment.end_s), "")
            moments.append(CitedMoment(start_s=segment.start_s, end_s=segment.end_s, what=what))
        return moments
    return []


def keep_frames(judgement: Judgement, asset: MediaAsset, settings: Settings, folder: Path) -> None:
    """Give each cited moment the frame at its middle, written once per time into `folder`."""
    if not judgement.moments:
        return
    source = asset.frames(settings)
    folder.mkdir(parents=True, exist_ok=True)
    for moment in judgement.moments:
        index = source.index.nearest((moment.start_s + moment.end_s) / 2)
        seconds = source.index.seconds(index)
        name = f"frame-{index:06d}.jpg"
        target = folder / name
        if not target.exists():
            sample = source.sample_indices([index], max_pixels=FRAME_PIXELS)
            staging = temporary_name(target)
            Image.fromarray(sample.frames[0]).save(staging, format="JPEG", quality=88)
            staging.replace(target)
        moment.frame_s = round(seconds, 3)
        moment.frame_file = f"frames/{name}"
