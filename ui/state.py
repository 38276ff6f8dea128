"""Session state shared by the pages: the sidebar's settings, the model choice, the Gemini key.

The sidebar's widgets use these keys, so every page reads the same values. The Gemini
key lives only here (per browser session) and goes to the engines, never into a request.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from core.analysis.choices import ModelChoice, choice_by_key
from core.config import Settings
from core.models.base import AnalysisRequest, GenerationSettings

MODEL_CHOICE = "model_choice"
ROUNDS = "rounds"
FRAMES = "frames"
FPS = "fps"
MAX_PIXELS = "max_pixels"
MAX_NEW_TOKENS = "max_new_tokens"
TEMPERATURE = "temperature"
TOP_P = "top_p"
REPETITION_PENALTY = "repetition_penalty"
GEMINI_KEY = "gemini_api_key"  # the session's key: never a widget's value, so never in the page
GEMINI_KEY_INPUT = "gemini_api_key_input"  # the password field; emptied as soon as a key is typed
GEMINI_MODEL = "gemini_model_name"

# Names in the address bar that are moved into session state (the original README's bookmark).
QUERY_KEYS = (GEMINI_KEY, GEMINI_MODEL)


def defaults(settings: Settings) -> dict[str, object]:
    """The sidebar's starting values: the request's own defaults (one source for the CLI, jobs and here)."""
    request = AnalysisRequest.model_fields
    generation = GenerationSettings()
    return {
        MODEL_CHOICE: "local",
        ROUNDS: request["rounds"].default,
        FRAMES: request["frames"].default,
        FPS: 0.0,
        MAX_PIXELS: request["max_pixels"].default,
        MAX_NEW_TOKENS: generation.max_new_tokens,
        TEMPERATURE: generation.temperature,
        TOP_P: generation.top_p,
        REPETITION_PENALTY: generation.repetition_penalty,
        GEMINI_KEY: "",
        GEMINI_MODEL: settings.gemini_model,
    }


def init_state(settings: Settings) -> None:
    """Fill missing keys with defaults (before the widgets that use them are drawn)."""
    for key, value in defaults(settings).items():
        st.session_state.setdefault(key, value)


def absorb_query_params() -> None:
    """Move `gemini_api_key` / `gemini_model_name` from the URL into session state and take
    them out of the address bar at once, so the key is not left in history or screenshots."""
    for key in QUERY_KEYS:
        if key in st.query_params:
            value = st.query_params.get(key, "")
            del st.query_params[key]
            if value.strip():
                st.session_state[key] = value.strip()


def take_typed_gemini_key() -> None:
    """The password field's on_change: the typed key moves into the session and the field is
    emptied, so the key does not stay in a widget (the sidebar then shows only that one is set)."""
    typed = str(st.session_state.get(GEMINI_KEY_INPUT) or "").strip()
    st.session_state[GEMINI_KEY_INPUT] = ""
    if typed:
        st.session_state[GEMINI_KEY] = typed


def forget_gemini_key() -> None:
    """The Change button: the session's key is dropped; the empty password field comes back."""
    st.session_state[GEMINI_KEY] = ""
    st.session_state.pop(GEMINI_KEY_INPUT, None)


def gemini_api_key() -> str | None:
    """The key typed or bookmarked in this session (None: the server's GEMINI_API_KEY applies)."""
    value = str(st.session_state.get(GEMINI_KEY) or "").strip()
    return value or None


def selected_choice(settings: Settings) -> ModelChoice:
    return choice_by_key(settings, st.session_state.get(MODEL_CHOICE))


@dataclass
class RequestSettings:
    rounds: int
    frames: int
    fps: float | None
    max_pixels: int
    generation: GenerationSettings


def request_settings() -> RequestSettings:
    state = st.session_state
    fps = float(state.get(FPS) or 0.0)
    return RequestSettings(
        rounds=int(state[ROUNDS]),
        frames=int(state[FRAMES]),
        fps=fps if fps > 0 else None,
        max_pixels=int(state[MAX_PIXELS]),
        generation=GenerationSettings(
            max_new_tokens=int(state[MAX_NEW_TOKENS]),
            temperature=float(state[TEMPERATURE]),
            top_p=float(state[TOP_P]),
            repetition_penalty=float(state[REPETITION_PENALTY]),
        ),
    )


def build_request(question: str, choice: ModelChoice) -> AnalysisRequest:
    """The request for `question` with the sidebar's settings (raises InputError on bad values)."""
    chosen = request_settings()
    gemini_model = str(st.session_state.get(GEMINI_MODEL) or "").strip() or None
    return AnalysisRequest(
        question=question,
        rounds=chosen.rounds,
        frames=chosen.frames,
        fps=chosen.fps,
        max_pixels=chosen.max_pixels,
        generation=chosen.generation,
        adapter=choice.adapter,
        gemini_model=gemini_model if choice.uses_gemini else None,
    )
