"""A batch's charts (plotly, static and readable without hovering, as ui/timeline.py): items by
status, answers or labels by value, seconds per item by stage, and, with labels, the confusion
matrix and per-class precision and recall."""

from __future__ import annotations

from collections import Counter

import plotly.graph_objects as go

from core.jobs.evaluate import EngineScore
from core.jobs.store import ITEM_STATES, Item
from core.jobs.summary import GROUP_ORDER, grouped_stages

STATE_COLORS = {
    "queued": "#b0b7c3",
    "preparing": "#7fb3d5",
    "running": "#1f4e79",
    "done": "#2e8b57",
    "failed": "#c0392b",
    "cancelled": "#7f8c8d",
}
GROUP_COLORS = {"media": "#7fb3d5", "waiting": "#d5d8dc", "model": "#1f4e79", "store": "#e67e22"}
TOP_VALUES = 15
VALUE_CHARS = 40


def plotly_text(value: str) -> str:
    """Outside text (answers, labels from a CSV) for a plotly figure: plotly reads a few HTML tags in
    text (links among them); as entities, `<` and `>` are shown, never read as a tag."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _layout(figure: go.Figure, height: int, x_title: str, y_title: str) -> go.Figure:
    figure.update_layout(
        height=height,
        margin={"l": 10, "r": 10, "t": 30, "b": 40},
        xaxis={"title": {"text": x_title}},
        yaxis={"title": {"text": y_title}},
        plot_bgcolor="white",
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
    )
    figure.update_yaxes(showgrid=True, gridcolor="#e5e5e5")
    return figure


def status_figure(items: list[Item]) -> go.Figure:
    counts = Counter(item.state for item in items)
    states = [state for state in ITEM_STATES if counts.get(state)]
    figure = go.Figure(
        go.Bar(
            x=states,
            y=[counts[s] for s in states],
            marker={"color": [STATE_COLORS[s] for s in states]},
            text=[counts[s] for s in states],
            textposition="outside",
            hovertemplate="%{x}: %{y} items<extra></extra>",
        )
    )
    return _layout(figure, 280, "status", "items")


def values_figure(values: list[str], title: str) -> go.Figure:
    """How often each value comes up (the most frequent first; long values cut for the axis only)."""
    counts = Counter(v.strip() for v in values if v and v.strip())
    top = counts.most_common(TOP_VALUES)
    shown = [plotly_text(v if len(v) <= VALUE_CHARS else v[: VALUE_CHARS - 1] + "…") for v, _ in top]
    figure = go.Figure(
        go.Bar(
            y=shown,
            x=[n for _, n in top],
            orientation="h",
            marker={"color": "#1f4e79"},
            text=[n for _, n in top],
            textposition="outside",
            customdata=[plotly_text(v) for v, _ in top],
            hovertemplate="%{customdata}: %{x}<extra></extra>",
        )
    )
    figure.update_layout(yaxis={"autorange": "reversed"})
    if len(counts) > TOP_VALUES:
        figure.add_annotation(
            text=f"{len(counts) - TOP_VALUES} rarer values not shown", showarrow=False, xref="paper", yref="paper",
            x=1, y=-0.18, xanchor="right",
        )  # fmt: skip
    return _layout(figure, 120 + 26 * max(len(top), 1), "items", title)


def seconds_figure(items: list[Item]) -> go.Figure:
    """Seconds per item (by spreadsheet row), stacked by stage: media, waiting, the model, storing."""
    timed = [item for item in items if item.stages]
    rows = [f"row {item.row_number}" for item in timed]
    figure = go.Figure()
    for group in GROUP_ORDER:
        seconds = [grouped_stages(item).get(group, 0.0) for item in timed]
        if any(seconds):
            figure.add_trace(
                go.Bar(
                    x=rows,
                    y=seconds,
                    name=group,
                    marker={"color": GROUP_COLORS[group]},
                    hovertemplate="%{x}: %{y:.2f} s " + group + "<extra></extra>",
                )
            )
    figure.update_layout(barmode="stack", xaxis={"type": "category"})
    return _layout(figure, 300, "item", "seconds")


def stage_totals_figure(items: list[Item]) -> go.Figure:
    """Seconds spent in each stage over all items (where a batch's time goes)."""
    totals: Counter[str] = Counter()
    for item in items:
        for stage, seconds in item.stages.items():
            totals[stage] += seconds
    stages = [stage for stage, _ in totals.most_common()]
    figure = go.Figure(
        go.Bar(
            x=stages,
            y=[round(totals[s], 2) for s in stages],
            marker={"color": "#1f4e79"},
            hovertemplate="%{x}: %{y:.1f} s<extra></extra>",
        )
    )
    return _layout(figure, 260, "stage", "seconds, all items")


def confusion_figure(score: EngineScore) -> go.Figure:
    classes = [plotly_text(c) for c in score.classes]
    figure = go.Figure(
        go.Heatmap(
            z=score.confusion,
            x=classes,
            y=classes,
            colorscale="Blues",
            text=score.confusion,
            texttemplate="%{text}",
            hovertemplate="label %{y}, predicted %{x}: %{z}<extra></extra>",
            showscale=False,
        )
    )
    figure.update_layout(yaxis={"autorange": "reversed", "type": "category"}, xaxis={"type": "category"})
    return _layout(figure, 140 + 36 * max(len(classes), 1), "predicted", "label")


def per_class_figure(score: EngineScore) -> go.Figure:
    figure = go.Figure()
    for metric, color in (("precision", "#1f4e79"), ("recall", "#e67e22")):
        figure.add_trace(
            go.Bar(
                x=[plotly_text(c.label) for c in score.per_class],
                y=[getattr(c, metric) for c in score.per_class],
                name=metric,
                marker={"color": color},
                hovertemplate="%{x}: " + metric + " %{y:.2f}<extra></extra>",
            )
        )
    figure.update_layout(barmode="group", yaxis={"range": [0, 1.05]}, xaxis={"type": "category"})
    return _layout(figure, 280, "class", "score")
