"""The Fine-tune page's Start: the base model, whether the GPU is free for training, and the
trainer started as its own process (`finetune.runs.start_run`, `python -m finetune` in a session of
its own, never in the app's process)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st

from core.config import Settings
from core.errors import InputError
from core.models.local.host import HOST
from core.models.status import weights_status
from finetune.runs import check_run_name, start_run, trains_on_gpu
from ui.errors import shown_errors
from ui.feedback import show_caption, show_info, show_warning
from ui.finetune_datasets import dataset_report
from ui.finetune_form import build_options
from ui.finetune_runs import FLASH, PENDING_RUN

if TYPE_CHECKING:
    from finetune.dataset import ValidationReport

ANYWAY = "ft_beside_loaded_model"


def gpu_section() -> bool:
    """Say where training would run and, while this process holds the local model on the GPU, offer
    to unload it (the button unloads and reruns) or to train beside it. True when Start may go on:
    no GPU (the CPU note), no model held, or "beside it anyway" ticked."""
    if not trains_on_gpu():
        show_info(
            "No GPU here: the trainer runs on the CPU, which it shares with the app (analyses are slower "
            "while it runs).",
            icon=":material/memory:",
        )
        return True
    held = HOST.loaded  # with CUDA there, the app loads the model onto the GPU
    if held is None:
        return True
    show_warning(
        f"The app holds the local model ({held.info.name}) on {held.device}, "
        "and training on the same GPU needs that memory. "
        "Unload it first; it loads again with the next local analysis.",
        icon=":material/memory:",
    )
    cols = st.columns([1, 2])
    if cols[0].button("Unload the local model", icon=":material/eject:", help="Waits for a running analysis."):
        HOST.unload()
        st.session_state[FLASH] = "The local model was unloaded: the GPU is free for training."
        st.rerun()
    return bool(cols[1].checkbox("Train beside it anyway (the GPU has room for both)", key=ANYWAY))


def start_section(
    settings: Settings, data: Path | None, values: dict[str, Any], report: ValidationReport | None
) -> None:
    """The Start button: options checked, the dataset report required, the trainer started."""
    weights = weights_status(settings)
    if not weights.found:
        show_warning(f"No base model to train: {weights.problem}", icon=":material/folder_off:")
    else:
        show_caption(f"Base model: {weights.path} ({weights.origin})")
    free = gpu_section()
    disabled = data is None or not weights.found or not free
    if not st.button("Start training", type="primary", icon=":material/model_training:", disabled=disabled):
        return
    assert data is not None
    with shown_errors("starting a run", lambda exc: f"The run could not be started: {exc}.") as attempt:
        options = build_options(data, values)
        check_run_name(settings, values["run_name"])
        if report is None:
            report = dataset_report(settings, options)
        if report.errors and not options.skip_bad_lines:
            raise InputError(
                f"The dataset has {len(report.bad_lines)} lines with errors (listed above).",
                f"Fix them, or tick 'Skip bad lines' to train on the {len(report.examples)} valid lines.",
            )
        if not report.examples:
            raise InputError("The dataset has no valid line to train on.")
        run_dir = start_run(settings, options, name=values["run_name"] or None)
    if attempt.failed:
        return
    st.session_state[PENDING_RUN] = run_dir.name
    st.session_state[FLASH] = f"Started {run_dir.name}: python -m finetune runs as a separate process."
    st.rerun()
