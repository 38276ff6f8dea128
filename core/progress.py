"""The one progress callback every long step takes: (stage, message, fraction done or None).

Stages, in the order an analysis meets them: fetch, download, probe, provenance, sanitize, ready,
remote, frames, queue, model, analyze, round, store, done."""

from __future__ import annotations

from collections.abc import Callable

ProgressFn = Callable[[str, str, float | None], None]


def no_progress(stage: str, message: str, fraction: float | None) -> None:
    """A ProgressFn that reports nowhere."""
