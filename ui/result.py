"""How an analysis is shown, in the order a fact-checker reads it: the source and its provenance,
the answer (in linked mode, both answers side by side), the evidence (video, timeline, frames), the
digest Gemini made, the rounds, then the JSON download (a record that stands on its own).

Every text that came from a model, a video's metadata or a web page is escaped, or shown in a code
block. Nothing is put in a table with narrow columns: facts are wrapped text, shown whole. Fields a
backend adds to its own result type are shown generically, so a new backend needs no new view.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import streamlit as st

from core.analysis.perception import annotate_times
from core.analysis.runner import AnalysisRun, round_frames
from core.config import Settings
from core.errors import VChatError
from core.media.pipeline import MediaAsset
from core.models.base import AnalysisResult, RoundRecord
from ui.feedback import md, plain, show_caption, show_info, show_warning
from ui.result_linked import render_comparison, render_digest
from ui.result_rounds import render_rounds, watched_itself
from ui.result_source import render_source
from ui.result_text import bullets, plural
from ui.text import human_bytes
from ui.timeline import timeline_figure

MAX_STRIP_FRAMES = 48
THUMB_WIDTH = 132
MAX_PLAYER_BYTES = 200 * 1024 * 1024
UNKNOWN_LENGTH_AXIS_S = 10.0  # the axis when neither the length nor any cited moment is known


def render_run(run: AnalysisRun, settings: Settings, on_rerun: Callable[[], None]) -> None:
    result = run.result
    if run.from_store:
        show_info(
            f"Served from the stored result of {run.stored_at} (same video, model and settings).",
            icon=":material/inventory_2:",
        )
    st.button("Re-run", on_click=on_rerun, key="rerun_analysis", help="Analyse again and replace the stored result.")
    render_source(run)
    duration_s, axis_note = time_axis(run)
    _answer(result, duration_s)
    _evidence(run, settings, duration_s, axis_note)
    render_digest(run)
    render_rounds(result, duration_s)
    _extras(run)
    st.download_button(
        "Download the full result (JSON)",
        data=run.result_json,
        file_name=f"vchat-{run.asset.sha256[:12] if run.asset else 'url'}-{run.key[:8]}.json",
        mime="application/json",
        on_click="ignore",
        key="download_result",
        icon=":material/download:",
    )
    show_caption("The download holds the source, provenance, probe and sanitize facts beside the answer.")


def time_axis(run: AnalysisRun) -> tuple[float, str | None]:
    """The video's length for the timeline, and a note when it is not known (a video Gemini read
    from its URL: nothing was downloaded, so the axis runs a little past the last moment cited)."""
    if run.asset is not None:
        return run.asset.sanitized.probe.duration_s, None
    cited = cited_end(run.result)
    unknown = "The video's length is not known here (Gemini read it from its URL; nothing was downloaded)"
    if cited <= 0:
        return UNKNOWN_LENGTH_AXIS_S, f"{unknown}, and the answer cites no moment of it."
    end = float(math.ceil(max(cited * 1.15, cited + 1.0)))
    return end, f"{unknown}: the axis ends a little after {cited:.1f} s, the last moment cited."


def cited_end(result: AnalysisResult) -> float:
    """The last second any round cites (0 when none does)."""
    records = [*result.rounds, *result.gemini_rounds]
    return max((segment.end_s for record in records for segment in record.segments), default=0.0)


def _answer(result: AnalysisResult, duration_s: float) -> None:
    st.subheader("Answer")
    st.markdown(md("**Question:** {}", result.question))
    if result.linked is not None:
        render_comparison(result, duration_s)
    else:
        answer = annotate_times(result.answer, result.rounds[-1], duration_s) if result.rounds else result.answer
        with st.container(border=True):
            st.markdown(plain(answer) or "*(the model gave no answer)*")
    show_caption(model_line(result))
    for note in result.notes:
        show_warning(note, icon=":material/info:")


def model_line(result: AnalysisResult) -> str:
    model = result.model
    parts = [f"{model.backend}: {model.name}"]
    if model.adapter:
        parts.append(f"adapter {model.adapter}")
    if model.device:
        parts.append(f"{model.device} {model.dtype or ''}".strip())
    looked = [record for record in result.rounds if not watched_itself(record)]
    if looked:
        parts.append(plural(len(looked), "round"))
    else:
        parts.append("one answer; it watched the video itself" if result.rounds else "single answer")
    parts.append(f"{result.seconds:.1f} s")
    return " · ".join(parts)


def _evidence(run: AnalysisRun, settings: Settings, duration_s: float, axis_note: str | None) -> None:
    result, asset = run.result, run.asset
    st.subheader("Evidence")
    video, timeline = st.columns([2, 3])
    with video:
        if asset is None:  # Gemini read it from YouTube: play it from there
            st.video(run.source_url)
        else:
            _player(asset)
    with timeline:
        looked = any(not watched_itself(record) for record in result.rounds)
        st.markdown("**What each round looked at**" if looked else "**What the answer rests on**")
        st.plotly_chart(
            timeline_figure(result, duration_s),
            config={"displayModeBar": False, "scrollZoom": False},
            key="timeline",
        )
        if axis_note:
            show_caption(axis_note)
    if asset is not None and result.rounds and result.rounds[-1].frame_indices:
        _frame_strip(asset, settings, result, result.rounds[-1])


def _player(asset: MediaAsset) -> None:
    size = asset.sanitized_path.stat().st_size if asset.sanitized_path.exists() else 0
    if 0 < size <= MAX_PLAYER_BYTES:
        st.video(str(asset.sanitized_path))
    else:  # Streamlit serves a video from memory: a very large one is not worth holding there
        show_caption(f"The video ({human_bytes(size)}) is too large to play here: {asset.sanitized_path}")


def _frame_strip(asset: MediaAsset, settings: Settings, result: AnalysisResult, record: RoundRecord) -> None:
    st.markdown(md("**Frames the last round saw** ({}, {})", len(record.frame_timestamps), record.sampling))
    try:
        sample = round_frames(asset, settings, record, result.request.max_pixels)
    except VChatError as exc:
        show_caption(f"The frames cannot be shown: {exc.one_line()}")
        return
    step = max(1, -(-len(sample.timestamps) // MAX_STRIP_FRAMES))
    picked = range(0, len(sample.timestamps), step)
    st.image(
        [sample.frames[i] for i in picked],
        caption=[f"{sample.timestamps[i]:.1f} s" for i in picked],
        width=THUMB_WIDTH,
        output_format="JPEG",
    )
    if step > 1:
        show_caption(f"Every {step}th frame shown.")


# The fields every result has, and those shown above in their own place; anything else a backend
# adds to its result type (Gemini's usage, ...) is shown by `_extras`, generically.
SHOWN_FIELDS = frozenset(
    {"question", "answer", "model", "request", "media_sha256", "rounds", "notes", "seconds"}
    | {"linked", "digest", "gemini_rounds"}
)


def _extras(run: AnalysisRun) -> None:
    for key, value in run.data.items():
        if key in SHOWN_FIELDS or value in (None, [], {}, ""):
            continue
        with st.expander(key.replace("_", " ").capitalize()):
            if isinstance(value, dict):
                scalars = [(name, item) for name, item in value.items() if not isinstance(item, dict | list)]
                st.markdown(plain(bullets(scalars)))
                st.json(value, expanded=False)
            elif isinstance(value, list):
                st.json(value, expanded=False)
            else:
                st.text(str(value))
