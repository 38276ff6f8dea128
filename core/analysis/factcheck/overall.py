"""The overall rating a report suggests, from its checks and the file's own evidence.

It is a suggestion for a person, in MediaReview's terms, with its reasons: strong evidence of
editing in the pictures or the sound suggests "Edited or cropped" (whether it is "Transformed",
synthetic, a person decides); pictures that contradict the video's own claims suggest "Missing
context"; valid content credentials and nothing found suggest "Original"; anything else is
"Insufficient evidence". "Staged" and "Satire" are never suggested: they need a person. Where
engines disagree, the disagreement is listed, never averaged away.
"""

from __future__ import annotations

from core.analysis.factcheck.checks import BANDS, Band
from core.analysis.factcheck.report import CheckReport, Overall
from core.media.forensics import Evidence
from core.media.pipeline import InspectedMedia

STRONG = BANDS.index("strong")
WEAK = BANDS.index("weak")


def _level(band: Band) -> int:
    return BANDS.index(band)


def disagreement(check: CheckReport) -> str | None:
    """Engines that banded one check two or more steps apart, said as such (None: they agree)."""
    judged = [(j.engine, j.band) for j in check.judgements if j.state == "judged" and j.band is not None]
    if len(judged) < 2:
        return None
    levels = [_level(band) for _, band in judged]
    if max(levels) - min(levels) < 2:
        return None
    return "; ".join(f"{engine} says {band}" for engine, band in judged)


def suggest(checks: list[CheckReport], evidence: Evidence, media: InspectedMedia) -> Overall:
    """The suggested rating, its reasons and the disagreements between engines."""
    reasons: list[str] = []
    disagreements = [f"{c.title}: {c.disagreement}" for c in checks if c.disagreement]
    strongest = {c.name: max((_level(b) for b in c.bands()), default=None) for c in checks}
    edited = [c for c in checks if c.name in ("visual", "audio") and (strongest[c.name] or 0) >= STRONG]
    c2pa = media.provenance.c2pa.state
    if c2pa == "invalid":
        reasons.append("The file's content credentials (C2PA) are invalid: it was changed after it was signed.")
    if edited or c2pa == "invalid":
        for check in edited:
            reasons.append(f"{check.title}: {_strongest_words(check)}.")
        reasons.append("Whether it is Transformed (synthetic) rather than Edited or cropped is for a person to decide.")
        rating = "Edited or cropped"
    elif (strongest["credibility"] or 0) >= STRONG:
        credibility = next(c for c in checks if c.name == "credibility")
        reasons.append(f"{credibility.title}: {_strongest_words(credibility)}.")
        rating = "Missing context"
    elif c2pa == "valid" and all(level is not None and level <= WEAK for level in strongest.values() if level):
        reasons.append("Valid content credentials, and no check found more than weak evidence of manipulation.")
        rating = "Original"
    else:
        found = [f"{c.title}: {_strongest_words(c)}" for c in checks if c.bands()]
        reasons.append(
            "Nothing here is strong enough for another rating"
            + (f" ({'; '.join(found)})." if found else " (no check could be judged).")
        )
        rating = "Insufficient evidence"
    warnings = [flag.message for flag in evidence.provenance.warnings]
    if warnings:
        reasons.append("The file's metadata: " + " ".join(warnings))
    reasons.append("Staged and Satire are never suggested: they need a person's judgement.")
    return Overall(suggested=rating, reasons=reasons, disagreements=disagreements)  # type: ignore[arg-type]


def _strongest_words(check: CheckReport) -> str:
    judged = [j for j in check.judgements if j.state == "judged" and j.band is not None]
    return ", ".join(f"{j.band} evidence ({j.engine})" for j in judged) or "not judged"
