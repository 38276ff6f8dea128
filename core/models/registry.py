"""The backends by name, so pages, jobs and the CLI never name a model family."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.config import Settings
from core.errors import InputError
from core.models.base import Backend

BackendFactory = Callable[[Settings, Path | None], Backend]


def _local(settings: Settings, model_path: Path | None) -> Backend:
    from core.models.local.backend import LocalBackend

    return LocalBackend(settings, model_path)


_FACTORIES: dict[str, BackendFactory] = {"local": _local}


def register(name: str, factory: BackendFactory) -> None:
    _FACTORIES[name] = factory


def backend_names() -> list[str]:
    return sorted(_FACTORIES)


def get_backend(name: str, settings: Settings, model_path: Path | None = None) -> Backend:
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise InputError(f"Unknown model '{name}'.", f"Choose one of: {', '.join(backend_names())}.") from None
    return factory(settings, model_path)
