"""A fact-check report as one HTML file that stands on its own: it opens offline, loads nothing from
the network (a Content-Security-Policy allows only the images embedded in it), runs no script, and
shows every text from outside (titles, uploaders, model answers, claims) escaped, as text.

Frames and keyframes are embedded as data: URIs. Links (reverse image search of a platform's public
thumbnail) are plain anchors: nothing is fetched unless a reader follows one.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from core.analysis.factcheck.checks import CAVEAT
from core.analysis.factcheck.jsonld import review_markup
from core.analysis.factcheck.report import CheckReport, FactCheckReport, HumanRating, Judgement
from core.analysis.factcheck.store import StoredReport
from core.media.describe import summary
from core.media.forensics import Thumbnail
from core.media.storage import atomic_write_bytes

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; color: #1c2430; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #dde3ea; }
.card { border: 1px solid #dde3ea; border-radius: 6px; padding: .8em 1em; margin: .8em 0; }
.band { font-weight: 600; padding: .1em .5em; border-radius: 4px; background: #eef2f6; }
.band.strong, .band.very-strong { background: #fbe3e3; } .band.moderate { background: #fdf1d8; }
.muted { color: #5b6675; font-size: .92em; } .warn { color: #8a4b00; }
figure { display: inline-block; margin: .3em; text-align: center; }
figure img { max-width: 260px; display: block; }
table { border-collapse: collapse; } td, th { border: 1px solid #dde3ea; padding: .3em .5em; vertical-align: top; }
pre { white-space: pre-wrap; background: #f3f5f8; padding: .6em; }
"""
POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _t(value: object) -> str:
    return escape(str(value), quote=True)


def _image(path: Path, caption: str) -> str:
    try:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError:
        return f"<figure><figcaption>{_t(caption)} (frame missing)</figcaption></figure>"
    return (
        f'<figure><img alt="{_t(caption)}" src="data:image/jpeg;base64,{data}">'
        f"<figcaption>{_t(caption)}</figcaption></figure>"
    )


def _judgement(judgement: Judgement, folder: Path) -> str:
    if judgement.state == "judged":
        css = (judgement.band or "").replace(" ", "-")
        head = f'<span class="band {css}">{_t(judgement.band)} evidence</span>'
    else:
        reason = f' <span class="muted">{_t(judgement.reason or "")}</span>'
        head = f'<span class="band">{_t(judgement.state)}</span>{reason}'
    parts = [f"<div class='card'><strong>{_t(judgement.engine)}</strong> ({_t(judgement.model)}): {head}"]
    if judgement.rationale:
        parts.append(f"<p>{_t(judgement.rationale)}</p>")
    for moment in judgement.moments:
        what = f": {moment.what}" if moment.what else ""
        text = f"{moment.start_s:.1f}-{moment.end_s:.1f} s{what}"
        if moment.frame_file:
            parts.append(_image(folder / moment.frame_file, f"{text} (frame at {moment.frame_s:.2f} s)"))
        else:
            parts.append(f"<p>{_t(text)}</p>")
    if judgement.claims:
        rows = "".join(
            f"<tr><td>{_t(f'{c.start_s:.1f} s' if c.start_s is not None else '?')}</td><td>{_t(c.who)}</td>"
            f"<td>{_t(c.claim)}</td><td>{_t({True: 'yes', False: 'no'}.get(c.checkable, '?'))}</td>"
            f"<td>{_t(c.video_shows)}</td><td>{_t(c.search)}</td></tr>"
            for c in judgement.claims
        )
        parts.append(
            "<table><tr><th>at</th><th>who</th><th>claim</th><th>checkable</th><th>the video shows</th>"
            f"<th>search</th></tr>{rows}</table>"
        )
    if judgement.raw_answer:
        parts.append(f"<p class='muted'>The answer as given:</p><pre>{_t(judgement.raw_answer)}</pre>")
    parts.append("</div>")
    return "".join(parts)


