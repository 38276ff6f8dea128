"""Run one analysis from a page: progress by stage, the answer streamed, errors as one line."""

from __future__ import annotations

import streamlit as st

from core.analysis.runner import AnalysisRun, run_analysis
from core.config import Settings
from ui import state
from ui.progress import AnalysisProgress, run_in_status
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

    def work(progress: AnalysisProgress) -> AnalysisRun:
        return run_analysis(
            source.source,
            settings,
            choice.model,
            state.build_request(question, choice),
            filename=source.filename,
            gemini_api_key=state.gemini_api_key(),
            rerun=rerun,
            gemini_reads_url=source.gemini_reads_url,
            on_stage=progress.stage,
            on_text=progress.text,
            on_queued=progress.queued,
        )

    def finished(run: AnalysisRun) -> str:
        took = f"the model took {run.result.seconds:.1f} s"
        return "Served from the stored result" if run.from_store else f"Answered ({took})"

    run = run_in_status(f"Analysing {source.label} with {choice.label}", "analysis", work, finished)
    if run is None:
        return None
    st.session_state[LAST_RUN] = run
    return run
