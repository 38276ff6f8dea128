"""The deterministic evidence, in words: what each check's card lists under "measured without a
model", and the context each check's question is given (so a model can weigh what was measured
instead of guessing at it). Times are seconds of the video, as everywhere in the report."""

from __future__ import annotations

from core.analysis.factcheck.checks import CheckName
from core.media.forensics import Evidence, Signal
from core.media.pipeline import InspectedMedia

MAX_EVENTS_IN_WORDS = 6  # events named per signal; the rest are counted
MAX_CONTEXT_CHARS = 6000  # the digest's share of a check's context


def _span(start_s: float, end_s: float) -> str:
    if abs(end_s - start_s) < 0.05:
        return f"at {start_s:.1f} s"
    return f"{start_s:.1f}-{end_s:.1f} s"


def signal_words(signal: Signal) -> str:
    """One line: the signal's title, its summary and its first events with their times."""
    if not signal.applicable:
        return f"{signal.title}: not applicable ({signal.reason or 'no reason given'})"
    if not signal.events:
        return f"{signal.title}: {signal.summary or 'none found'}"
    shown = "; ".join(
        _span(event.start_s, event.end_s) + (f" ({event.what})" if event.what else "")
        for event in signal.events[:MAX_EVENTS_IN_WORDS]
    )
    more = signal.total - min(len(signal.events), MAX_EVENTS_IN_WORDS)
    rest = f"; and {more} more" if more > 0 else ""
    return f"{signal.title}: {signal.summary} ({shown}{rest})"


def _shots_words(evidence: Evidence) -> list[str]:
    shots = evidence.shots
    if not shots.applicable:
        return [f"Shots: not measured ({shots.reason or 'no reason given'})"]
    cuts = [shot.start_s for shot in shots.shots[1:]]
    listed = ", ".join(f"{seconds:.1f} s" for seconds in cuts[:12])
    more = f" and {len(cuts) - 12} more" if len(cuts) > 12 else ""
    found = f"{len(shots.shots)} shots; cuts at {listed}{more}" if cuts else "1 shot: no cut found"
    return [f"Shots: {found}"]


def _audio_facts(evidence: Evidence) -> list[str]:
    audio = evidence.audio
    if not audio.applicable:
        return [f"Audio: not measured ({audio.reason or 'no audio'})"]
    facts = []
    if audio.integrated_lufs is not None:
        spread = f", loudness range {audio.loudness_range_lu:.1f} LU" if audio.loudness_range_lu is not None else ""
        facts.append(f"Loudness: {audio.integrated_lufs:.1f} LUFS integrated{spread}")
    return facts


def signals_for(check: CheckName, evidence: Evidence, media: InspectedMedia) -> list[str]:
    """The deterministic findings that bear on `check`, one line each."""
    if check == "visual":
        return [*_shots_words(evidence), *(signal_words(signal) for signal in evidence.visual.signals)]
    if check == "audio":
        return [*_audio_facts(evidence), *(signal_words(signal) for signal in evidence.audio.signals)]
    return [flag.message for flag in evidence.provenance.flags if flag.severity == "warning"]


def context_for(check: CheckName, evidence: Evidence, media: InspectedMedia, digest: str | None) -> str:
    """What a check's question is given besides the video: the measured signals, and for the
    credibility check the source's own words and Gemini's digest of the speech and text."""
    lines = ["Measured without a model (times in seconds of the video):"]
    lines += [f"- {line}" for line in signals_for(check, evidence, media)]
    if check == "credibility":
        source = media.source
        said = [(name, value) for name, value in (
            ("title", source.title), ("uploader", source.uploader), ("upload date", source.upload_date),
        ) if value]  # fmt: skip
        if said:
            lines.append("What the source says about itself: " + "; ".join(f"{n}: {v}" for n, v in said))
        if digest:
            lines.append("A digest of the video's speech and on-screen text:")
            lines.append(digest[:MAX_CONTEXT_CHARS])
    return "\n".join(lines)
