"""Flows: how a question about a video is answered, built on engines (core/models).

A flow checks a request, names everything its answer depends on (for the result key), and runs.
It decides which of its steps need the process's one local model: it takes the model's turn
(`turn()`, given by the runner) around those steps only, so remote calls (Gemini) never make other
sessions wait.

- `PerceptionFlow`: the VideoChat-R1.5 loop (core/analysis/perception.py) on any frame engine.
- `VideoAnswerFlow` (video_answer.py): one schema-checked answer from an engine that takes the
  whole video (Gemini).
- `LinkedFlow` (linked.py): Gemini's digest as context for the local loop, and both answers compared.

`flow_for(name)` picks the flow from what the engine declares, so a new frame engine (vLLM) gets
the perception loop without a line here.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from core.analysis.perception import PERCEPTION_VERSION, cut_off_note, run_perception
from core.config import Settings
from core.errors import InputError
from core.media.frames import FrameSample
from core.media.pipeline import MediaAsset
from core.models.base import AnalysisRequest, AnalysisResult, StreamFn
from core.models.engine import Capabilities, Engine, FrameEngine, Generation
from core.models.registry import engine_names, get_engine, missing_packages
from core.progress import ProgressFn

# Takes the local model's turn for the body (the runner's queue, with its "queued" reports).
TurnFn = Callable[[], AbstractContextManager[Any]]
LINKED = "linked"
TOKEN_REPORT_S = 0.25  # how often a round reports its tokens while it generates


@contextlib.contextmanager
def no_turn() -> Iterator[None]:
    yield


class Flow(Protocol):
    name: str
    engines: tuple[Engine, ...]

    def check(self, request: AnalysisRequest) -> None: ...

    def identity(self, request: AnalysisRequest) -> dict[str, Any]: ...

    def run(
        self,
        asset: MediaAsset,
        request: AnalysisRequest,
        stage: ProgressFn,
        on_text: StreamFn | None,
        turn: TurnFn,
    ) -> AnalysisResult: ...


def capabilities(flow: Flow) -> Capabilities:
    """What a flow's engines can do together (e.g. any of them runs on the local model host)."""
    merged: dict[str, bool] = {}
    for engine in flow.engines:
        for name, value in engine.capabilities.model_dump().items():
            merged[name] = merged.get(name, False) or value
    return Capabilities(**merged)


