"""The Batch page's jobs: every job in the store with its state (after a reload or a restart too),
and the chosen one's progress, items, charts, evaluation and downloads, redrawn by a fragment that
reads the job store every POLL_S seconds while the job has open items."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
import streamlit as st

from core.config import Settings
from core.jobs.evaluate import Evaluation, evaluate_table
from core.jobs.export import appended_csv, result_values, results_jsonl, results_table, write_csv
from core.jobs.kinds import get_kind, stored_run
from core.jobs.store import ITEM_STATES, Item, Job, JobStore
from core.jobs.summary import eta_seconds, job_status, worker_text
from core.jobs.worker import KEYS, nudge
from ui import analysis, state
from ui.batch_charts import confusion_figure, per_class_figure, seconds_figure, status_figure, values_figure
from ui.batch_view import CURRENT_JOB
from ui.feedback import md, show_caption, show_error, show_progress, show_warning
from ui.text import human_seconds

POLL_S = 2.0
CHART_CONFIG = {"displayModeBar": False, "scrollZoom": False}


def jobs(settings: Settings) -> None:
    """The job list and the chosen job's panel."""
    store = JobStore(settings)
    listed = store.jobs()
    st.subheader("Jobs")
    if not listed:
        show_caption("No batch yet.")
        return
    ids = [job.id for job in listed]
    current = st.session_state.get(CURRENT_JOB)
    if current not in ids:
        st.session_state[CURRENT_JOB] = ids[0]
    by_id = {job.id: job for job in listed}
    st.selectbox("Job", ids, key=CURRENT_JOB, format_func=lambda i: job_title(by_id[i]))
    job_id = st.session_state[CURRENT_JOB]
    open_items = store.counts(job_id).open and by_id[job_id].state == "active"
    st.fragment(panel, run_every=POLL_S if open_items else None)(settings, job_id)


def job_title(job: Job) -> str:
    """A job's name in the list (stable while it runs: its state is shown in its panel)."""
    return f"{job.name} · {get_kind(job.kind).title} · {job.model_label} · {job.created} · {job.id[-6:]}"


def panel(settings: Settings, job_id: str) -> None:
    store = JobStore(settings)
    job = store.job(job_id)
    if job is None:
        show_caption("This job is gone.")
        return
    items = store.items(job_id)
    counts = store.counts(job_id)
    status = job_status(job, counts)
    eta = eta_seconds(items)
    tail = f" · about {human_seconds(eta)} left" if eta and counts.open and job.state == "active" else ""
    show_progress(st.progress(0.0), counts.finished / max(counts.total, 1),
                  f"{counts.finished} of {counts.total} rows finished · {status}{tail}")  # fmt: skip
    show_caption(f"{worker_text(store.lease(), os.getpid())} · job {job.id}")
    if job.hold:
        show_warning(f"Held: {job.hold}")
    if job.skipped:
        show_caption(f"{len(job.skipped)} row(s) of the CSV were skipped (rows {', '.join(list(job.skipped)[:20])}).")
    actions(settings, store, job, counts.get("failed"), counts.open)
    table = items_frame(job, items, settings)
    chosen = st.multiselect("Show rows by status", list(ITEM_STATES), key=f"batch_filter_{job.id}")
    errors_only = st.checkbox("Only rows with an error", key=f"batch_errors_{job.id}")
    shown = table[table["status"].isin(chosen)] if chosen else table
    if errors_only:
        shown = shown[shown["error"] != ""]
    st.dataframe(shown, hide_index=True, width="stretch")
    charts(job, items, table)
    evaluation(job, items, settings)
    downloads(job, items, settings, store)
    open_result(job, items, settings)


def actions(settings: Settings, store: JobStore, job: Job, failed: int, open_count: int) -> None:
    row = st.container(horizontal=True)
    running = job.state == "active" and not job.hold and open_count
    resumable = not running and (open_count or job.state == "cancelled" or job.hold)
    if running and row.button("Pause", icon=":material/pause:", key=f"batch_pause_{job.id}"):
        store.set_state(job.id, "paused")
        st.rerun()
    if resumable and row.button("Resume", icon=":material/play_arrow:", key=f"batch_resume_{job.id}"):
        KEYS.remember(job.id, state.gemini_api_key() or KEYS.get(job.id))
        store.set_state(job.id, "active")
        nudge(settings)
        st.rerun()
    cancellable = open_count and job.state != "cancelled"
    if cancellable and row.button("Cancel", icon=":material/stop_circle:", key=f"batch_cancel_{job.id}"):
        store.set_state(job.id, "cancelled")
        st.rerun()
    if failed and row.button(f"Retry the {failed} failed", icon=":material/replay:", key=f"batch_retry_{job.id}"):
        KEYS.remember(job.id, state.gemini_api_key() or KEYS.get(job.id))
        store.retry_failed(job.id)
        nudge(settings)
        st.rerun()


