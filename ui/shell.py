"""The app shell that every page runs inside: page config, credentials from the URL, the
settings check, navigation over pages/, and the shared sidebar.

Home.py calls `run_app()`. Each page file starts with `inside_app()`: Streamlit 1.67 still
takes its legacy pages/-folder route on the first script run of a server process (and on
every AppTest run) and then runs a page file by itself, without Home.py. `inside_app` notices
that, runs the whole app instead (which runs the page inside the shell), and stops the bare
run. So a bookmarked deep link on a freshly started server gets the sidebar, the query-param
handling and no "Page not found" dialog.
"""

from __future__ import annotations

import threading

import streamlit as st
from pydantic import ValidationError

from core.config import Settings, get_settings
from core.errors import validation_message
from core.media.scratch import sweep_stale
from ui.feedback import show_error
from ui.navigation import app_pages
from ui.sidebar import render_sidebar
from ui.state import absorb_query_params

_run = threading.local()  # each session's script runs in its own thread


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
    _run.inside = True
    try:
        page.run()
    finally:
        _run.inside = False


_swept: set[str] = set()


def _sweep_once(settings: Settings) -> None:
    """Remove, once per server process, what killed vChat processes left in the data dir."""
    key = str(settings.data_dir)
    if key not in _swept:
        _swept.add(key)
        sweep_stale(settings.data_dir)


def inside_app() -> None:
    """Call first in every page: when Streamlit ran this page bare, run the app around it instead."""
    if getattr(_run, "inside", False):
        return
    run_app()
    st.stop()
