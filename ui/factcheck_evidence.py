"""The evidence measured without a model, on the page: the provenance flags, a timeline (shots,
audio and picture signals, each check's cited moments; a click shows the nearest frame kept), the
signals as a table, the keyframe gallery with its downloads, and how to reverse-search."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from core.analysis.factcheck.report import CitedMoment, FactCheckReport
from core.analysis.factcheck.store import StoredReport
from core.config import Settings
from core.media.forensics import Evidence, keyframes_zip
from core.media.pipeline import InspectedMedia
from ui.feedback import md, plain, show_caption, show_info, show_warning

SHOT_COLORS = ("#c9d6e3", "#8fa9c4")
EVENT_COLOR = "rgba(192, 57, 43, 0.55)"
CITED_COLOR = "rgba(230, 126, 34, 0.55)"
GALLERY_COLUMNS = 4
SEARCH_NOTE = (
    "vChat uploads none of these frames anywhere. To look for earlier copies of the video, download a "
    "keyframe (or all of them as a zip) and upload it yourself to Google Lens (lens.google.com), Bing "
    "Visual Search, Yandex Images or TinEye."
)


Cited = Sequence[tuple[str, list[CitedMoment]]]  # (row label, the moments a judgement cites)


def cited_rows(report: FactCheckReport) -> Cited:
    """Each judgement's cited moments, labelled "check: engine"."""
    return [
        (f"{check.title}: {judgement.engine}", judgement.moments)
        for check in report.checks
        for judgement in check.judgements
        if judgement.moments
    ]


def _images(evidence: Evidence, cited: Cited, folder: Path | None) -> list[tuple[float, Path, str]]:
    """Every frame kept: (time, JPEG, caption), keyframes and cited moments' frames."""
    images = [
        (frame.time_s, Path(frame.path), f"shot {frame.shot} keyframe, {frame.time_s:.2f} s")
        for frame in evidence.shots.keyframes
    ]
    for row, moments in cited:
        for moment in moments:
            if folder is not None and moment.frame_file and moment.frame_s is not None:
                images.append((moment.frame_s, folder / moment.frame_file, f"{row}: {moment.frame_s:.2f} s"))
    return sorted(images, key=lambda image: image[0])


def _bar(figure: go.Figure, row: str, spans: list[tuple[float, float, str]], color: str, name: str) -> None:
    if not spans:
        return
    figure.add_trace(
        go.Bar(
            y=[row] * len(spans),
            x=[max(end - start, 0.08) for start, end, _ in spans],
            base=[start for start, _, _ in spans],
            orientation="h",
            width=0.6,
            marker={"color": color, "line": {"width": 0}},
            name=name,
            showlegend=False,
            customdata=[[start, end, what] for start, end, what in spans],
            hovertemplate="%{customdata[0]:.2f}-%{customdata[1]:.2f} s<br>%{customdata[2]}<extra></extra>",
        )
    )


def evidence_figure(evidence: Evidence, cited: Cited = ()) -> go.Figure:
    """Rows: shots (alternating shades), every signal that found something, each judgement's cited
    moments; x is the video's time."""
    figure = go.Figure()
    rows: list[str] = []
    shots = evidence.shots.shots
    for shade in (0, 1):
        spans = [(s.start_s, s.end_s, f"shot {s.index}") for s in shots if s.index % 2 == shade]
        _bar(figure, "Shots", spans, SHOT_COLORS[shade], "shot")
    if shots:
        rows.append("Shots")
    for signal in evidence.signals:
        if signal.events:
            rows.append(signal.title)
            _bar(figure, signal.title, [(e.start_s, e.end_s, e.what) for e in signal.events], EVENT_COLOR, "found")
    for row, moments in cited:
        rows.append(row)
        _bar(figure, row, [(m.start_s, m.end_s, m.what or "cited") for m in moments], CITED_COLOR, "cited")
    figure.update_layout(
        barmode="overlay",
        height=110 + 40 * max(len(rows), 1),
        margin={"l": 10, "r": 10, "t": 10, "b": 40},
        xaxis={"title": {"text": "video time (s)"}, "range": [0, max(evidence.duration_s, 0.1)]},
        yaxis={"categoryorder": "array", "categoryarray": rows, "autorange": "reversed"},
        plot_bgcolor="white",
        clickmode="event+select",
    )
    figure.update_xaxes(showgrid=True, gridcolor="#e5e5e5")
    return figure


