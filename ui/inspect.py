"""Inspect: fetch a video and read what it says about itself (source, provenance, C2PA, probe),
with no model at all: what a fact-checker reads first, and all they need when no model is set up."""

from __future__ import annotations

import streamlit as st

from core.config import Settings
from core.media.pipeline import InspectedMedia, inspect_media
from ui.progress import run_in_status
from ui.result_source import render_facts
from ui.sources import SourceInput

INSPECTED = "inspected_media"

def inspect(settings: Settings, source: SourceInput) -> InspectedMedia | None:
    """Fetch and read `source` inside an st.status; keep what was read in session state."""
    st.session_state.pop(INSPECTED, None)
    inspected = run_in_status(
        f"Inspecting {source.label}",
        "inspection",
        lambda progress: inspect_media(source.source, settings, filename=source.filename, progress=progress.stage),
        lambda _: "Inspected (no model was used)",
    )
    if inspected is None:
        return None
    st.session_state[INSPECTED] = inspected
    return inspected


def render_inspected(inspected: InspectedMedia) -> None:
    st.subheader("Source")
    render_facts(inspected)
