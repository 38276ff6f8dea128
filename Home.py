"""vChat entry page (the app shell grows with the app issue)."""

import streamlit as st

from core.config import get_settings

st.set_page_config(page_title="vChat", page_icon="🎬", layout="wide")
st.title("vChat")
st.write("Ask questions about videos and fact-check them with video-language models.")
settings = get_settings()
st.caption(f"Data folder: `{settings.data_dir}` · media folder: `{settings.media_dir}`")
st.info("Analysis pages arrive with the next releases; the media pipeline is ready: `python -m core fetch SOURCE`.")
