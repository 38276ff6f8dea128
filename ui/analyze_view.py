"""The Analyze page's parts: the form (source, question, readiness, the two actions) and what the
last action left (an answer, or an inspection)."""

from __future__ import annotations

import streamlit as st

from core.config import Settings
from ui import analysis, inspect, readiness, sources, state
from ui.feedback import show_caption, show_error
from ui.result import render_run


def form(settings: Settings) -> None:
    """Source, question, the chosen model's readiness, Analyze and Inspect; runs the one pressed."""
    choice = state.selected_choice(settings)
    show_caption(f"Model: {choice.label} · settings in the sidebar")
    source = sources.source_input(settings)
    question = st.text_area("Question", key="question", placeholder="What happens after the car stops?", height=90)
    readiness.show_before_analyze(readiness.current_readiness(settings, choice))
    actions = st.container(horizontal=True)
    clicked = actions.button("Analyze", type="primary", icon=":material/play_arrow:")
    inspecting = actions.button(
        "Inspect the file (no model)",
        icon=":material/policy:",
        help="Fetch the video and read its source, metadata, C2PA and structure, without asking any model.",
    )
    rerun = analysis.take_rerun_request()
    if inspecting or clicked or rerun:
        st.session_state.pop(analysis.LAST_RUN, None)
        st.session_state.pop(inspect.INSPECTED, None)
    try:
        if inspecting:
            inspect.inspect(settings, sources.require(source))
        elif clicked or rerun:
            analysis.analyze(settings, sources.require(source, question), question, rerun=rerun)
    except Exception as exc:  # no video, no question: one line
        show_error(exc)


def outcome(settings: Settings) -> None:
    """The last answer, or the last inspection."""
    last = st.session_state.get(analysis.LAST_RUN)
    inspected = st.session_state.get(inspect.INSPECTED)
    if last is not None:
        render_run(last, settings, on_rerun=analysis.request_rerun)
    elif inspected is not None:
        inspect.render_inspected(inspected)
