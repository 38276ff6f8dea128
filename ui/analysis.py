"""Run one analysis from a page: progress by stage, the answer streamed, errors as one line."""

from __future__ import annotations

import streamlit as st

from core.analysis.runner import AnalysisRun, run_analysis
from core.config import Settings
from ui import state
from ui.errors import shown_errors
from ui.feedback import new_status
from ui.progress import AnalysisProgress
from ui.sources import SourceInput

LAST_RUN = "last_run"
RERUN_REQUESTED = "rerun_requested"

def request_rerun() -> None:
    """Button callback: analyse again on this run, ignoring the stored result."""
    st.session_state[RERUN_REQUESTED] = True


def take_rerun_request() -> bool:
    return bool(st.session_state.pop(RERUN_REQUESTED, False))


def analyze(settings: Settings, source: SourceInput, question: str, rerun: bool = False) -> AnalysisRun | None:
    """Run the analysis inside an st.status; keep the outcome in session state; None on failure."""
    st.session_state.pop(LAST_RUN, None)
    choice = state.selected_choice(settings)
    queued_slot = st.empty()
    status = new_status(f"Analysing {source.label} with {choice.label}", expanded=True)
    answer_slot = st.empty()
    progress = AnalysisProgress(status, queued_slot, answer_slot)
    with shown_errors("analysis", where=st.container()) as attempt:
        request = state.build_request(question, choice)
        run = run_analysis(
            source.source,
            settings,
            choice.model,
            request,
            filename=source.filename,
            gemini_api_key=state.gemini_api_key(),
            rerun=rerun,
            gemini_reads_url=source.gemini_reads_url,
            on_stage=progress.stage,
            on_text=progress.text,
            on_queued=progress.queued,
        )
    if attempt.failed:
        progress.fail("The analysis failed" if attempt.bug else "The analysis stopped")
        return None
    took = f"the model took {run.result.seconds:.1f} s"
    done = "Served from the stored result" if run.from_store else f"Answered ({took})"
    progress.finish(done)
    st.session_state[LAST_RUN] = run
    return run
