"""A fact-check report as plain text, for the terminal (`vchat factcheck`)."""

from __future__ import annotations

from core.analysis.factcheck.checks import CAVEAT
from core.analysis.factcheck.report import FactCheckReport, HumanRating, Judgement
from core.analysis.factcheck.signals import signals_for
from core.media.describe import summary
from core.media.forensics import Evidence
from core.media.pipeline import InspectedMedia


def judgement_line(judgement: Judgement) -> str:
    """`engine: band evidence of manipulation` or what stopped it, in one line."""
    if judgement.state == "judged":
        return f"{judgement.engine}: {judgement.band} evidence"
    return f"{judgement.engine}: {judgement.state} ({judgement.reason})"


def _keyframes(evidence: Evidence) -> list[str]:
    keyframes = evidence.shots.keyframes
    if not keyframes:
        return []
    lines = ["", "Keyframes (one per shot; vChat uploads none of them: reverse-search them yourself):"]
    lines += [f"  shot {frame.shot} at {frame.time_s:.2f} s: {frame.path}" for frame in keyframes]
    for thumbnail in evidence.shots.thumbnails:
        lines.append(f"  the platform's thumbnail {thumbnail.url}")
        lines += [f"    {link.engine}: {link.url}" for link in thumbnail.search_links]
    return lines


def evidence_text(media: InspectedMedia, evidence: Evidence) -> str:
    """The evidence measured without a model, for the terminal (`vchat factcheck --measure-only`)."""
    lines = ["Source:"]
    lines += [f"  {name}: {value}" for name, value in summary(media) if value not in (None, "")]
    lines += ["", "What the file says about itself:"]
    lines += [f"  {'!' if flag.severity == 'warning' else '-'} {flag.message}" for flag in evidence.provenance.flags]
    for check, title in (("visual", "Pictures"), ("audio", "Sound")):
        lines += ["", f"{title}, measured without a model:"]
        lines += [f"  - {line}" for line in signals_for(check, evidence, media)]  # type: ignore[arg-type]
    lines += _keyframes(evidence)
    lines += [f"note: {note}" for note in evidence.notes]
    lines += ["", "No model was asked: the checks and a suggested rating need `vchat factcheck` (no --measure-only)."]
    return "\n".join(lines)


def report_text(report: FactCheckReport, rating: HumanRating | None = None) -> str:
    lines = ["Source:"]
    lines += [f"  {name}: {value}" for name, value in summary(report.media) if value not in (None, "")]
    if rating is not None:
        lines += ["", f"A person's rating: {rating.rating} (by {rating.name}, {rating.at})"]
        if rating.note:
            lines.append(f"  {rating.note}")
    overall = report.overall
    lines += ["", f"Suggested rating (a suggestion for a person, not a verdict): {overall.suggested}"]
    lines += [f"  - {reason}" for reason in overall.reasons]
    lines += [f"  ! engines disagree: {item}" for item in overall.disagreements]
    for check in report.checks:
        lines += ["", f"{check.title}:"]
        for judgement in check.judgements:
            lines.append(f"  {judgement_line(judgement)}")
            if judgement.rationale:
                lines.append(f"    {judgement.rationale}")
            for moment in judgement.moments:
                what = f": {moment.what}" if moment.what else ""
                lines.append(f"    {moment.start_s:.1f}-{moment.end_s:.1f} s{what}")
            for claim in judgement.claims:
                at = f"{claim.start_s:.1f} s" if claim.start_s is not None else "?"
                shows = f" (the video shows: {claim.video_shows})" if claim.video_shows else ""
                lines.append(f"    claim at {at}, {claim.who or 'unnamed'}: {claim.claim}{shows}")
        if check.signals:
            lines.append("  measured without a model:")
            lines += [f"    - {signal}" for signal in check.signals]
    warnings = report.evidence.provenance.warnings
    if warnings:
        lines += ["", "The file's metadata:", *[f"  ! {flag.message}" for flag in warnings]]
    lines += _keyframes(report.evidence)
    if report.notes:
        lines += ["", *[f"note: {note}" for note in report.notes]]
    lines += ["", CAVEAT]
    return "\n".join(lines)
