"""Inspect: fetch a video and read what it says about itself (source, provenance, C2PA, probe),
with no model at all: what a fact-checker reads first, and all they need when no model is set up."""

from __future__ import annotations

import streamlit as st

from core.config import Settings
from core.media.pipeline import InspectedMedia, inspect_media
from ui.errors import shown_errors
from ui.feedback import new_status
from ui.progress import AnalysisProgress
from ui.result_source import render_facts
from ui.sources import SourceInput

INSPECTED = "inspected_media"

def inspect(settings: Settings, source: SourceInput) -> InspectedMedia | None:
    """Fetch and read `source` inside an st.status; keep what was read in session state."""
    st.session_state.pop(INSPECTED, None)
    status = new_status(f"Inspecting {source.label}", expanded=True)
    progress = AnalysisProgress(status, st.empty(), st.empty())
    with shown_errors("inspection", where=st.container()) as attempt:
        inspected = inspect_media(source.source, settings, filename=source.filename, progress=progress.stage)
    if attempt.failed:
        progress.fail("The inspection failed" if attempt.bug else "The inspection stopped")
        return None
    progress.finish("Inspected (no model was used)")
    st.session_state[INSPECTED] = inspected
    return inspected


def render_inspected(inspected: InspectedMedia) -> None:
    st.subheader("Source")
    render_facts(inspected)
