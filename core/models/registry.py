"""The backends by name, so pages, jobs and the CLI never name a model family."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.config import Settings
from core.errors import InputError
from core.models.base import Backend

# (settings, local model path or None, Gemini API key given by the user or None)
BackendFactory = Callable[[Settings, Path | None, str | None], Backend]


def _local(settings: Settings, model_path: Path | None, gemini_api_key: str | None) -> Backend:
    from core.models.local.backend import LocalBackend

    return LocalBackend(settings, model_path)


def _gemini(settings: Settings, model_path: Path | None, gemini_api_key: str | None) -> Backend:
    from core.models.gemini.backend import GeminiBackend

    return GeminiBackend(settings, api_key=gemini_api_key)


def _linked(settings: Settings, model_path: Path | None, gemini_api_key: str | None) -> Backend:
    from core.models.linked import LinkedBackend

    return LinkedBackend(settings, model_path, api_key=gemini_api_key)


_FACTORIES: dict[str, BackendFactory] = {"local": _local, "gemini": _gemini, "linked": _linked}


def register(name: str, factory: BackendFactory) -> None:
    _FACTORIES[name] = factory


def backend_names() -> list[str]:
    return sorted(_FACTORIES)


def get_backend(
    name: str, settings: Settings, model_path: Path | None = None, gemini_api_key: str | None = None
) -> Backend:
    """The backend called `name`. The Gemini key, when the user typed one, overrides GEMINI_API_KEY;
    it travels here and never inside the request, so it cannot reach a stored result."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise InputError(f"Unknown model '{name}'.", f"Choose one of: {', '.join(backend_names())}.") from None
    return factory(settings, model_path, gemini_api_key)
