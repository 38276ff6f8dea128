"""Models: what is loaded, where weights come from, adapters, Gemini, pre-seeding."""

import streamlit as st

from core.analysis.choices import left_out_note
from core.config import get_settings
from ui import models_view as view
from ui.feedback import show_info

settings = get_settings()
st.title("Models")
left_out = left_out_note()
if left_out:  # a Gemini-only install: no local model to show
    show_info(left_out, icon=":material/info:")
else:
    view.safe(view.loaded_section)
    view.safe(view.weights_section, settings)
    view.safe(view.adapters_section, settings)
view.safe(view.gemini_section, settings)
if not left_out:
    view.safe(view.preseed_section, settings)