class SingleEngineFlow:
    """A flow on one engine: its checks are the engine's, its identity the engine's plus the flow's."""

    kind = ""

    def __init__(self, engine: Any, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.name = engine.name
        self.engines: tuple[Engine, ...] = (engine,)

    def check(self, request: AnalysisRequest) -> None:
        self.engine.check(request)

    def identity(self, request: AnalysisRequest) -> dict[str, Any]:
        return {**self.engine.identity(request), "flow": self.kind, **self.flow_identity()}

    def flow_identity(self) -> dict[str, Any]:
        """What else the answer depends on (versions, readings)."""
        return {}


class PerceptionFlow(SingleEngineFlow):
    """The R1.5 iterative perception loop on a frame engine."""

    kind = "perception"
    engine: FrameEngine

    def flow_identity(self) -> dict[str, Any]:
        return {"perception": PERCEPTION_VERSION, "glue_time": self.settings.glue_time}

    def run(
        self,
        asset: MediaAsset,
        request: AnalysisRequest,
        stage: ProgressFn,
        on_text: StreamFn | None,
        turn: TurnFn,
    ) -> AnalysisResult:
        self.run_frames_stage(asset, stage)
        # Only the local engine shares this process's one model; a served engine (vLLM) runs at once.
        with turn() if self.engine.capabilities.uses_local_host else no_turn():
            return self.answer(asset, request, stage, on_text)

    def run_frames_stage(self, asset: MediaAsset, stage: ProgressFn) -> None:
        """Read the video's frame index (demux only) before taking the model's turn."""
        index = asset.frames(self.settings).index
        stage("frames", f"{index.count} frames, {index.duration_s:.1f} s at {index.fps:.3g} fps", None)

    def answer(
        self, asset: MediaAsset, request: AnalysisRequest, stage: ProgressFn, on_text: StreamFn | None
    ) -> AnalysisResult:
        """The loop itself; the caller holds the engine's turn when it needs one."""
        started = time.perf_counter()
        if not getattr(self.engine, "is_ready", lambda: True)():
            stage("model", "loading the local model (once per process; the first time takes a while)", None)
        info = self.engine.ready()
        stage("model", f"{info.name} ready on {info.device} ({info.dtype})", None)
        source = asset.frames(self.settings)
        request, notes = self.engine.fit(request, source.index)
        budget = request.generation.max_new_tokens

        def generate(sample: FrameSample, prompt: str, number: int) -> Generation:
            where = f"round {number} of {request.rounds}"
            stage("round", f"{where}: {len(sample.indices)} frames in, generating", (number - 1) / request.rounds)
            last_report = [0.0]

            def partial(text: str, tokens: int | None = None) -> None:
                if on_text:
                    on_text(number, text)
                now = time.monotonic()
                if tokens is not None and now - last_report[0] >= TOKEN_REPORT_S:
                    last_report[0] = now
                    done = (number - 1 + min(tokens / budget, 1.0)) / request.rounds
                    stage("round", f"{where}: {_tokens(tokens)} generated (at most {budget})", done)

            generation = self.engine.generate(sample, prompt, request, partial)
            stage("round", f"{where}: {_tokens(generation.tokens_out)} generated", number / request.rounds)
            return generation

        stage("analyze", f"{request.rounds} round{'s' if request.rounds != 1 else ''} with {info.name}", None)
        rounds = run_perception(source, request, generate, glue_time=self.settings.glue_time, progress=stage)
        budget = request.generation.max_new_tokens
        notes += [f"Round {r.round} was {cut_off_note(budget)}." for r in rounds if r.truncated]
        return AnalysisResult(
            question=request.question,
            answer=rounds[-1].answer or "",
            model=self.engine.model_info(request),
            request=request,
            media_sha256=asset.sha256,
            rounds=rounds,
            notes=notes,
            seconds=round(time.perf_counter() - started, 3),
        )


def _tokens(count: int) -> str:
    return f"{count} token{'s' if count != 1 else ''}"


def model_names() -> list[str]:
    """What `--model` and the model choices accept: every engine, and linked mode."""
    return [*engine_names(), LINKED]


def engines_of(name: str) -> tuple[str, ...]:
    """The engines the model called `name` runs on."""
    return ("gemini", "local") if name == LINKED else (name,)


def missing_for(name: str) -> list[str]:
    """The packages the model called `name` needs and this environment lacks (none: it can run)."""
    return list(dict.fromkeys(package for engine in engines_of(name) for package in missing_packages(engine)))


def flow_for(name: str, settings: Settings, model_path: Path | None = None, gemini_api_key: str | None = None) -> Flow:
    """The flow that answers with the model called `name`."""
    if name == LINKED:
        from core.analysis.linked import LinkedFlow

        gemini = get_engine("gemini", settings, model_path, gemini_api_key)
        local = get_engine("local", settings, model_path, gemini_api_key)
        return LinkedFlow(gemini, local, settings)  # type: ignore[arg-type]
    if name not in model_names():
        raise InputError(f"Unknown model '{name}'.", f"Choose one of: {', '.join(model_names())}.")
    engine = get_engine(name, settings, model_path, gemini_api_key)
    if engine.capabilities.takes_frames:
        return PerceptionFlow(engine, settings)  # type: ignore[arg-type]
    if engine.capabilities.takes_video:
        from core.analysis.video_answer import VideoAnswerFlow

        return VideoAnswerFlow(engine, settings)  # type: ignore[arg-type]
    raise InputError(f"The engine '{name}' takes neither frames nor a video.")