def _clicked_time(event: object) -> float | None:
    points = getattr(getattr(event, "selection", None), "points", None) or []
    for point in points:
        custom = point.get("customdata") if isinstance(point, dict) else None
        if custom:
            return float(custom[0])
        if isinstance(point, dict) and isinstance(point.get("x"), int | float):
            return float(point["x"])
    return None


def _timeline(evidence: Evidence, cited: Cited, folder: Path | None, key: str) -> None:
    st.markdown("**Timeline**")
    event = st.plotly_chart(
        evidence_figure(evidence, cited), width="stretch", on_select="rerun", selection_mode="points",
        key=f"factcheck_timeline_{key}",
    )  # fmt: skip
    clicked = _clicked_time(event)
    images = _images(evidence, cited, folder)
    if clicked is None or not images:
        show_caption("Click a shot, a signal or a cited moment to see the nearest frame the report keeps.")
        return
    _, path, caption = min(images, key=lambda image: abs(image[0] - clicked))
    if path.is_file():
        st.image(str(path), caption=plain(f"Nearest kept frame to {clicked:.2f} s: {caption}"), width=480)


def _signals_table(evidence: Evidence) -> None:
    rows = [
        {
            "signal": signal.title,
            "from (s)": round(event.start_s, 2),
            "to (s)": round(event.end_s, 2),
            "what": event.what,
            "value": event.value,
            "unit": signal.unit,
        }
        for signal in evidence.signals
        for event in signal.events
    ]
    with st.expander("Signals measured without a model", expanded=False):
        for signal in evidence.signals:
            if signal.applicable:
                st.markdown(md("- **{}**: {} ({})", signal.title, signal.summary or "none found", signal.method))
            else:
                st.markdown(md("- **{}**: not applicable ({})", signal.title, signal.reason or ""))
        if rows:
            st.dataframe(rows, width="stretch", hide_index=True)


def _gallery(evidence: Evidence, sha256: str) -> None:
    st.markdown("**Keyframes** (one per shot)")
    keyframes = evidence.shots.keyframes
    if not keyframes:
        show_caption(evidence.shots.reason or "No keyframes were kept.")
        return
    if evidence.shots.capped:
        show_caption(f"Only the first {evidence.shots.max_shots} shots have keyframes.")
    columns = st.columns(GALLERY_COLUMNS)
    for number, frame in enumerate(keyframes):
        path = Path(frame.path)
        with columns[number % GALLERY_COLUMNS]:
            if path.is_file():
                st.image(str(path), caption=plain(f"shot {frame.shot}: {frame.time_s:.2f} s"))
                st.download_button(
                    "Download", path.read_bytes(), file_name=frame.filename, mime="image/jpeg",
                    key=f"keyframe_{sha256[:12]}_{frame.shot}", icon=":material/download:",
                )  # fmt: skip
    st.download_button(
        "Download all keyframes (zip)", keyframes_zip(evidence), file_name=f"keyframes-{sha256[:12]}.zip",
        mime="application/zip", icon=":material/folder_zip:", key=f"keyframes_zip_{sha256[:12]}",
    )  # fmt: skip
    show_caption(SEARCH_NOTE)
    for thumbnail in evidence.shots.thumbnails:
        st.markdown(md("The platform's public thumbnail: {}", thumbnail.url))
        columns = st.columns(max(len(thumbnail.search_links), 1))
        for column, link in zip(columns, thumbnail.search_links, strict=False):
            column.link_button(f"Search with {link.engine}", link.url)


def render_measured(evidence: Evidence, sha256: str, cited: Cited = (), folder: Path | None = None) -> None:
    """The evidence measured without a model: metadata flags, timeline, signals, keyframes (`cited`:
    the moments judgements cite, their frames under `folder`)."""
    st.subheader("Evidence measured without a model")
    flags = evidence.provenance.flags
    for flag in flags:
        if flag.severity == "warning":
            show_warning(flag.message, icon=":material/flag:")
    notes = [flag.message for flag in flags if flag.severity != "warning"]
    if notes:
        with st.expander("What the file says about itself", expanded=False):
            for note in notes:
                st.markdown(md("- {}", note))
    if evidence.reused:
        show_info("The measured evidence was read back from the media store.", icon=":material/inventory_2:")
    _timeline(evidence, cited, folder, f"{sha256[:12]}_{evidence.key}")
    _signals_table(evidence)
    _gallery(evidence, sha256)
    for note in evidence.notes:
        show_caption(note)


def render_evidence(stored: StoredReport, media: InspectedMedia, settings: Settings) -> None:
    """The evidence section of a report, with every judgement's cited moments on the timeline."""
    render_measured(stored.report.evidence, media.sha256, cited_rows(stored.report), stored.folder)
