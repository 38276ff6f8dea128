"""A fact-check report as plain text, for the terminal (`vchat factcheck`)."""

from __future__ import annotations

from core.analysis.factcheck.checks import CAVEAT
from core.analysis.factcheck.report import FactCheckReport, HumanRating, Judgement
from core.media.describe import summary


def judgement_line(judgement: Judgement) -> str:
    """`engine: band evidence of manipulation` or what stopped it, in one line."""
    if judgement.state == "judged":
        return f"{judgement.engine}: {judgement.band} evidence"
    return f"{judgement.engine}: {judgement.state} ({judgement.reason})"


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
    keyframes = report.evidence.shots.keyframes
    if keyframes:
        lines += ["", "Keyframes (one per shot; vChat uploads none of them: reverse-search them yourself):"]
        lines += [f"  shot {frame.shot} at {frame.time_s:.2f} s: {frame.path}" for frame in keyframes]
    if report.notes:
        lines += ["", *[f"note: {note}" for note in report.notes]]
    lines += ["", CAVEAT]
    return "\n".join(lines)
