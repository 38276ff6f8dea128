"""Session state shared by the pages: the sidebar's settings, the model choice, the Gemini key.

The sidebar's widgets use these keys, so every page reads the same values. The Gemini
key lives only here (per browser session) and goes to `get_backend`, never into a request.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from core.config import Settings
from core.media.frames import DEFAULT_MAX_PIXELS
from core.models.base import AnalysisRequest, GenerationSettings
from core.models.choices import ModelChoice, choice_by_key

MODEL_CHOICE = "model_choice"
ROUNDS = "rounds"
FRAMES = "frames"
FPS = "fps"
MAX_PIXELS = "max_pixels"
MAX_NEW_TOKENS = "max_new_tokens"
TEMPERATURE = "temperature"
TOP_P = "top_p"
REPETITION_PENALTY = "repetition_penalty"
GEMINI_KEY = "gemini_api_key"
GEMINI_MODEL = "gemini_model_name"

# Names in the address bar that are moved into session state (the original README's bookmark).
QUERY_KEYS = (GEMINI_KEY, GEMINI_MODEL)


def defaults(settings: Settings) -> dict[str, object]:
    return {
        MODEL_CHOICE: "local",
        ROUNDS: 3,
        FRAMES: 32,
        FPS: 0.0,
        MAX_PIXELS: DEFAULT_MAX_PIXELS,
        MAX_NEW_TOKENS: 512,
        TEMPERATURE: 0.0,
        TOP_P: 1.0,
        REPETITION_PENALTY: 1.05,
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
        rounds=int(state.get(ROUNDS, 3)),
        frames=int(state.get(FRAMES, 32)),
        fps=fps if fps > 0 else None,
        max_pixels=int(state.get(MAX_PIXELS, DEFAULT_MAX_PIXELS)),
        generation=GenerationSettings(
            max_new_tokens=int(state.get(MAX_NEW_TOKENS, 512)),
            temperature=float(state.get(TEMPERATURE, 0.0)),
            top_p=float(state.get(TOP_P, 1.0)),
            repetition_penalty=float(state.get(REPETITION_PENALTY, 1.05)),
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
