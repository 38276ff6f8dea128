"""Engines: what turns a prompt (with frames, or with a whole video) into text.

An engine knows how to run a model, nothing about questions, rounds or glue: those are flows
(`core/analysis/`), built on engines. Two shapes:
- a **frame engine** (the local transformers model; vLLM) takes sampled frames with their true
  timestamps, a prompt, generation settings and an adapter, and gives a `Generation`. The R1.5
  perception loop runs on any frame engine.
- a **video engine** (Gemini) takes the whole video, or a public URL, and answers a prompt, free or
  as a schema-checked object.

Every engine declares its `Capabilities` and its `identity` for result keys; the model choices,
the runner and the keys are derived from those, never from lists of names. Adding an engine is one
module and one line in `core/models/registry.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from core.models.base import AnalysisRequest, ModelInfo

if TYPE_CHECKING:
    from core.media.frames import FrameIndex, FrameSample

PartialFn = Callable[[str, int], None]  # the text and the number of tokens generated so far, while generating


class Capabilities(BaseModel):
    """What an engine can do; flows and choices are derived from it."""

    model_config = ConfigDict(frozen=True)

    takes_frames: bool = False  # fed sampled frames (runs the R1.5 perception loop)
    takes_video: bool = False  # takes a whole video file
    reads_urls: bool = False  # reads a public video URL itself (YouTube)
    uses_local_host: bool = False  # runs on this process's one local model, taking turns
    adapters: bool = False  # serves LoRA adapters per request
    hears_audio: bool = False  # its input includes the soundtrack


@dataclass(frozen=True)
class Readiness:
    """One line of an engine's state before Analyze: "ready" (it can run), "note" (it can, read
    this first) or "blocked" (Analyze would be refused; `hint` says what to do)."""

    state: Literal["ready", "note", "blocked"]
    text: str
    hint: str = ""


@dataclass
class Generation:
    text: str
    tokens_in: int
    tokens_out: int
    second_per_grid_t: float | None = None


@runtime_checkable
class Engine(Protocol):
    name: str
    capabilities: Capabilities

    def check(self, request: AnalysisRequest) -> None:
        """Raise a VChatError now if this engine cannot serve `request` (no weights, unknown adapter,
        no key...): before any download or model load."""
        ...

    def identity(self, request: AnalysisRequest) -> dict[str, Any]:
        """Which model would answer, exactly, without loading it: part of the result key."""
        ...

    def readiness(self, request: AnalysisRequest) -> list[Readiness]:
        """What a person should know before Analyze (weights found where, key set or not, adapter
        fit), without loading, downloading or calling anything."""
        ...


@runtime_checkable
class FrameEngine(Engine, Protocol):
    def ready(self) -> ModelInfo:
        """Make the model ready (a local engine loads it, in its host turn) and describe it."""
        ...

    def fit(self, request: AnalysisRequest, index: FrameIndex) -> tuple[AnalysisRequest, list[str]]:
        """The request clipped to what the engine accepts per round (visual tokens), with notes."""
        ...

    def generate(
        self, sample: FrameSample, prompt: str, request: AnalysisRequest, on_partial: PartialFn | None = None
    ) -> Generation: ...

    def model_info(self, request: AnalysisRequest) -> ModelInfo:
        """The model that answered `request` (its adapter included)."""
        ...
