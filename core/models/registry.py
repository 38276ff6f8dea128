"""The engines by name. Adding an engine is one module (see core/models/engine.py) and one line here;
flows, model choices and result keys follow from what the engine declares."""

from __future__ import annotations

import importlib.util
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


def _vllm(settings: Settings, model_path: Path | None, api_key: str | None) -> Engine:
    from core.models.vllm.engine import VllmEngine

    return VllmEngine(settings)


ENGINES: dict[str, EngineFactory] = {
    "local": _local,
    "gemini": _gemini,
    "vllm": _vllm,
}


# The packages an engine imports when it runs (import names). `make run GEMINI_ONLY=1` leaves the
# local model's out; an engine whose packages are missing is not offered, and asking for it by name
# says what to install.
REQUIRES: dict[str, tuple[str, ...]] = {
    "local": ("torch", "torchvision", "transformers", "accelerate", "peft"),
    "vllm": ("openai",),
}
INSTALL_HINT = "Run `make install` (without GEMINI_ONLY=1) to install them (about 6.5 GB with CUDA)."


def engine_names() -> list[str]:
    return list(ENGINES)


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def missing_packages(name: str) -> list[str]:
    """The packages engine `name` needs that this environment lacks (found without importing them)."""
    return [package for package in REQUIRES.get(name, ()) if not _installed(package)]


def check_installed(name: str) -> None:
    """InputError naming what to install when engine `name` cannot run in this environment."""
    missing = missing_packages(name)
    if missing:
        raise InputError(
            f"The '{name}' engine is not installed here: it needs {', '.join(missing)}.", INSTALL_HINT
        )


def get_engine(
    name: str, settings: Settings, model_path: Path | None = None, gemini_api_key: str | None = None
) -> Engine:
    """The engine called `name`. The Gemini key, when the user typed one, overrides GEMINI_API_KEY; it
    travels here and never inside a request, so it cannot reach a stored result."""
    try:
        factory = ENGINES[name]
    except KeyError:
        raise InputError(f"Unknown engine '{name}'.", f"Choose one of: {', '.join(engine_names())}.") from None
    check_installed(name)
    return factory(settings, model_path, gemini_api_key)
