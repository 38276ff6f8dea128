"""Fact-check: a video in, a report a fact-checker can defend out: provenance, keyframes, audio and
visual signals, three checks with bands and cited moments, a suggested rating, a person's rating."""

import streamlit as st

from core.config import get_settings
from ui import factcheck_view

settings = get_settings()
st.title("Fact-check a video")
factcheck_view.form(settings)
factcheck_view.outcome(settings)
