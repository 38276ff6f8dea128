"""Fine-tune: a dataset checked, a LoRA run started as a separate process, its progress, the adapters."""

import streamlit as st

from core.analysis.choices import left_out_note
from core.config import get_settings
from ui import finetune_view as view
from ui.feedback import show_info

settings = get_settings()
st.title("Fine-tune")
st.caption(
    "Train a LoRA adapter of the local model on your videos. The trainer runs as its own process; "
    "this page reads its progress from the run folder, so closing the tab stops nothing."
)
left_out = left_out_note()
if left_out:  # a Gemini-only install cannot train
    show_info(left_out, icon=":material/info:")
    st.stop()
view.flash()
dataset = view.dataset_picker(settings)
values = view.hyper_parameters()
report = view.report_section(settings, dataset, values)
view.start_section(settings, dataset, values, report)
view.runs_section(settings)
view.adapters_section(settings)
