"""Fine-tune: a dataset checked, a LoRA run started as a separate process, its progress, the adapters."""

import streamlit as st

from core.analysis.choices import left_out_note
from core.config import get_settings
from ui.feedback import show_info
from ui.finetune_datasets import dataset_picker, report_section
from ui.finetune_form import hyper_parameters
from ui.finetune_runs import adapters_section, flash, runs_section
from ui.finetune_start import start_section

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
flash()
dataset = dataset_picker(settings)
values = hyper_parameters()
report = report_section(settings, dataset, values)
start_section(settings, dataset, values, report)
runs_section(settings)
adapters_section(settings)
