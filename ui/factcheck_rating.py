"""The rating part of a fact-check report: the machine's suggestion (marked as such, with its reasons
and the engines' disagreements) and a person's rating, given in a form and kept beside the report."""

from __future__ import annotations

import streamlit as st

from core.analysis.factcheck.report import RATINGS
from core.analysis.factcheck.store import FactCheckStore, StoredReport
from core.config import Settings
from ui.feedback import md, plain, show_caption, show_error, show_success, show_warning
from ui.result_text import items


def render_rating(stored: StoredReport, settings: Settings) -> StoredReport:
    """Both ratings, and the form for a person's; returns the stored report with any new rating."""
    st.subheader("Rating")
    overall = stored.report.overall
    with st.container(border=True):
        st.markdown(md("**Suggested: {}** (a suggestion for a person, not a verdict)", overall.suggested))
        st.markdown(plain(items(overall.reasons)))
        for disagreement in overall.disagreements:
            show_warning(f"The engines disagree. {disagreement}", icon=":material/call_split:")
    if stored.rating is not None:
        rating = stored.rating
        show_success(
            f"A person's rating: {rating.rating}, by {rating.name} ({rating.at})."
            + (f" {rating.note}" if rating.note else ""),
            icon=":material/person:",
        )
    return _form(stored, settings)


def _form(stored: StoredReport, settings: Settings) -> StoredReport:
    label = "Change the person's rating" if stored.rating else "Give a person's rating"
    with st.expander(label, expanded=stored.rating is None), st.form("human_rating", border=False):
        current = stored.rating.rating if stored.rating else stored.report.overall.suggested
        rating = st.selectbox("Rating", RATINGS, index=RATINGS.index(current), key="rating_choice")
        name = st.text_input("Your name", value=stored.rating.name if stored.rating else "", key="rating_name")
        note = st.text_area(
            "Why (published with the rating)", value=stored.rating.note if stored.rating else "", key="rating_note"
        )
        claim = st.text_input(
            "The claim the video was shared with (optional; for ClaimReview)",
            value=stored.rating.claim if stored.rating else "",
        )
        show_caption("Kept beside the machine's report, which it never changes.")
        if not st.form_submit_button("Save the rating", type="primary"):
            return stored
    if not name.strip():
        show_error("A rating needs the name of the person who gives it.")
        return stored
    saved = FactCheckStore(settings).rate(stored, rating, name, note, claim)
    show_success("Rating saved.")
    return saved
