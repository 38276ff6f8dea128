"""The Fine-tune page's dataset: picked from the data or media folder or uploaded (both in
`finetune.datasets`), then checked line by line (`finetune.runs.check_dataset`), the report kept
in session state while the file and the sampling are unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from core.config import Settings
from finetune.datasets import check_key, dataset_files, dataset_label, save_upload, upload_folder
from finetune.options import TrainOptions
from finetune.runs import check_dataset
from ui.errors import shown_errors
from ui.feedback import md, show_caption, show_error, show_info, show_success, show_warning, spinner
from ui.finetune_form import sampling_options

if TYPE_CHECKING:
    from finetune.dataset import ValidationReport

MAX_UPLOAD_MB = 64
MAX_CACHED_REPORTS = 8
SOURCE = "ft_source"
DATASET = "ft_dataset"
UPLOAD = "ft_upload"
REPORTS = "ft_reports"
RECHECK = "ft_recheck"
SOURCES = ("From a folder", "Upload")


def dataset_picker(settings: Settings) -> Path | None:
    """Pick a JSONL file from the data or media folder, or upload one; return its path."""
    st.subheader("Dataset")
    kind = st.radio("Dataset", SOURCES, horizontal=True, key=SOURCE, label_visibility="collapsed")
    if kind == "Upload":
        upload = st.file_uploader(
            "JSONL dataset",
            type=["jsonl"],
            key=UPLOAD,
            max_upload_size=MAX_UPLOAD_MB,
            help=f"Kept in {upload_folder(settings)}; an existing file is never overwritten.",
        )
        if upload is None:
            st.caption(
                md(
                    "One JSON object a line: `video_path` and `text` (USER: / ASSISTANT: turns) or `messages`. "
                    "Video paths are looked up in the media folder {}.",
                    settings.media_dir,
                )
            )
            return None
        with shown_errors("saving an upload", lambda exc: f"The upload could not be saved: {exc}") as attempt:
            path = save_upload(settings, upload.name, upload.getvalue())
        if attempt.failed:
            return None
        show_caption(f"Saved as {path} (listed under '{SOURCES[0]}' from now on).")
        return path
    files = dataset_files(settings)
    if not files:
        show_info(
            f"No .jsonl datasets in the data folder {settings.data_dir} or the media folder {settings.media_dir} "
            "yet. Put one there, or upload one.",
            icon=":material/dataset:",
        )
        return None
    options = [str(p) for p in files]
    if st.session_state.get(DATASET) not in options:
        st.session_state.pop(DATASET, None)
    chosen = st.selectbox("JSONL file", options, key=DATASET, format_func=lambda p: dataset_label(settings, Path(p)))
    return Path(chosen) if chosen else None


def dataset_report(settings: Settings, options: TrainOptions) -> ValidationReport:
    """check_dataset's report for these options, from session state when the file and the
    sampling are unchanged; otherwise checked now, under a spinner."""
    key = check_key(settings, options)
    cache: dict[str, ValidationReport] = st.session_state.setdefault(REPORTS, {})
    if st.session_state.pop(RECHECK, False):
        cache.pop(key, None)
    if key not in cache:
        with spinner(
            f"Checking every line of {options.data.name}: each video through the media pipeline, "
            "its training frames decoded...",
            show_time=True,
        ):
            report = check_dataset(settings, options)
        cache[key] = report
        while len(cache) > MAX_CACHED_REPORTS:
            cache.pop(next(iter(cache)))
    return cache[key]


def report_section(settings: Settings, data: Path | None, values: dict[str, Any]) -> ValidationReport | None:
    """Check the picked dataset (cached) and show the report: counts, then every error by line."""
    if data is None:
        return None
    st.subheader("Dataset check")
    with shown_errors(
        "the dataset check", lambda exc: f"The dataset {data} cannot be read: {exc.strerror or exc}."
    ) as attempt:
        report = dataset_report(settings, sampling_options(data, values))
    if attempt.failed:
        return None
    counts = (
        f"{report.lines} lines, {len(report.examples)} valid, {len(report.bad_lines)} with errors, "
        f"{report.videos} videos checked"
    )
    if report.ok:
        show_success(f"Ready to train: {counts}.", icon=":material/check_circle:")
    elif report.examples:
        show_warning(
            f"{counts}. Fix the lines below, or tick 'Skip bad lines' to train on the "
            f"{len(report.examples)} valid ones.",
            icon=":material/warning:",
        )
    else:
        show_error(f"Nothing to train on: {counts}.")
    if report.errors:
        rows = [{"line": e.line, "problem": e.message} for e in report.errors]
        st.dataframe(pd.DataFrame(rows), hide_index=True)
    if st.button("Check again", icon=":material/refresh:", help="Videos may have changed since the last check."):
        st.session_state[RECHECK] = True
        st.rerun()
    return report
