"""The engines by name. Adding an engine is one module (see core/models/engine.py) and one line here;
flows, model choices and result keys follow from what the engine declares."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.config import Settings
from core.errors import InputError
from core.models.engine import Engine

# (settings, local model path or None, Gemini API key given by the user or None)
EngineFactory = Callable[[Settings, Path | None, str | None], Engine]


def _local(settings: Settings, model_path: Path | None, api_key: str | None) -> Engine:
    from core.models.local.engine import LocalEngine

    return LocalEngine(settings, model_path)


def _gemini(settings: Settings, model_path: Path | None, api_key: str | None) -> Engine:
    from core.models.gemini.engine import GeminiEngine

    return GeminiEngine(settings, api_key)


ENGINES: dict[str, EngineFactory] = {
    "local": _local,
    "gemini": _gemini,
}


def engine_names() -> list[str]:
    return list(ENGINES)


def get_engine(
    name: str, settings: Settings, model_path: Path | None = None, gemini_api_key: str | None = None
) -> Engine:
    """The engine called `name`. The Gemini key, when the user typed one, overrides GEMINI_API_KEY; it
    travels here and never inside a request, so it cannot reach a stored result."""
    try:
        factory = ENGINES[name]
    except KeyError:
        raise InputError(f"Unknown engine '{name}'.", f"Choose one of: {', '.join(engine_names())}.") from None
    return factory(settings, model_path, gemini_api_key)
