"""Models: what is loaded, where weights come from, adapters, Gemini, pre-seeding."""

import streamlit as st

from core.config import get_settings
from ui import models_view as view
from ui.shell import inside_app

inside_app()

settings = get_settings()
st.title("Models")
view.safe(view.loaded_section)
view.safe(view.weights_section, settings)
view.safe(view.adapters_section, settings)
view.safe(view.gemini_section, settings)
view.safe(view.preseed_section, settings)
