"""Run one analysis from a page: progress by stage, the answer streamed, errors as one line."""

from __future__ import annotations

import logging

import streamlit as st
from pydantic import ValidationError

from core.analysis.runner import AnalysisRun, run_analysis
from core.config import Settings
from core.errors import VChatError
from ui import state
from ui.progress import AnalysisProgress
from ui.sources import SourceInput
from ui.text import escape_markdown

LAST_RUN = "last_run"
RERUN_REQUESTED = "rerun_requested"

log = logging.getLogger("vchat.ui")


def request_rerun() -> None:
    """Button callback: analyse again on this run, ignoring the stored result."""
    st.session_state[RERUN_REQUESTED] = True


def take_rerun_request() -> bool:
    return bool(st.session_state.pop(RERUN_REQUESTED, False))


def one_line_error(exc: BaseException) -> str:
    if isinstance(exc, VChatError):
        return exc.one_line()
    if isinstance(exc, ValidationError):  # a value out of pydantic's own bounds
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{where}: {first['msg']}"
    return f"Internal error ({type(exc).__name__}); the details are in the server log."


def analyze(settings: Settings, source: SourceInput, question: str, rerun: bool = False) -> AnalysisRun | None:
    """Run the analysis inside an st.status; keep the outcome in session state; None on failure."""
    st.session_state.pop(LAST_RUN, None)
    choice = state.selected_choice(settings)
    queued_slot = st.empty()
    status = st.status(f"Analysing {escape_markdown(source.label)} with {choice.label}", expanded=True)
    answer_slot = st.empty()
    progress = AnalysisProgress(status, queued_slot, answer_slot)
    try:
        request = state.build_request(question, choice)
        run = run_analysis(
            source.source,
            settings,
            choice.backend,
            request,
            filename=source.filename,
            gemini_api_key=state.gemini_api_key(),
            rerun=rerun,
            gemini_reads_url=source.gemini_reads_url,
            on_stage=progress.stage,
            on_text=progress.text,
            on_queued=progress.queued,
        )
    except (VChatError, ValidationError) as exc:
        progress.fail("The analysis stopped")
        st.error(one_line_error(exc), icon=":material/error:")
        return None
    except Exception as exc:  # an internal error: one line here, the traceback in the server log
        log.exception("analysis failed")
        progress.fail("The analysis failed")
        st.error(one_line_error(exc), icon=":material/error:")
        return None
    done = "Served from the stored result" if run.from_store else f"Answered in {run.result.seconds:.1f} s"
    progress.finish(done)
    st.session_state[LAST_RUN] = run
    return run
