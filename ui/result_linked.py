"""Linked mode's own parts of a result: the two answers side by side, each under its model's name
with the moments it cites, how their agreement was judged; and Gemini's digest of the video
(summary, claims, transcript with times, on-screen text, audio notes) that the local model was given."""

from __future__ import annotations

import streamlit as st
from pydantic import ValidationError

from core.analysis.digest import DigestRecord
from core.analysis.linked import VERDICTS, answer_names, judged
from core.analysis.perception import annotate_times
from core.analysis.runner import AnalysisRun
from core.models.base import AnalysisResult
from ui.feedback import md, plain, show_caption, show_info, show_success, show_warning
from ui.result_text import items, spans

LONG_LIST = 10  # longer lists start folded


def render_comparison(result: AnalysisResult, duration_s: float) -> None:
    """Both answers in two columns headed by the models' names, then the verdict in words."""
    comparison = result.linked
    if comparison is None:
        return
    names = answer_names(result)
    local_answer = comparison.local_answer
    if result.rounds:
        local_answer = annotate_times(local_answer, result.rounds[-1], duration_s)
    answers = (
        (names[0], local_answer, comparison.local_segments),
        (names[1], comparison.gemini_answer, comparison.gemini_segments),
    )
    for column, (name, answer, segments) in zip(st.columns(2), answers, strict=True):
        with column:
            st.markdown(md("**{}**", name))
            with st.container(border=True):
                st.markdown(plain(answer.strip()) or "*(no answer)*")
            show_caption(f"Cites {spans(segments)}" if segments else "Cites no moment of the video")
    verdict = VERDICTS[comparison.agreement]
    if comparison.agreement == "agree":
        show_success(verdict)
    elif comparison.agreement == "unclear":
        show_info(verdict)
    else:
        show_warning(verdict)
    st.markdown(md("**How this was judged:** {}", judged(comparison, names)))
    if comparison.shared_seconds:
        show_caption(f"Both cite {comparison.shared_seconds:.1f} s of the video in common.")


def stored_digest(run: AnalysisRun) -> DigestRecord | None:
    """The digest stored with a linked result (older results have none)."""
    raw = run.data.get("digest")
    if not isinstance(raw, dict):
        return None
    try:
        return DigestRecord.model_validate(raw)
    except ValidationError:
        return None


def render_digest(run: AnalysisRun) -> None:
    record = stored_digest(run)
    if record is None:
        return
    digest = record.digest
    st.subheader("What Gemini saw and heard (its digest)")
    made = f"Made by {record.model} on {record.created_at}" + (" (from the cache)" if record.reused else "")
    show_caption(f"{made}; the local model was given it as context. A model's account of the video, not a record.")
    st.markdown(md("**Summary:** {}", digest.summary.strip()))
    if digest.language:
        st.markdown(md("**Spoken language:** {}", digest.language))
    sections = [
        ("Claims made in the video", [f"{c.start_s:.1f} s, {c.speaker}: {c.claim}" for c in digest.claims]),
        ("Transcript", [f"{t.start_s:.1f}-{t.end_s:.1f} s, {t.speaker}: {t.text}" for t in digest.transcript]),
        ("On-screen text", [f"{t.start_s:.1f}-{t.end_s:.1f} s: {t.text}" for t in digest.on_screen_text]),
        ("Audio notes", [f"{a.start_s:.1f}-{a.end_s:.1f} s, {a.kind}: {a.note}" for a in digest.audio_notes]),
        ("Scenes", [f"{s.start_s:.1f}-{s.end_s:.1f} s: {s.description}" for s in digest.scenes]),
    ]
    for title, lines in sections:
        if not lines:
            continue
        with st.expander(f"{title} ({len(lines)})", expanded=len(lines) <= LONG_LIST):
            st.markdown(plain(items(lines)))
    for note in record.notes:
        show_caption(f"Left out of the digest: {note}")
