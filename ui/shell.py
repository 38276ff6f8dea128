"""The app shell that every page runs inside: page config, credentials from the URL, the
settings check, navigation over app_pages/, and the shared sidebar.

Home.py calls `run_app()`. The page files live in app_pages/, not pages/: Streamlit gives a
pages/ folder its own legacy navigation, which a fresh server showed (a lowercase menu over a
blank page) before `st.navigation` took over, and which ran page files without the shell.
"""

from __future__ import annotations

import streamlit as st
from pydantic import ValidationError

from core.config import Settings, get_settings
from core.errors import validation_message
from core.media.scratch import sweep_stale
from ui.feedback import show_error
from ui.navigation import app_pages
from ui.sidebar import render_sidebar
from ui.state import absorb_query_params


def run_app() -> None:
    st.set_page_config(page_title="vChat", page_icon="🎬", layout="wide")
    absorb_query_params()
    try:
        settings = get_settings()
    except ValidationError as exc:  # a VCHAT_ variable out of range: one line, no traceback
        show_error(f"{validation_message(exc, 'Setting ')}. Fix the environment and restart.")
        st.stop()
    _sweep_once(settings)
    page = st.navigation(app_pages())
    st.sidebar.title("vChat")
    st.sidebar.caption("Ask questions about videos; see the frames and moments each answer rests on.")
    render_sidebar(settings)
    page.run()


_swept: set[str] = set()


def _sweep_once(settings: Settings) -> None:
    """Once per server process: remove what killed vChat processes left in the data dir, and restart
    the batch worker when unfinished jobs wait."""
    key = str(settings.data_dir)
    if key not in _swept:
        _swept.add(key)
        sweep_stale(settings.data_dir)
        from core.jobs.worker import resume_unfinished_jobs  # imported here: the first paint stays light

        resume_unfinished_jobs(settings)  # jobs a former server left unfinished go on at once
