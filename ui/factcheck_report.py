"""A fact-check report on the page, in the order a fact-checker reads it: the source and its
provenance, the rating (suggested, and a person's), the three checks with their bands and cited
moments, the evidence measured without a model (timeline, keyframes), the downloads."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import streamlit as st

from core.analysis.factcheck.flow import FactCheckRun
from core.analysis.factcheck.html import report_html
from core.analysis.factcheck.jsonld import review_markup
from core.analysis.factcheck.report import CheckReport, Judgement
from core.analysis.factcheck.store import FactCheckStore, StoredReport
from core.config import Settings
from ui.factcheck_evidence import render_evidence
from ui.factcheck_rating import render_rating
from ui.feedback import md, plain, show_caption, show_info, show_warning
from ui.result_source import render_facts
from ui.result_text import items

STATE_WORDS = {"not applicable": "not applicable", "could not be read": "could not be read", "failed": "failed"}


def render_report(run: FactCheckRun, settings: Settings, on_rerun: Callable[[], None]) -> None:
    stored = replace(run.stored, rating=FactCheckStore.rating(run.stored.folder))  # as saved, by anyone
    if run.from_store:
        show_info(f"Served from the report stored on {stored.report.created_at}.", icon=":material/inventory_2:")
    st.button("Re-run", on_click=on_rerun, key="rerun_factcheck", help="Check again and replace the stored report.")
    st.subheader("Source")
    render_facts(run.asset)
    stored = render_rating(stored, settings)
    for check in stored.report.checks:
        _check(check, stored)
    render_evidence(stored, run.asset, settings)
    for note in stored.report.notes:
        show_caption(note)
    _downloads(stored)


def _check(check: CheckReport, stored: StoredReport) -> None:
    st.subheader(check.title)
    if check.disagreement:
        show_warning(f"The engines disagree: {check.disagreement}", icon=":material/call_split:")
    for judgement in check.judgements:
        with st.container(border=True):
            _judgement(judgement, stored)
    if check.signals:
        st.markdown("**Measured without a model**")
        st.markdown(plain(items(check.signals)))
    show_caption(check.caveat)


def _judgement(judgement: Judgement, stored: StoredReport) -> None:
    if judgement.state == "judged":
        engine, model, band = judgement.engine, judgement.model, judgement.band
        st.markdown(md("**{}** ({}): **{} evidence** of manipulation", engine, model, band))
    else:
        st.markdown(md("**{}**: {}", judgement.engine, STATE_WORDS[judgement.state]))
        if judgement.reason:
            show_caption(judgement.reason)
    if judgement.rationale:
        st.markdown(plain(judgement.rationale))
    frames = [(m, stored.folder / m.frame_file) for m in judgement.moments if m.frame_file]
    for moment in judgement.moments:
        what = f": {moment.what}" if moment.what else ""
        st.markdown(md("- {}-{} s{}", f"{moment.start_s:.1f}", f"{moment.end_s:.1f}", what))
    shown = [(m, path) for m, path in frames if path.is_file()]
    if shown:
        st.image(
            [str(path) for _, path in shown],
            caption=[f"{m.frame_s:.2f} s" for m, _ in shown],
            width=180,
            output_format="JPEG",
        )
    for claim in judgement.claims:
        at = f"{claim.start_s:.1f} s" if claim.start_s is not None else "time not given"
        checkable = {True: "checkable", False: "not checkable"}.get(claim.checkable, "checkable?")
        st.markdown(md("- **{}** ({}, {}, {})", claim.claim, at, claim.who or "unnamed", checkable))
        if claim.video_shows:
            show_caption(f"The video shows: {claim.video_shows}")
        if claim.search:
            show_caption(f"To check it, search: {claim.search}")
    if judgement.raw_answer:
        st.markdown("The answer as given:")
        st.code(judgement.raw_answer, language="text", wrap_lines=True)


def _downloads(stored: StoredReport) -> None:
    st.subheader("Downloads")
    report = stored.report
    name = f"vchat-factcheck-{report.media.sha256[:12]}-{report.key[:8]}"
    record = {"report": report.model_dump(mode="json")}
    if stored.rating is not None:
        record["human_rating"] = stored.rating.model_dump(mode="json")
    actions = st.container(horizontal=True)

    def offer(label: str, data: str, suffix: str, mime: str, key: str) -> None:
        actions.download_button(label, data=data, file_name=f"{name}{suffix}", mime=mime, on_click="ignore",
                                icon=":material/download:", key=key)  # fmt: skip

    offer("Report (JSON)", json.dumps(record, indent=2, ensure_ascii=False), ".json", "application/json",
          "download_report_json")  # fmt: skip
    offer("Report (HTML, opens offline)", report_html(stored), ".html", "text/html", "download_report_html")
    markup = review_markup(report, stored.rating) if stored.rating else None
    if markup is not None:
        offer("ClaimReview / MediaReview (JSON-LD)", json.dumps(markup, indent=2, ensure_ascii=False), ".jsonld",
              "application/ld+json", "download_report_jsonld")  # fmt: skip
    elif stored.rating is not None:
        show_caption(f"'{stored.rating.rating}' has no MediaReview category: no schema.org markup is made for it.")
    else:
        show_caption("schema.org ClaimReview / MediaReview markup is offered once a person has rated the video.")
