"""The sidebar every page shares: the model and the settings an analysis depends on."""

from __future__ import annotations

import streamlit as st

from core.analysis.choices import left_out_note, model_choices
from core.config import Settings
from core.models.base import MAX_REQUEST_FRAMES, MAX_ROUNDS
from ui import readiness, state
from ui.feedback import show_caption, show_success

PIXEL_PATCHES = (64, 128, 192, 256, 384, 512, 768, 1024)  # 28x28 patches per frame


def _pixels_label(pixels: int) -> str:
    side = int((pixels**0.5) // 28 * 28)
    return f"{pixels // (28 * 28)} patches (~{side}x{side})"


def render_sidebar(settings: Settings) -> None:
    state.init_state(settings)
    choices = model_choices(settings)
    labels = {choice.key: choice.label for choice in choices}
    if st.session_state.get(state.MODEL_CHOICE) not in labels:  # an adapter removed, a Gemini-only install
        st.session_state[state.MODEL_CHOICE] = choices[0].key
    side = st.sidebar
    side.selectbox(
        "Model",
        options=list(labels),
        format_func=labels.__getitem__,
        key=state.MODEL_CHOICE,
        help="The local model runs on this machine; Gemini needs an API key; linked runs both.",
    )
    choice = state.selected_choice(settings)
    show_caption(choice.help, where=side)
    note = left_out_note()
    if note:
        show_caption(note, where=side)

    # Rounds, frames and pixels are the perception loop's: an engine that watches the whole video
    # (Gemini) samples it itself, so they are shown but not editable.
    samples_frames = choice.capabilities.takes_frames
    not_used = None if samples_frames else "Gemini watches the whole video itself; this applies to frame models."
    side.number_input(
        "Perception rounds",
        min_value=1,
        max_value=MAX_ROUNDS,
        step=1,
        key=state.ROUNDS,
        disabled=not samples_frames,
        help=not_used or "VideoChat-R1.5 looks again, more densely, at the segments it cited.",
    )
    side.number_input(
        "Frames per round",
        min_value=1,
        max_value=MAX_REQUEST_FRAMES,
        step=4,
        key=state.FRAMES,
        disabled=not samples_frames,
        help=not_used,
    )
    side.number_input(
        "Sample by fps (0 = the fixed frame count)",
        min_value=0.0,
        max_value=30.0,
        step=0.5,
        key=state.FPS,
        help="With fps, the frame count is the upper limit.",
    )
    pixel_options = sorted({p * 28 * 28 for p in PIXEL_PATCHES} | {int(st.session_state[state.MAX_PIXELS])})
    side.select_slider(
        "Max pixels per frame",
        options=pixel_options,
        format_func=_pixels_label,
        key=state.MAX_PIXELS,
        disabled=not samples_frames,
        help=not_used,
    )
    with side.container(key="readiness"):
        st.markdown("**Ready?**")
        readiness.show_lines(readiness.current_readiness(settings, choice))

    with side.expander("Generation"):
        st.number_input("Max new tokens per round", min_value=1, max_value=8192, step=64, key=state.MAX_NEW_TOKENS)
        st.number_input("Temperature (0 = greedy)", min_value=0.0, max_value=2.0, step=0.1, key=state.TEMPERATURE)
        st.number_input("Top-p", min_value=0.05, max_value=1.0, step=0.05, key=state.TOP_P)
        st.number_input("Repetition penalty", min_value=0.5, max_value=2.0, step=0.05, key=state.REPETITION_PENALTY)

    with side.expander("Gemini"):
        st.text_input("Gemini model", key=state.GEMINI_MODEL, help="e.g. gemini-flash-latest")
        gemini_key_field(settings)


def gemini_key_field(settings: Settings) -> None:
    """The session's key is never shown: "set" with a Change button, or an empty password field
    whose value moves into the session on Enter. Says which key Gemini calls use."""
    server_key = settings.gemini_api_key is not None
    if state.gemini_api_key():
        show_success("Gemini key set for this session", icon=":material/key:")
        st.button(
            "Change",
            key="gemini_key_change",
            on_click=state.forget_gemini_key,
            help="Forget this session's key and type another.",
        )
        show_caption("Gemini calls use this key" + (" instead of the server's GEMINI_API_KEY." if server_key else "."))
        return
    st.text_input(
        "Gemini API key",
        type="password",
        key=state.GEMINI_KEY_INPUT,
        on_change=state.take_typed_gemini_key,
        help="Press Enter: the key is kept in this browser session only; never stored or written into results.",
    )
    show_caption(
        "The server has a GEMINI_API_KEY: Gemini calls use it. A key typed here replaces it."
        if server_key
        else "No server-side GEMINI_API_KEY: type a key to use Gemini."
    )
