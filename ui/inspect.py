"""Inspect: fetch a video and read what it says about itself (source, provenance, C2PA, probe),
with no model at all: what a fact-checker reads first, and all they need when no model is set up."""

from __future__ import annotations

import logging

import streamlit as st
from pydantic import ValidationError

from core.config import Settings
from core.errors import VChatError
from core.media.pipeline import InspectedMedia, inspect_media
from ui.feedback import new_status, show_error
from ui.progress import AnalysisProgress
from ui.result_source import render_facts
from ui.sources import SourceInput

INSPECTED = "inspected_media"

log = logging.getLogger("vchat.ui")


def inspect(settings: Settings, source: SourceInput) -> InspectedMedia | None:
    """Fetch and read `source` inside an st.status; keep what was read in session state."""
    st.session_state.pop(INSPECTED, None)
    status = new_status(f"Inspecting {source.label}", expanded=True)
    progress = AnalysisProgress(status, st.empty(), st.empty())
    try:
        inspected = inspect_media(source.source, settings, filename=source.filename, progress=progress.stage)
    except (VChatError, ValidationError) as exc:
        progress.fail("The inspection stopped")
        show_error(exc)
        return None
    except Exception as exc:  # an internal error: one line here, the traceback in the server log
        log.exception("inspection failed")
        progress.fail("The inspection failed")
        show_error(exc)
        return None
    progress.finish("Inspected (no model was used)")
    st.session_state[INSPECTED] = inspected
    return inspected


def render_inspected(inspected: InspectedMedia) -> None:
    st.subheader("Source")
    render_facts(inspected)