def items_frame(job: Job, items: list[Item], settings: Settings) -> pd.DataFrame:
    """One line per row: its number, url, the kind's result columns, status, error, seconds."""
    kind_columns = get_kind(job.kind).columns(job)
    records: list[dict[str, Any]] = []
    for item in items:
        values = result_values(job, item, settings)
        record: dict[str, Any] = {"row": item.row_number, "url": item.url}
        if item.question is not None:
            record["question"] = item.question
        if any(i.label for i in items):
            record["label"] = item.label or ""
        record.update({name: values.get(name, "") for name in kind_columns})
        record.update(status=item.state, error=values["error"], seconds=item.seconds)
        records.append(record)
    return pd.DataFrame.from_records(records)


def charts(job: Job, items: list[Item], table: pd.DataFrame) -> None:
    left, right = st.columns(2)
    left.plotly_chart(status_figure(items), config=CHART_CONFIG, key=f"batch_status_{job.id}")
    value_column = get_kind(job.kind).columns(job)[0]
    done = table[table["status"] == "done"]
    if len(done) and value_column in done:
        right.plotly_chart(values_figure(done[value_column].astype(str).tolist(), value_column),
                           config=CHART_CONFIG, key=f"batch_values_{job.id}")  # fmt: skip
    if any(item.stages for item in items):
        st.plotly_chart(seconds_figure(items), config=CHART_CONFIG, key=f"batch_seconds_{job.id}")


def evaluation(job: Job, items: list[Item], settings: Settings) -> Evaluation | None:
    """Scores against the CSV's labels, when it has them (analyze jobs)."""
    if job.kind != "analyze" or not any(item.label for item in items):
        return None
    header, rows = results_table(job, items, settings)
    label_at = next((i for i, name in enumerate(header) if name.strip().lower() == "label"), None)
    if label_at is None:
        return None
    try:
        scored = evaluate_table(header, rows)
    except Exception as exc:
        show_error(exc)
        return None
    st.subheader("Evaluation")
    for engine in scored.engines:
        if engine.accuracy is None:
            show_caption(f"{engine.column}: no row could be scored yet ({engine.failed} failed, "
                         f"{engine.abstained} abstained).")  # fmt: skip
            continue
        st.markdown(
            md("**{}**: accuracy {} of scored rows ({} of labelled rows), macro-F1 {}; scored {}, abstained {}, "
               "failed {}", engine.column, f"{engine.accuracy:.3f}", f"{engine.accuracy_all:.3f}",
               f"{engine.macro_f1:.3f}", engine.scored, engine.abstained, engine.failed)
        )  # fmt: skip
        left, right = st.columns(2)
        left.plotly_chart(confusion_figure(engine), config=CHART_CONFIG, key=f"batch_cm_{job.id}_{engine.column}")
        right.plotly_chart(per_class_figure(engine), config=CHART_CONFIG, key=f"batch_pc_{job.id}_{engine.column}")
    if scored.agreement is not None:
        show_caption(f"The two engines agree on {scored.agreement:.0%} of {scored.agreement_rows} rows.")
    return scored


def downloads(job: Job, items: list[Item], settings: Settings, store: JobStore) -> None:
    excel = st.checkbox("CSV for Excel (UTF-8 with a byte order mark)", key=f"batch_excel_{job.id}")
    stem = job.name.rsplit(".", 1)[0] or "batch"
    header, rows = results_table(job, items, settings)
    row = st.container(horizontal=True)
    row.download_button("Results (CSV)", data=write_csv(header, rows, excel=excel), file_name=f"{stem}-results.csv",
                        mime="text/csv", on_click="ignore", key=f"batch_dl_csv_{job.id}")  # fmt: skip
    row.download_button("Full results (JSON Lines)", data=results_jsonl(job, items, settings),
                        file_name=f"{stem}-results.jsonl", mime="application/jsonl", on_click="ignore",
                        key=f"batch_dl_jsonl_{job.id}")  # fmt: skip
    original = store.original(job.id)
    if original is not None:
        row.download_button("Original CSV with results", data=appended_csv(job, original, items, settings, excel),
                            file_name=f"{stem}-with-results.csv", mime="text/csv", on_click="ignore",
                            key=f"batch_dl_appended_{job.id}")  # fmt: skip


def open_result(job: Job, items: list[Item], settings: Settings) -> None:
    """A finished row's stored result, opened in the Analyze view."""
    done = [item for item in items if item.state == "done" and item.result_ref and item.result_ref.store == "results"]
    if not done:
        return
    by_idx = {item.idx: item for item in done}
    row = st.container(horizontal=True, vertical_alignment="bottom")
    idx = row.selectbox("Open a row's result", list(by_idx), key=f"batch_open_row_{job.id}",
                        format_func=lambda i: f"row {by_idx[i].row_number}: {by_idx[i].url}")  # fmt: skip
    if row.button("Open in Analyze", icon=":material/open_in_new:", key=f"batch_open_{job.id}"):
        run = stored_run(settings, by_idx[idx])
        if run is None:
            show_error("That result is no longer in the result store.")
            return
        st.session_state[analysis.LAST_RUN] = run
        st.switch_page("app_pages/analyze.py")
