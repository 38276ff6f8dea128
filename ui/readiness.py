"""Preflight in the page: the chosen model's readiness (weights, key, adapter), before Analyze."""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.analysis.choices import ModelChoice
from core.analysis.readiness import readiness
from core.config import Settings
from core.errors import VChatError
from core.models.engine import Readiness
from ui import state
from ui.feedback import md, show_warning

ICONS = {"ready": ":material/check_circle:", "note": ":material/info:", "blocked": ":material/block:"}


def current_readiness(settings: Settings, choice: ModelChoice) -> list[Readiness]:
    """The readiness of `choice` with the sidebar's settings (no question asked yet)."""
    try:
        request = state.build_request("(readiness check)", choice)
    except (VChatError, ValueError) as exc:  # a sidebar value out of range: said where it is set
        return [Readiness("blocked", str(exc))]
    return readiness(choice.model, settings, request, gemini_api_key=state.gemini_api_key())


def show_lines(lines: list[Readiness], where: Any = None) -> None:
    """One caption per line, an icon for its state (the hint of a blocked line below it)."""
    target = st if where is None else where
    for line in lines:
        target.caption(md(ICONS[line.state] + " {}", line.text))


def show_before_analyze(lines: list[Readiness]) -> None:
    """On the Analyze page: what would stop the analysis, with what to do; else a line of state."""
    stopping = [line for line in lines if line.state == "blocked"]
    for line in stopping:
        show_warning(f"{line.text} {line.hint}".strip(), icon=ICONS["blocked"])
    if not stopping:
        show_lines(lines)
