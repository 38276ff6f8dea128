"""Batch: a CSV of videos in, every row analysed with the sidebar's settings by the server's batch
worker (it survives closed tabs and restarts), tables, charts and safe CSV downloads out."""

import streamlit as st

from core.config import get_settings
from ui import batch_job, batch_view

settings = get_settings()
st.title("Batch")
batch_view.form(settings)
batch_job.jobs(settings)