def _check(check: CheckReport, folder: Path) -> str:
    parts = [f"<h2>{_t(check.title)}</h2>"]
    if check.disagreement:
        parts.append(f"<p class='warn'>The engines disagree: {_t(check.disagreement)}</p>")
    parts += [_judgement(j, folder) for j in check.judgements]
    if check.signals:
        items = "".join(f"<li>{_t(s)}</li>" for s in check.signals)
        parts.append(f"<p class='muted'>Measured without a model:</p><ul>{items}</ul>")
    parts.append(f"<p class='muted'>{_t(check.caveat)}</p>")
    return "".join(parts)


def _rating(rating: HumanRating | None) -> str:
    if rating is None:
        return "<p class='muted'>No person has rated this video yet.</p>"
    note = f"<p>{_t(rating.note)}</p>" if rating.note else ""
    claim = f"<p class='muted'>Claim reviewed: {_t(rating.claim)}</p>" if rating.claim else ""
    who = f"by {_t(rating.name)}, {_t(rating.at)}"
    return f"<div class='card'><strong>A person's rating: {_t(rating.rating)}</strong> {who}{note}{claim}</div>"


def _search_links(thumbnail: Thumbnail) -> str:
    anchors = [f'<a href="{_t(link.url)}" rel="noreferrer">{_t(link.engine)}</a>' for link in thumbnail.search_links]
    return ", ".join(anchors)


def report_html(stored: StoredReport) -> str:
    """The whole report as one HTML page (see the module's docstring for what it may and may not do)."""
    report: FactCheckReport = stored.report
    facts = [(name, value) for name, value in summary(report.media) if value not in (None, "")]
    source_rows = "".join(f"<tr><th>{_t(name)}</th><td>{_t(value)}</td></tr>" for name, value in facts)
    overall = report.overall
    reasons = "".join(f"<li>{_t(r)}</li>" for r in overall.reasons)
    disagreements = "".join(f"<li class='warn'>{_t(d)}</li>" for d in overall.disagreements)
    shots = report.evidence.shots
    keyframes = "".join(_image(Path(f.path), f"shot {f.shot}, {f.time_s:.2f} s") for f in shots.keyframes)
    links = "".join(f"<li>{_t(thumbnail.url)}: {_search_links(thumbnail)}</li>" for thumbnail in shots.thumbnails)
    markup = review_markup(report, stored.rating) if stored.rating else None
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">',
        "<meta name='referrer' content='no-referrer'>",
        f"<title>vChat fact-check report {_t(report.media.sha256[:12])}</title><style>{STYLE}</style></head><body>",
        "<h1>Fact-check report</h1>",
        f"<p class='muted'>Made by vChat on {_t(report.created_at)} with {_t(', '.join(report.engines))}.</p>",
        f"<h2>Source</h2><table>{source_rows}</table>",
        "<h2>Rating</h2>",
        _rating(stored.rating),
        "<div class='card'><strong>Suggested rating (a suggestion for a person, not a verdict): "
        f"{_t(overall.suggested)}</strong>",
        f"<ul>{reasons}{disagreements}</ul></div>",
        *[_check(check, stored.folder) for check in report.checks],
        "<h2>Keyframes</h2>",
        "<p class='muted'>One frame per shot, from this copy of the video. vChat uploads none of them anywhere: "
        "to search for earlier copies, save one and upload it to a reverse image search yourself.</p>",
        keyframes or "<p>No keyframes.</p>",
        f"<h2>Public thumbnails</h2><ul>{links}</ul>" if links else "",
        f"<h2>Notes</h2><ul>{''.join(f'<li>{_t(n)}</li>' for n in report.notes)}</ul>" if report.notes else "",
        f"<h2>schema.org markup of the person's rating</h2><pre>{_t(_json(markup))}</pre>" if markup else "",
        f"<p class='muted'>{_t(CAVEAT)}</p>",
        "</body></html>",
    ]
    return "".join(parts)


def _json(value: object) -> str:
    import json

    return json.dumps(value, indent=2, ensure_ascii=False)


def write_html(stored: StoredReport, path: Path) -> None:
    """The report's HTML, written atomically to `path`."""
    atomic_write_bytes(path, report_html(stored).encode("utf-8"))
