"""Analyze: a video and a question in, the answer with its evidence out (or, with Inspect, what the
file says about itself, with no model)."""

import streamlit as st

from core.config import get_settings
from ui import analyze_view

settings = get_settings()
st.title("Analyze a video")
analyze_view.form(settings)
analyze_view.outcome(settings)
