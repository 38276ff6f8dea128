"""The Models page's sections. Opening the page loads nothing; loading is a button."""

from __future__ import annotations

import logging
import time

import pandas as pd
import streamlit as st

from core import commands
from core.config import Settings
from core.errors import VChatError
from core.models.local.adapters import find_adapters
from core.models.local.host import HOST, QueueState
from core.models.local.loading import resolve_source
from core.models.status import gemini_key, gemini_reachability, loaded_model_status, weights_status
from ui import state
from ui.feedback import md, show_caption, show_error, show_info, show_success, show_warning, spinner
from ui.text import human_bytes

FLASH = "models_flash"
REACHABILITY = "gemini_reachability"


def loaded_section() -> None:
    st.subheader("Loaded now")
    status = loaded_model_status()
    if status is None:
        show_info(
            "No local model is loaded in this process. Load it below, or it loads with the first local analysis.",
            icon=":material/memory:",
        )
        return
    info = status.info
    cols = st.columns(4)
    cols[0].metric("Model", info.name)
    cols[1].metric("Device", f"{info.device} ({info.dtype})")
    cols[2].metric("Parameters", f"{status.parameters / 1e6:,.1f} M")
    cols[3].metric("Weights in memory", human_bytes(status.weights_bytes))
    rows = {
        "weights from": info.source,
        "load time": f"{info.load_seconds:.1f} s" if info.load_seconds is not None else None,
        "GPU": status.cuda_device,
        "GPU memory allocated": human_bytes(status.cuda_allocated_bytes) if status.cuda_allocated_bytes else None,
        "GPU memory reserved": human_bytes(status.cuda_reserved_bytes) if status.cuda_reserved_bytes else None,
        "in use": "an analysis is running" if HOST.busy else "idle",
        "sessions waiting": str(HOST.waiting),
    }
    table = [(name, str(value)) for name, value in rows.items() if value is not None]
    st.dataframe(pd.DataFrame(table, columns=["fact", "value"]), hide_index=True)
    if st.button(
        "Unload the local model", icon=":material/eject:", help="Waits for a running analysis to finish, then frees it."
    ):
        note = st.empty()
        with spinner("Unloading the local model...", show_time=True):
            HOST.unload(on_queued=_queued_note(note))
        note.empty()
        st.session_state[FLASH] = "The local model was unloaded."
        st.rerun()


def weights_section(settings: Settings) -> None:
    st.subheader("Local weights")
    weights = weights_status(settings)
    if weights.found:
        show_success(f"Found ({weights.origin}): {weights.path}", icon=":material/folder:")
    else:  # how to get them is said once, in the pre-seed section below
        problem = weights.problem or "No weights found."
        show_warning(f"{problem} See how to get them below.", icon=":material/folder_off:")
    flash = st.session_state.pop(FLASH, None)
    if flash:
        show_success(flash)
    already = weights.found and HOST.is_loaded(settings, resolve_source(settings))
    if st.button(
        "Load the local model", type="primary", icon=":material/download:", disabled=not weights.found or already
    ):
        _load(settings)


def _queued_note(note):  # type: ignore[no-untyped-def]
    def queued(state_: QueueState) -> None:
        show_info(f"Queued: an analysis is using the local model (waiting {state_.waited_s:.0f} s).", where=note)

    return queued


def _load(settings: Settings) -> None:
    note = st.empty()
    started = time.perf_counter()
    try:
        with spinner("Loading the local model...", show_time=True):
            loaded = HOST.load(settings, on_queued=_queued_note(note))
    except Exception as exc:
        note.empty()
        show_error(exc)
        return
    st.session_state[FLASH] = (
        f"{loaded.info.name} is loaded on {loaded.info.device} (took {time.perf_counter() - started:.1f} s)."
    )
    st.rerun()


def adapters_section(settings: Settings) -> None:
    st.subheader("Fine-tuned adapters")
    adapters = find_adapters(settings)
    if not adapters:
        st.caption(
            md(
                "No finished adapters in {}. Train one with `{}`.",
                settings.adapters_dir,
                commands.train().command,
            )
        )
        return
    rows = [
        {
            "name": a.name,
            "base model": a.base_model or "",
            "rank": a.rank,
            "config sha256": a.config_hash[:12],
            "folder": str(a.path),
        }
        for a in adapters
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    st.caption("Pick one in the sidebar's model list; it runs on the loaded base model.")


def gemini_section(settings: Settings) -> None:
    st.subheader("Gemini")
    typed = state.gemini_api_key()
    if typed:
        where = "a key typed in this session (sidebar or bookmark)"
    elif settings.gemini_api_key is not None:
        where = "the server's GEMINI_API_KEY"
    else:
        where = "none: type a key in the sidebar, or set GEMINI_API_KEY on the server"
    name = str(st.session_state.get(state.GEMINI_MODEL) or "").strip() or settings.gemini_model
    st.markdown(md("Key: {}  \nModel: {}", where, name))
    if st.button("Check Gemini", icon=":material/network_check:", disabled=gemini_key(settings, typed) is None):
        with spinner("Asking Gemini for the model's description..."):
            st.session_state[REACHABILITY] = gemini_reachability(settings, typed, name)
    result = st.session_state.get(REACHABILITY)
    if result is not None:
        message = f"{result.message} ({result.seconds:.2f} s)"
        (show_success if result.ok else show_error)(message)


def preseed_section(settings: Settings) -> None:
    """How weights get here: open while none are found, a folded note once they are."""
    found = weights_status(settings).found
    with st.expander("Where the local weights come from, and how to pre-seed them", expanded=not found):
        st.markdown(
            md(
                "vChat downloads no weights unless `VCHAT_MODEL_DOWNLOAD=1`. It looks at `VCHAT_MODEL_PATH`, "
                "then {}, then {} in the Hugging Face cache.",
                settings.preseed_dir,
                settings.model_id,
            )
        )
        for shown in (commands.preseed(settings), commands.TINY_DEMO):
            st.code(shown.command, language="bash")
            show_caption(shown.what)


def safe(section, *args) -> None:  # type: ignore[no-untyped-def]
    """Draw a section; a failure in one (a broken adapter folder...) is one line, not a page crash."""
    try:
        section(*args)
    except VChatError as exc:
        show_error(exc)
    except Exception as exc:  # anything else: one line here, the traceback in the server log
        logging.getLogger(__name__).exception("models page section failed")
        show_error(exc)
