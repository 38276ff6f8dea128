"""How the answer was reached: one detail view per round (what the model saw, thought and said),
and, for an engine that watched the video itself (Gemini), its reasoning without frame jargon."""

from __future__ import annotations

import streamlit as st

from core.analysis.perception import annotate_times
from core.models.base import AnalysisResult, RoundRecord
from ui.feedback import plain, show_caption
from ui.result_text import bullets, items, plural, spans


def watched_itself(record: RoundRecord) -> bool:
    """A round of an engine that took the whole video (no frames sampled here)."""
    return not record.frame_timestamps and not record.frame_indices


def engine_label(result: AnalysisResult) -> str:
    return "Gemini" if result.gemini is not None else result.model.backend


def render_rounds(result: AnalysisResult, duration_s: float) -> None:
    """The local rounds (if any), then the rounds of an engine that watched the video itself."""
    looked = [record for record in result.rounds if not watched_itself(record)]
    itself = [record for record in result.rounds if watched_itself(record)] + result.gemini_rounds
    if not looked and not itself:
        return
    name = engine_label(result)
    st.subheader("Rounds" if looked else f"How {name} answered")
    for record in looked:
        frames = plural(len(record.frame_timestamps), "frame")
        label = f"Round {record.round} of {len(looked)}: {record.sampling}, {frames}, segments {spans(record.segments)}"
        label += " (cut off)" if record.truncated else ""
        with st.expander(label, expanded=False):
            _texts(record, duration_s)
            st.markdown(plain(bullets(frame_facts(record))))
            _notes_and_prompt(record)
    for record in itself:
        label = f"{name}'s answer (it watched the video itself): cites {spans(record.segments)}"
        with st.expander(plain(label), expanded=False):
            _texts(record, duration_s)
            st.markdown(plain(bullets(watched_facts(record))))
            _notes_and_prompt(record)


def _texts(record: RoundRecord, duration_s: float) -> None:
    st.markdown("**Reasoning**")
    st.markdown(plain(annotate_times(record.reasoning or "", record, duration_s)) or "*(none given)*")
    st.markdown("**Answer in this round**" if not watched_itself(record) else "**Answer**")
    st.markdown(plain(annotate_times(record.answer or "", record, duration_s)) or "*(none given)*")
    if record.next_round:
        show_caption(f"Next: {record.next_round}.")


def frame_facts(record: RoundRecord) -> list[tuple[str, object]]:
    """What a round of the perception loop saw and cited, every value whole."""
    return [
        ("glue as written", record.glue if record.glue is not None else "-"),
        ("glue read as", "seconds of the video" if record.glue_time == "video" else "times on the model's axis"),
        ("segments cited (video time)", spans(record.segments)),
        ("periods these frames favour", spans(record.sampled_segments).replace("none", "none (uniform)")),
        ("frames at (s)", ", ".join(f"{t:.2f}" for t in record.frame_timestamps)),
        ("sampled fps", f"{record.sampled_fps:.3f}"),
        ("seconds per temporal step", f"{record.second_per_grid_t:.3f}" if record.second_per_grid_t else "-"),
        ("largest departure from a uniform grid", f"{record.uniformity_departure_s:.2f} s"),
        ("frames decoded", str(record.decoded_frames)),
        ("tokens in / out", f"{record.tokens_in} / {record.tokens_out}"),
        ("time", f"{record.seconds:.2f} s"),
    ]


def watched_facts(record: RoundRecord) -> list[tuple[str, object]]:
    """What an engine that watched the whole video was given and cited."""
    return [
        ("how it saw the video", record.sampling),
        ("segments cited (video time)", spans(record.segments)),
        ("tokens in / out", f"{record.tokens_in} / {record.tokens_out}"),
        ("time", f"{record.seconds:.2f} s"),
    ]


def _notes_and_prompt(record: RoundRecord) -> None:
    for dropped in record.dropped_segments:
        show_caption(f"Dropped segment {dropped.text!r}: {dropped.reason}")
    if watched_itself(record) and record.parse_notes:  # its evidence, as it described each span
        st.markdown("**Evidence it gave**")
        st.markdown(plain(items(record.parse_notes)))
    else:
        for note in record.parse_notes:
            show_caption(note)
    st.markdown("**Prompt**")
    st.code(record.prompt, language="text", wrap_lines=True)
    st.markdown("**Raw output**")
    st.code(record.raw_output, language="text", wrap_lines=True)
