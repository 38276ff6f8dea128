"""The three checks a fact-check report holds, what each asks a model, and how an answer is read.

Every check is asked as a question through the one analysis flow (`run_analysis`), so a check is an
ordinary stored result: the local R1.5 loop looks at the video in rounds and cites time spans (its
glue), Gemini watches the whole video and lists the spans its answer rests on. The question asks for
a short form that both engines can keep to:

    BAND: no | weak | moderate | strong | very strong
    RATIONALE: one to three sentences
    CLAIM: START | WHO | CLAIM | CHECKABLE yes/no | WHAT THE VIDEO SHOWS | SEARCH   (credibility)

An answer without a readable BAND line leaves that check "could not be read", its raw text kept.
Bump PROMPT_VERSION when a question changes: stored reports then no longer match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

PROMPT_VERSION = 1

CheckName = Literal["visual", "credibility", "audio"]
Band = Literal["no", "weak", "moderate", "strong", "very strong"]
BANDS: tuple[Band, ...] = ("no", "weak", "moderate", "strong", "very strong")
CAVEAT = (
    "Finding nothing does not prove the video is authentic: a model's reading is a reasoned opinion "
    "with timestamps, not a measurement."
)

FORM = """Answer in exactly this form, in English:
BAND: one of no / weak / moderate / strong / very strong ({meaning})
RATIONALE: one to three sentences saying why, naming the moments (in seconds) it rests on"""

VISUAL = """You are helping a fact-checker decide whether this video was edited or synthesised. Look \
for splices or jump cuts that change the scene or the people, warping or morphing, lighting and \
shadows that do not match, garbled or changing text, faces or hands that look wrong, objects that \
appear or vanish. Judge only what the video shows.
{form}"""

CREDIBILITY = """You are helping a fact-checker. List the factual claims this video makes ({where}). \
For each, say whether it can be checked, and what the video itself shows for or against it. Do not \
judge whether a claim is true in the world: only whether the pictures support it, contradict it, \
or show nothing about it.
{form}
Then one line per claim:
CLAIM: START_SECONDS | WHO MAKES IT | THE CLAIM | CHECKABLE yes or no | WHAT THE VIDEO SHOWS | \
A WEB SEARCH TO CHECK IT"""

AUDIO = """You are helping a fact-checker decide whether this video's sound was edited or \
synthesised. Listen for cuts or splices in speech, a voice that sounds generated or does not match \
the speaker's lips, ambience that changes abruptly, music or noise that starts or stops unnaturally.
{form}"""

MEANINGS = {
    "visual": "how strong the evidence of visual editing or synthesis is",
    "credibility": "how strongly the video's own pictures contradict or fail to support its claims",
    "audio": "how strong the evidence of audio editing or synthesis is",
}
TITLES = {
    "visual": "Visual artifacts",
    "credibility": "Content credibility",
    "audio": "Audio anomalies",
}


def question(check: CheckName, hears_audio: bool) -> str:
    """The question one check asks of a model (`hears_audio`: the engine gets the soundtrack)."""
    form = FORM.format(meaning=MEANINGS[check])
    if check == "visual":
        return VISUAL.format(form=form)
    if check == "audio":
        return AUDIO.format(form=form)
    where = "in its speech and on-screen text" if hears_audio else "in its on-screen text: you cannot hear it"
    return CREDIBILITY.format(where=where, form=form)


class ClaimItem(BaseModel):
    start_s: float | None
    who: str
    claim: str
    checkable: bool | None
    video_shows: str
    search: str


class ReadAnswer(BaseModel):
    """What an answer said in the asked-for form (band None: it could not be read)."""

    band: Band | None = None
    rationale: str = ""
    claims: list[ClaimItem] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


_BAND = re.compile(r"^\W*band\W*[:=]\s*\**\s*(very\s+strong|strong|moderate|weak|no(?:ne)?)\b", re.I | re.M)
_RATIONALE = re.compile(r"^\W*rationale\W*[:=]\s*(.+?)(?=^\W*(?:band|claim|rationale)\W*[:=]|\Z)", re.I | re.M | re.S)
_CLAIM = re.compile(r"^\W*claim\W*[:=]\s*(.+)$", re.I | re.M)


def read_answer(text: str) -> ReadAnswer:
    """The band, rationale and claims in `text` (the model's final answer)."""
    read = ReadAnswer()
    found = _BAND.search(text or "")
    if found is None:
        read.notes.append("The answer has no BAND line in the asked-for form.")
        return read
    word = " ".join(found.group(1).lower().split())
    read.band = "no" if word == "none" else word  # type: ignore[assignment]
    rationale = _RATIONALE.search(text)
    read.rationale = " ".join(rationale.group(1).split()) if rationale else ""
    for line in _CLAIM.findall(text):
        claim = _claim(line)
        if claim is None:
            read.notes.append(f"A CLAIM line could not be read: {line[:120]}")
        else:
            read.claims.append(claim)
    return read


def _claim(line: str) -> ClaimItem | None:
    parts = [part.strip() for part in line.split("|")]
    if len(parts) < 3:
        return None
    parts += [""] * (6 - len(parts))
    start = re.search(r"\d+(?:\.\d+)?", parts[0])
    checkable = {"yes": True, "no": False}.get(parts[3].lower().strip(" ."))
    return ClaimItem(
        start_s=float(start.group()) if start else None,
        who=parts[1],
        claim=parts[2],
        checkable=checkable,
        video_shows=parts[4],
        search=parts[5],
    )


@dataclass(frozen=True)
class NotApplicable:
    reason: str


def applicable(check: CheckName, hears_audio: bool, has_audio: bool) -> NotApplicable | None:
    """Why a model cannot run `check` (None: it can)."""
    if check != "audio":
        return None
    if not has_audio:
        return NotApplicable("not applicable: the original has no audio track")
    if not hears_audio:
        return NotApplicable("not applicable: the local model has no audio input")
    return None
