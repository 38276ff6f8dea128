"""The Gemini digest of a video: summary, scenes, transcript, on-screen text, claims, audio notes.

One schema-checked Gemini call, cached per (video sha256, model, settings). Linked mode
gives a trimmed text of it to the local model as context.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from pydantic import BaseModel, Field, ValidationError

from core.analysis.spans import check_span
from core.config import Settings
from core.media.pipeline import MediaAsset
from core.media.storage import atomic_write_json, read_json, settings_key
from core.models.base import GeminiUsage
from core.models.gemini.engine import GeminiEngine

DIGEST_VERSION = 1  # bump when the prompt or the schema changes: old cached digests are not reused
CHARS_PER_TOKEN = 4  # rough, for trimming the context text to a token budget

DIGEST_PROMPT = """Digest this video for a fact-checker. Watch all of it and listen to its audio.
Times are seconds from the start of the video.
- summary: what the video shows and says, in a few sentences.
- language: the main spoken language (or "none").
- scenes: consecutive shots or scenes with start_s, end_s and a short description.
- transcript: the speech, line by line, with start_s, end_s, the speaker (name if shown or said, \
else "speaker 1", "voice-over"...), and the words as spoken (translated to English in brackets if not English).
- on_screen_text: captions, titles, signs and chyrons, with start_s, end_s.
- claims: factual claims made in the video, with start_s, who makes them, and the claim.
- audio_notes: music, voice-over, silence, and anything where the sound does not match the picture, \
with start_s, end_s, kind (music | voice-over | silence | mismatch | other) and a note.
Leave a list empty when there is nothing for it; do not invent."""


class Scene(BaseModel):
    start_s: float
    end_s: float
    description: str


class SpeechLine(BaseModel):
    start_s: float
    end_s: float
    speaker: str
    text: str


class ScreenText(BaseModel):
    start_s: float
    end_s: float
    text: str


class Claim(BaseModel):
    start_s: float
    speaker: str
    claim: str


class AudioNote(BaseModel):
    start_s: float
    end_s: float
    kind: str
    note: str


class VideoDigest(BaseModel):
    """What Gemini must return (sent as response_schema)."""

    summary: str
    language: str
    scenes: list[Scene] = Field(default_factory=list)
    transcript: list[SpeechLine] = Field(default_factory=list)
    on_screen_text: list[ScreenText] = Field(default_factory=list)
    claims: list[Claim] = Field(default_factory=list)
    audio_notes: list[AudioNote] = Field(default_factory=list)


class DigestRecord(BaseModel):
    """A stored digest and what it came from."""

    digest: VideoDigest
    media_sha256: str
    model: str
    settings_key: str
    created_at: str
    seconds: float
    usage: GeminiUsage
    notes: list[str] = Field(default_factory=list)  # items dropped for impossible times
    reused: bool = False


def digest_key(settings: Settings, model: str) -> str:
    return settings_key({"v": DIGEST_VERSION, "model": model, "resolution": settings.gemini_media_resolution})


def _clean_times(digest: VideoDigest, duration_s: float) -> list[str]:
    """Drop items whose times cannot be in the video; clip ends to its end. Returns notes."""
    notes: list[str] = []
    for field in ("scenes", "transcript", "on_screen_text", "audio_notes"):
        kept = []
        for item in getattr(digest, field):
            segment, reason = check_span(item.start_s, item.end_s, duration_s)
            if segment is None:
                notes.append(f"{field}: dropped an item at {item.start_s:g}-{item.end_s:g} s ({reason})")
                continue
            item.end_s = segment.end_s
            kept.append(item)
        setattr(digest, field, sorted(kept, key=lambda item: item.start_s))
    claims = [claim for claim in digest.claims if 0 <= claim.start_s < duration_s]
    if len(claims) < len(digest.claims):
        notes.append(f"claims: dropped {len(digest.claims) - len(claims)} with a time outside the video")
    digest.claims = sorted(claims, key=lambda claim: claim.start_s)
    return notes


def get_digest(
    asset: MediaAsset,
    settings: Settings,
    api_key: str | None = None,
    model: str | None = None,
    refresh: bool = False,
) -> DigestRecord:
    """The digest of `asset`, from the cache unless `refresh` (or made now with one Gemini call)."""
    engine = GeminiEngine(settings, api_key)
    client = engine.client(model=model)
    key = digest_key(settings, client.model)
    path = settings.data_dir / "digests" / asset.sha256 / f"{key}.json"
    stored = None if refresh else read_json(path)
    if stored:
        try:
            record = DigestRecord(**stored)
        except ValidationError:  # written by another version: ask again
            record = None
        if record is not None:
            record.reused = True
            return record
    started = time.perf_counter()
    usage = GeminiUsage(model=client.model)
    with engine.video(client, asset.sanitized_path, asset.sha256, usage) as video:
        digest, _ = engine.ask(client, [video.part, DIGEST_PROMPT], "for the digest", usage, VideoDigest)
    notes = _clean_times(digest, asset.probe.duration_s)
    record = DigestRecord(
        digest=digest,
        media_sha256=asset.sha256,
        model=client.model,
        settings_key=key,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        seconds=round(time.perf_counter() - started, 3),
        usage=usage,
        notes=notes,
    )
    atomic_write_json(path, record.model_dump(mode="json"), indent=2)
    return record


def digest_context(digest: VideoDigest, token_budget: int) -> str:
    """The digest as plain text for the local model: summary, scenes, then speech, trimmed to the budget."""
    budget = token_budget * CHARS_PER_TOKEN
    lines = [f"Summary: {digest.summary.strip()}"]
    lines += ["Scenes:"] + [f"- {s.start_s:.1f}-{s.end_s:.1f} s: {s.description.strip()}" for s in digest.scenes]
    lines += ["Speech:"] + [f"- {t.start_s:.1f} s, {t.speaker.strip()}: {t.text.strip()}" for t in digest.transcript]
    if digest.on_screen_text:
        lines += ["On-screen text:"] + [f"- {t.start_s:.1f} s: {t.text.strip()}" for t in digest.on_screen_text]
    kept: list[str] = []
    used = 0
    for line in lines:
        if used + len(line) + 1 > budget:
            kept.append(f"[… {len(lines) - len(kept)} more lines left out to fit {token_budget} tokens]")
            break
        kept.append(line)
        used += len(line) + 1
    return "\n".join(kept)
