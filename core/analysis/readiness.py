"""Preflight: what a model choice needs before Analyze, said before anything is fetched or loaded.

The sidebar and the Analyze page show these lines; `vchat doctor` prints them. Each engine says its
own (weights found where, key set or not, adapter fit); an engine that is not installed says what
to install.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from core.analysis.flows import flow_for, missing_for
from core.config import Settings
from core.errors import VChatError
from core.models.base import AnalysisRequest
from core.models.engine import Engine, Readiness
from core.models.registry import INSTALL_HINT


def readiness(
    model: str,
    settings: Settings,
    request: AnalysisRequest,
    gemini_api_key: str | None = None,
    model_path: Path | None = None,
) -> list[Readiness]:
    """The state of every engine the model called `model` runs on, for `request`."""
    missing = missing_for(model)
    if missing:
        return [Readiness("blocked", f"Not installed here: needs {', '.join(missing)}.", INSTALL_HINT)]
    try:
        flow = flow_for(model, settings, model_path, gemini_api_key)
    except VChatError as exc:
        return [Readiness("blocked", exc.message, exc.hint or "")]
    lines: list[Readiness] = []
    for engine in flow.engines:
        label = getattr(engine, "label", engine.name)
        for line in _engine_readiness(engine, request):
            lines.append(replace(line, text=f"{label}: {line.text}") if len(flow.engines) > 1 else line)
    return lines


def _engine_readiness(engine: Engine, request: AnalysisRequest) -> list[Readiness]:
    describe = getattr(engine, "readiness", None)
    if describe is not None:
        return describe(request)
    try:  # an engine without its own account: its check says whether it can run
        engine.check(request)
    except VChatError as exc:
        return [Readiness("blocked", exc.message, exc.hint or "")]
    return [Readiness("ready", f"{engine.name}: ready")]


def blocked(lines: list[Readiness]) -> bool:
    return any(line.state == "blocked" for line in lines)
