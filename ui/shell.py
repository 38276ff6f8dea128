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

from core.config import get_settings
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
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        st.error(f"Setting {where}: {first['msg']}. Fix the environment and restart.")
        st.stop()
    page = st.navigation(app_pages())
    st.sidebar.title("vChat")
    st.sidebar.caption("Ask questions about videos; see the frames and moments each answer rests on.")
    render_sidebar(settings)
    _run.inside = True
    try:
        page.run()
    finally:
        _run.inside = False


def inside_app() -> None:
    """Call first in every page: when Streamlit ran this page bare, run the app around it instead."""
    if getattr(_run, "inside", False):
        return
    run_app()
    st.stop()
