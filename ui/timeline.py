"""The timeline: one row per round, a tick for every frame it saw, a band for every segment it cited."""

from __future__ import annotations

import plotly.graph_objects as go

from core.models.base import AnalysisResult

FRAME_COLOR = "#1f4e79"
SEGMENT_COLOR = "rgba(230, 126, 34, 0.45)"


def timeline_figure(result: AnalysisResult, duration_s: float | None = None) -> go.Figure:
    """A static figure, readable without hovering: rows are rounds of the perception loop, and the
    answers of an engine that watched the video itself (Gemini, alone or in linked mode), named so;
    x is the video's time, from 0 to `duration_s`."""
    looked = [r for r in result.rounds if r.frame_timestamps or r.frame_indices]
    itself = [r for r in result.rounds if not (r.frame_timestamps or r.frame_indices)] + result.gemini_rounds
    name = "Gemini" if result.gemini is not None else result.model.backend
    labelled = [(f"Round {record.round}", record) for record in looked]
    labelled += [(name if len(itself) == 1 else f"{name} {number}", r) for number, r in enumerate(itself, 1)]
    rows = [label for label, _ in labelled]
    figure = go.Figure()
    for row, record in labelled:
        if record.segments:
            figure.add_trace(
                go.Bar(
                    y=[row] * len(record.segments),
                    x=[max(s.end_s - s.start_s, 0.05) for s in record.segments],
                    base=[s.start_s for s in record.segments],
                    orientation="h",
                    width=0.6,
                    marker={"color": SEGMENT_COLOR, "line": {"width": 0}},
                    name="segment cited",
                    legendgroup="segments",
                    showlegend=not any(t.legendgroup == "segments" for t in figure.data),
                    customdata=[[s.start_s, s.end_s] for s in record.segments],
                    hovertemplate="cited %{customdata[0]:.1f}-%{customdata[1]:.1f} s<extra></extra>",
                )
            )
        figure.add_trace(
            go.Scatter(
                y=[row] * len(record.frame_timestamps),
                x=record.frame_timestamps,
                mode="markers",
                marker={
                    "symbol": "line-ns-open",
                    "size": 16,
                    "color": FRAME_COLOR,
                    "line": {"width": 2, "color": FRAME_COLOR},
                },
                name="frame seen",
                legendgroup="frames",
                showlegend=not any(t.legendgroup == "frames" for t in figure.data),
                hovertemplate="frame at %{x:.2f} s<extra></extra>",
            )
        )
    end = duration_s or max((t for _, r in labelled for t in r.frame_timestamps), default=1.0)
    figure.update_layout(
        barmode="overlay",
        height=110 + 48 * max(len(rows), 1),
        margin={"l": 10, "r": 10, "t": 10, "b": 40},
        xaxis={"title": {"text": "video time (s)"}, "range": [0, end], "zeroline": False},
        yaxis={"categoryorder": "array", "categoryarray": rows, "autorange": "reversed"},
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
        plot_bgcolor="white",
    )
    figure.update_xaxes(showgrid=True, gridcolor="#e5e5e5")
    return figure
