"""How an analysis is shown: answer, video, timeline, frames, rounds, provenance, JSON download.

Every text that came from a model, a video's metadata or a web page is escaped (or shown
in a table or code block), so none of it can inject markup. Fields a backend adds to its
own result type are shown generically, so a new backend needs no new view.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from core.analysis.perception import annotate_times
from core.analysis.runner import AnalysisRun, round_frames
from core.config import Settings
from core.errors import VChatError
from core.media.pipeline import MediaAsset
from core.models.base import AnalysisResult, RoundRecord
from ui.feedback import md, plain, show_caption, show_info, show_warning
from ui.text import human_bytes
from ui.timeline import timeline_figure

MAX_STRIP_FRAMES = 48
THUMB_WIDTH = 132
MAX_PLAYER_BYTES = 200 * 1024 * 1024


def render_run(run: AnalysisRun, settings: Settings, on_rerun: Callable[[], None]) -> None:
    result, asset = run.result, run.asset
    if run.from_store:
        show_info(
            f"Served from the stored result of {run.stored_at} (same video, model and settings).",
            icon=":material/inventory_2:",
        )
    st.button("Re-run", on_click=on_rerun, key="rerun_analysis", help="Analyse again and replace the stored result.")

    st.subheader("Answer")
    st.markdown(md("**Question:** {}", result.question))
    duration_s = asset.sanitized.probe.duration_s if asset is not None else _cited_end(result)
    answer = annotate_times(result.answer, result.rounds[-1], duration_s) if result.rounds else result.answer
    with st.container(border=True):
        st.markdown(plain(answer) or "*(the model gave no answer)*")
    show_caption(_model_line(result))
    for note in result.notes:
        show_warning(note, icon=":material/info:")

    video, timeline = st.columns([2, 3])
    if asset is None:  # Gemini read it from YouTube: play it from there; no frames, no provenance here
        with video:
            st.video(run.source_url)
        with timeline:
            st.markdown("**What the answer rests on**")
            st.plotly_chart(
                timeline_figure(result, _cited_end(result)),
                config={"displayModeBar": False, "scrollZoom": False},
                key="timeline",
            )
        _rounds_and_download(run)
        return
    with video:
        size = asset.sanitized_path.stat().st_size if asset.sanitized_path.exists() else 0
        if 0 < size <= MAX_PLAYER_BYTES:
            st.video(str(asset.sanitized_path))
        else:  # Streamlit serves a video from memory: a very large one is not worth holding there
            show_caption(f"The video ({human_bytes(size)}) is too large to play here: {asset.sanitized_path}")
    with timeline:
        st.markdown("**What each round looked at**")
        st.plotly_chart(
            timeline_figure(result, asset.sanitized.probe.duration_s),
            config={"displayModeBar": False, "scrollZoom": False},
            key="timeline",
        )

    if result.rounds and result.rounds[-1].frame_indices:
        _frame_strip(asset, settings, result, result.rounds[-1])
    _rounds_and_download(run)


def _cited_end(result: AnalysisResult) -> float:
    """The time axis for a video we never probed: up to the last second any round cites."""
    ends = [segment.end_s for record in result.rounds for segment in record.segments]
    return max([*ends, 1.0])


def _rounds_and_download(run: AnalysisRun) -> None:
    result, asset = run.result, run.asset
    if result.rounds:
        st.subheader("Rounds")
        duration_s = asset.sanitized.probe.duration_s if asset is not None else _cited_end(result)
        for record in result.rounds:
            _round_expander(record, len(result.rounds), duration_s)

    _extras(run)
    if asset is None:
        st.caption("Gemini read the video from its URL; no copy was downloaded, so no provenance or metadata was read.")
    else:
        _provenance(asset)
    name = asset.sha256[:12] if asset else "url"
    st.download_button(
        "Download the full result (JSON)",
        data=run.result_json,
        file_name=f"vchat-{name}-{run.key[:8]}.json",
        mime="application/json",
        on_click="ignore",
        key="download_result",
        icon=":material/download:",
    )


def _model_line(result: AnalysisResult) -> str:
    model = result.model
    parts = [f"{model.backend}: {model.name}"]
    if model.adapter:
        parts.append(f"adapter {model.adapter}")
    if model.device:
        parts.append(f"{model.device} {model.dtype or ''}".strip())
    parts.append(f"{len(result.rounds)} rounds" if result.rounds else "single answer")
    parts.append(f"{result.seconds:.1f} s")
    return " · ".join(parts)


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


def _segments(record: RoundRecord) -> str:
    if not record.segments:
        return "none"
    return ", ".join(f"{s.start_s:.1f}-{s.end_s:.1f} s" for s in record.segments)


def _round_expander(record: RoundRecord, total: int, duration_s: float) -> None:
    label = (
        f"Round {record.round} of {total}: {record.sampling}, {len(record.frame_timestamps)} frames, "
        f"segments {_segments(record)}" + (" (cut off)" if record.truncated else "")
    )
    with st.expander(label, expanded=False):
        st.markdown("**Reasoning**")
        st.markdown(plain(annotate_times(record.reasoning or "", record, duration_s)) or "*(none given)*")
        st.markdown("**Answer in this round**")
        st.markdown(plain(annotate_times(record.answer or "", record, duration_s)) or "*(none given)*")
        if record.next_round:
            show_caption(f"Next: {record.next_round}.")
        facts = {
            "glue as written": record.glue if record.glue is not None else "-",
            "glue read as": "seconds of the video" if record.glue_time == "video" else "times on the model's axis",
            "segments cited (video time)": _segments(record),
            "periods these frames favour": ", ".join(
                f"{s.start_s:.1f}-{s.end_s:.1f} s" for s in record.sampled_segments
            )
            or "none (uniform)",
            "frames at (s)": ", ".join(f"{t:.2f}" for t in record.frame_timestamps),
            "sampled fps": f"{record.sampled_fps:.3f}",
            "seconds per temporal step": f"{record.second_per_grid_t:.3f}" if record.second_per_grid_t else "-",
            "largest departure from a uniform grid": f"{record.uniformity_departure_s:.2f} s",
            "frames decoded": str(record.decoded_frames),
            "tokens in / out": f"{record.tokens_in} / {record.tokens_out}",
            "time": f"{record.seconds:.2f} s",
        }
        st.dataframe(pd.DataFrame({"fact": list(facts), "value": list(facts.values())}), hide_index=True)
        for dropped in record.dropped_segments:
            show_caption(f"Dropped segment {dropped.text!r}: {dropped.reason}")
        for note in record.parse_notes:
            show_caption(note)
        st.markdown("**Prompt**")
        st.code(record.prompt, language="text", wrap_lines=True)
        st.markdown("**Raw output**")
        st.code(record.raw_output, language="text", wrap_lines=True)


# The fields every result has; anything else a backend adds (Gemini usage, linked mode's
# comparison and Gemini's own round, ...) is shown by `_extras`, generically.
CORE_FIELDS = frozenset({"question", "answer", "model", "request", "media_sha256", "rounds", "notes", "seconds"})
OPEN_FIELDS = frozenset({"linked"})  # shown unfolded: the comparison is what linked mode is for


def _extras(run: AnalysisRun) -> None:
    for key, value in run.data.items():
        if key in CORE_FIELDS or value in (None, [], {}, ""):
            continue
        with st.expander(key.replace("_", " ").capitalize(), expanded=key in OPEN_FIELDS):
            if isinstance(value, dict):
                scalars = [(name, str(item)) for name, item in value.items() if not isinstance(item, dict | list)]
                if scalars:
                    st.dataframe(pd.DataFrame(scalars, columns=["field", "value"]), hide_index=True)
                st.json(value, expanded=False)
            elif isinstance(value, list):
                st.json(value, expanded=False)
            else:
                st.text(str(value))


def _provenance(asset: MediaAsset) -> None:
    source, provenance, probe = asset.source, asset.provenance, asset.probe
    with st.expander("Provenance and media facts"):
        facts = {
            "source": source.kind,
            "URL": source.webpage_url or source.url,
            "title": source.title,
            "uploader": source.uploader or source.channel,
            "upload date": source.upload_date,
            "file name": source.filename,
            "fetched at": source.fetched_at,
            "sha256": asset.sha256,
            "size": human_bytes(provenance.size_bytes),
            "container": probe.container,
            "duration": f"{probe.duration_s:.2f} s",
            "video": f"{probe.video_codec} {probe.width}x{probe.height} {probe.pix_fmt or ''} "
            f"{(probe.fps or 0):.3g} fps".strip(),
            "rotation": f"{probe.rotation}°" if probe.rotation else None,
            "audio": f"{probe.audio_codec} ({probe.audio_channels} ch)" if probe.has_audio else "none",
            "C2PA": provenance.c2pa.summary,
            "created": provenance.creation_time,
            "written by": provenance.encoder,
            "camera": " ".join(p for p in (provenance.make, provenance.model) if p) or None,
            "software": provenance.software,
            "location": provenance.location,
            "sanitized": f"{asset.sanitized.path_taken}" + (" (reused)" if asset.sanitized.reused else ""),
        }
        rows = [(name, str(value)) for name, value in facts.items() if value not in (None, "")]
        st.dataframe(pd.DataFrame(rows, columns=["fact", "value"]), hide_index=True)
        st.caption("Everything read from the original bytes, before sanitizing:")
        st.json(provenance.model_dump(mode="json"), expanded=False)
