"""Analyze: a video and a question in, the answer with its evidence out."""

import streamlit as st

from core.config import get_settings
from ui import analysis, sources, state
from ui.feedback import show_caption, show_error
from ui.result import render_run
from ui.shell import inside_app

inside_app()

settings = get_settings()
st.title("Analyze a video")
show_caption(f"Model: {state.selected_choice(settings).label} · settings in the sidebar")

source = sources.source_input(settings)
question = st.text_area("Question", key="question", placeholder="What happens after the car stops?", height=90)
clicked = st.button("Analyze", type="primary", icon=":material/play_arrow:")
rerun = analysis.take_rerun_request()

if clicked or rerun:
    try:
        given = sources.require(source, question)
    except Exception as exc:
        show_error(exc)
    else:
        analysis.analyze(settings, given, question, rerun=rerun)

last = st.session_state.get(analysis.LAST_RUN)
if last is not None:
    render_run(last, settings, on_rerun=analysis.request_rerun)
