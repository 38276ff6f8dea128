"""vChat: the app shell. Pages come from pages/; the sidebar holds the settings they share.

Run with `make run` (http://localhost:8005). A Gemini key may be bookmarked as
`/?gemini_api_key=...&gemini_model_name=...`: both move into this session's state and
the key leaves the address bar at once. A server-side GEMINI_API_KEY needs none of that.
"""

import streamlit as st
from pydantic import ValidationError

from core.config import get_settings
from ui.navigation import app_pages
from ui.sidebar import render_sidebar
from ui.state import absorb_query_params

st.set_page_config(page_title="vChat", page_icon="🎬", layout="wide")
absorb_query_params()
try:
    settings = get_settings()
except ValidationError as exc:  # a VCHAT_ variable out of range: one line, no traceback
    first = exc.errors()[0]
    st.error(f"Setting {'.'.join(str(p) for p in first['loc'])}: {first['msg']}. Fix the environment and restart.")
    st.stop()

page = st.navigation(app_pages())
st.sidebar.title("vChat")
st.sidebar.caption("Ask questions about videos; see the frames and moments each answer rests on.")
render_sidebar(settings)
page.run()
