"""The fact-check report: what a fact-checker can defend in print.

Deterministic evidence (provenance flags, shots and keyframes, audio and visual signals) that needs
no model; three checks, each judged by the chosen engines with a band, a rationale and time-cited
evidence, or "not applicable" with the reason, or "could not be read" with the raw answer kept; a
suggested overall rating (a suggestion: disagreements are listed, never averaged away); and, beside
the report and never inside it, a person's rating (`HumanRating`).
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, Field

from core.analysis.factcheck.checks import CAVEAT, Band, CheckName, ClaimItem
from core.media.forensics import Evidence
from core.media.pipeline import InspectedMedia

REPORT_VERSION = 1

Rating = Literal[
    "Original",
    "Missing context",
    "Edited or cropped",
    "Transformed",
    "Staged",
    "Satire",
    "Insufficient evidence",
]
RATINGS: tuple[Rating, ...] = get_args(Rating)
JudgementState = Literal["judged", "not applicable", "could not be read", "failed"]


class CitedMoment(BaseModel):
    """A time span an engine's judgement rests on, with the frame shown for it."""

    start_s: float
    end_s: float
    what: str = ""
    frame_s: float | None = None  # the time of the frame kept for it (in the report's frames)
    frame_file: str | None = None  # that frame, a JPEG under the report's folder


class Judgement(BaseModel):
    """One engine's reading of one check."""

    engine: str  # the engine's label, e.g. "VideoChat-R1.5 (local)", "Google Gemini"
    model: str  # the model that answered (name, adapter)
    state: JudgementState
    band: Band | None = None
    rationale: str = ""
    moments: list[CitedMoment] = Field(default_factory=list)
    claims: list[ClaimItem] = Field(default_factory=list)
    reason: str | None = None  # why not applicable, could not be read, or failed
    raw_answer: str | None = None  # kept whenever the form could not be read
    notes: list[str] = Field(default_factory=list)
    result_key: str | None = None  # the stored analysis this judgement was read from
    prompt_version: int
    question: str = ""
    seconds: float = 0.0


class CheckReport(BaseModel):
    name: CheckName
    title: str
    judgements: list[Judgement] = Field(default_factory=list)
    signals: list[str] = Field(default_factory=list)  # the deterministic evidence that bears on it, in words
    disagreement: str | None = None  # engines that banded it differently, said as such
    caveat: str = CAVEAT

    def bands(self) -> list[Band]:
        return [j.band for j in self.judgements if j.state == "judged" and j.band is not None]


class Overall(BaseModel):
    suggested: Rating
    is_suggestion: bool = True
    reasons: list[str] = Field(default_factory=list)
    disagreements: list[str] = Field(default_factory=list)


class FactCheckReport(BaseModel):
    version: int = REPORT_VERSION
    key: str = ""
    created_at: str = ""
    model: str  # what was asked: local, gemini, linked, vllm
    engines: list[str] = Field(default_factory=list)
    media: InspectedMedia
    evidence: Evidence
    checks: list[CheckReport]
    overall: Overall
    digest_summary: str | None = None  # Gemini's summary when it made a digest for the claims
    notes: list[str] = Field(default_factory=list)
    seconds: float = 0.0


class HumanRating(BaseModel):
    """A person's rating, stored beside the report; the machine's record is never changed."""

    rating: Rating
    note: str = ""
    name: str
    claim: str = ""  # the claim the video was shared with, for ClaimReview (optional)
    at: str  # ISO time it was given
