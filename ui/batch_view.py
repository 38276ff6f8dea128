"""The Batch page's form: upload a CSV, its validation report, the kind and its options, Start.

The shared sidebar's settings (model, rounds, frames, generation) apply to every row. Start stores a
job in the job store and wakes this server's batch worker (core/jobs/worker.py), which runs it
whether or not a tab stays open; the job panel (ui/batch_job.py) follows it from the store.
"""

from __future__ import annotations

import json

import streamlit as st

from core.config import Settings
from core.jobs.csv_input import BatchInput, read_batch_csv
from core.jobs.kinds import KINDS
from core.jobs.labels import EXAMPLE_SCHEMA
from core.jobs.submit import submit_job
from core.jobs.worker import KEYS, ensure_background_worker, nudge
from ui import state
from ui.feedback import md, show_caption, show_error, show_info, show_success, show_warning

UPLOAD = "batch_upload"
KIND = "batch_kind"
QUESTION = "batch_question"
SCHEMA = "batch_schema"
SKIP_BAD = "batch_skip_bad"
CURRENT_JOB = "batch_job"
SHOWN_PROBLEMS = 30

CSV_HELP = (
    "A url column (an http(s) URL or a file in the media folder) is required; question (this row's "
    "question), label (the expected answer, for scoring) and id are optional; every other column is "
    "passed through to the results."
)


def form(settings: Settings) -> None:
    """The upload, the report, the options and Start (which starts the job in the background)."""
    ensure_background_worker(settings)
    choice = state.selected_choice(settings)
    show_caption(f"Model: {choice.label} · settings in the sidebar apply to every row")
    upload = st.file_uploader("Batch CSV", type=["csv", "txt", "tsv"], key=UPLOAD, help=CSV_HELP)
    if upload is None:
        show_caption("Upload a CSV to start. " + CSV_HELP)
        return
    data = upload.getvalue()
    batch = read_batch_csv(data, settings, name=upload.name)
    report(batch)
    if batch.fatal:
        return
    kinds = list(KINDS)
    kind = st.radio(
        "What to do with each row", kinds, key=KIND, horizontal=True, format_func=lambda name: KINDS[name].title
    )
    show_caption(KINDS[kind].help)
    question = schema = None
    if kind == "analyze":
        placeholder = "The question for rows without their own"
        if batch.has_column("question"):
            placeholder += " (the CSV's question column is used where it is filled)"
        question = st.text_area("Question", key=QUESTION, placeholder=placeholder, height=80)
    elif kind == "labels":
        st.session_state.setdefault(SCHEMA, json.dumps(EXAMPLE_SCHEMA, indent=2))
        schema = st.text_area("Labels (JSON schema: one property per label)", key=SCHEMA, height=260)
    skip_bad = False
    if batch.problems:
        skip_bad = st.checkbox(
            f"Skip the {len(batch.bad_rows)} row(s) with problems and start with the rest", key=SKIP_BAD
        )
    if not st.button("Start the batch", type="primary", icon=":material/play_arrow:", disabled=bool(
        batch.problems and not skip_bad
    )):  # fmt: skip
        return
    try:
        request = state.build_request(question or "(each row's question)", choice)
        job, _ = submit_job(
            batch, settings, kind=kind, model=choice.model, model_label=choice.label, request=request,
            question=question, schema=schema, skip_bad=skip_bad, submitted_by="app", original=data,
        )  # fmt: skip
    except Exception as exc:
        show_error(exc)
        return
    KEYS.remember(job.id, state.gemini_api_key())
    nudge(settings)
    st.session_state[CURRENT_JOB] = job.id
    show_success(f"Started: {len(batch.usable_rows(skip_bad))} row(s) of {batch.name}. It runs on the server; "
                 "closing this tab does not stop it.")  # fmt: skip


def report(batch: BatchInput) -> None:
    """The validation report: rows, columns, notes, and every problem with its spreadsheet row."""
    delimiter = {",": "comma", ";": "semicolon", "\t": "tab"}.get(batch.delimiter, batch.delimiter)
    show_caption(
        f"{batch.name}: {len(batch.rows)} data row(s), columns {', '.join(batch.columns)} ({delimiter}-separated, "
        f"{batch.encoding})"
    )
    for note in batch.notes:
        show_info(note)
    if batch.clean:
        show_success("The CSV is ready: no problem found.")
        return
    if batch.fatal:
        show_error(batch.problems[0].line())
        return
    show_warning(f"{len(batch.problems)} problem(s) in {len(batch.bad_rows)} row(s) (row 1 is the header):")
    lines = [p.line() for p in batch.problems[:SHOWN_PROBLEMS]]
    if len(batch.problems) > SHOWN_PROBLEMS:
        lines.append(f"... and {len(batch.problems) - SHOWN_PROBLEMS} more")
    st.markdown(md("\n".join(["- {}"] * len(lines)), *lines))
