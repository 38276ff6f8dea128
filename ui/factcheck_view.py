"""The Fact-check page's form (source, the chosen model's readiness, Fact-check) and the run itself:
progress by stage, the report kept in session state."""

from __future__ import annotations

import streamlit as st

from core.analysis.factcheck.flow import FactCheckRun, MeasuredMedia, measure_only, run_factcheck
from core.config import Settings
from core.errors import VChatError
from ui import readiness, sources, state
from ui.factcheck_evidence import render_measured
from ui.factcheck_report import render_report
from ui.feedback import show_caption, show_error
from ui.progress import AnalysisProgress, run_in_status
from ui.result_source import render_facts

LAST_REPORT = "last_factcheck"
LAST_MEASURED = "last_measured"
RERUN = "factcheck_rerun"

def form(settings: Settings) -> None:
    """The source, the readiness of the chosen model, the Fact-check button; runs it when pressed."""
    choice = state.selected_choice(settings)
    show_caption(
        f"Checks by: {choice.label} · settings in the sidebar. Evidence that needs no model (provenance, "
        "shots and keyframes, audio and visual signals) is measured first; then each check is judged."
    )
    source = sources.source_input(settings)
    readiness.show_before_analyze(readiness.current_readiness(settings, choice))
    actions = st.container(horizontal=True)
    clicked = actions.button("Fact-check", type="primary", icon=":material/fact_check:")
    measuring = actions.button(
        "Measure only (no model)",
        icon=":material/troubleshoot:",
        help="Provenance, shots and keyframes, audio and picture signals: no model, weights or key needed.",
    )
    rerun = bool(st.session_state.pop(RERUN, False))
    if clicked or rerun or measuring:
        st.session_state.pop(LAST_REPORT, None)
        st.session_state.pop(LAST_MEASURED, None)
        try:
            given = sources.require(source)
        except VChatError as exc:  # no video given
            show_error(exc)
            return
        if measuring:
            measure(settings, given)
        else:
            factcheck(settings, given, rerun=rerun)


def request_rerun() -> None:
    st.session_state[RERUN] = True


def measure(settings: Settings, source: sources.SourceInput) -> MeasuredMedia | None:
    """The evidence alone, inside an st.status; kept in session state."""
    measured = run_in_status(
        f"Measuring {source.label} (no model)",
        "measurement",
        lambda progress: measure_only(source.source, settings, filename=source.filename, on_stage=progress.stage),
        lambda _: "Measured (no model was used)",
    )
    if measured is None:
        return None
    st.session_state[LAST_MEASURED] = measured
    return measured


def factcheck(settings: Settings, source: sources.SourceInput, rerun: bool = False) -> FactCheckRun | None:
    choice = state.selected_choice(settings)

    def work(progress: AnalysisProgress) -> FactCheckRun:
        return run_factcheck(
            source.source,
            settings,
            choice.model,
            state.build_request("fact-check", choice),
            filename=source.filename,
            gemini_api_key=state.gemini_api_key(),
            rerun=rerun,
            on_stage=progress.stage,
            on_queued=progress.queued,
        )

    run = run_in_status(
        f"Fact-checking {source.label} with {choice.label}",
        "fact-check",
        work,
        lambda done: "Served from the stored report" if done.from_store else "Reported",
    )
    if run is None:
        return None
    st.session_state[LAST_REPORT] = run
    return run


def outcome(settings: Settings) -> None:
    run = st.session_state.get(LAST_REPORT)
    if run is not None:
        render_report(run, settings, on_rerun=request_rerun)
    measured = st.session_state.get(LAST_MEASURED)
    if measured is not None:
        st.subheader("Source")
        render_facts(measured.asset)
        render_measured(measured.evidence, measured.asset.sha256)
