"""The Gemini backend: one question, one schema-checked answer with the time spans it rests on."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, Field

from core.analysis.perception import check_span
from core.config import Settings
from core.media.pipeline import MediaAsset
from core.models.base import (
    AnalysisRequest,
    AnalysisResult,
    DroppedSegment,
    GeminiUsage,
    ModelInfo,
    RoundRecord,
    StreamFn,
)
from core.models.gemini.client import GeminiClient
from core.models.gemini.generate import generate, parse_structured
from core.models.gemini.video import VideoInput, file_input, youtube_input

ANSWER_PROMPT = """Watch the whole video, listen to its audio, and answer this question about it:
"{question}"

Give your reasoning, then the answer. In "evidence", list the time spans of the video, in seconds \
from its start, that your answer rests on, each with what is seen or heard there."""


class Evidence(BaseModel):
    start_s: float
    end_s: float
    what: str


class GeminiAnswer(BaseModel):
    """The shape Gemini must answer in (sent as response_schema)."""

    reasoning: str
    answer: str
    evidence: list[Evidence] = Field(default_factory=list)


def answer_prompt(question: str, context: str | None = None) -> str:
    prompt = ANSWER_PROMPT.format(question=question.replace('"', "'"))
    return f"Notes about this video (may be incomplete):\n{context.strip()}\n\n{prompt}" if context else prompt


def answer_round(
    client: GeminiClient,
    video: VideoInput,
    request: AnalysisRequest,
    duration_s: float | None,
    usage: GeminiUsage,
) -> RoundRecord:
    """Ask Gemini the question about `video` and record it as one round (spans checked against the video)."""
    started = time.perf_counter()
    prompt = answer_prompt(request.question, request.context)
    generated = generate(client, [video.part, prompt], "to the question", usage, request.generation, GeminiAnswer)
    parsed = parse_structured(client, generated, GeminiAnswer, "to the question")
    segments, dropped = [], []
    for item in parsed.evidence:
        segment, reason = check_span(item.start_s, item.end_s, duration_s if duration_s else float("inf"))
        if segment is None:
            dropped.append(DroppedSegment(text=f"({item.start_s}, {item.end_s}) {item.what[:60]}", reason=reason))
        else:
            segments.append(segment)
    return RoundRecord(
        round=1,
        prompt=prompt,
        raw_output=client.scrub(generated.text),
        reasoning=parsed.reasoning.strip() or None,
        answer=parsed.answer.strip() or None,
        segments=segments,
        dropped_segments=dropped,
        parse_notes=[f"{item.start_s:g}-{item.end_s:g} s: {item.what}" for item in parsed.evidence][:32],
        sampling=f"gemini (server-side, {request.fps or 1:g} fps)",
        frame_timestamps=[],
        frame_indices=[],
        sampled_fps=request.fps or 1.0,
        tokens_in=generated.prompt_tokens,
        tokens_out=generated.output_tokens,
        seconds=round(time.perf_counter() - started, 3),
    )


class GeminiBackend:
    """Google Gemini through google-genai (gemini-flash-latest unless the request names another)."""

    name = "gemini"

    def __init__(self, settings: Settings, api_key: str | None = None) -> None:
        self.settings = settings
        self.api_key = api_key

    def client(self, request: AnalysisRequest | None = None) -> GeminiClient:
        return GeminiClient(self.settings, self.api_key, request.gemini_model if request else None)

    def check(self, request: AnalysisRequest | None = None) -> None:
        """A key and a well-formed model name must be there (no network call: see GeminiClient.ping)."""
        self.client(request)

    @contextlib.contextmanager
    def video(self, client: GeminiClient, asset: MediaAsset, usage: GeminiUsage, fps: float | None) -> Iterator[Any]:
        with file_input(client, asset.sanitized_path, asset.sha256, usage.calls, fps=fps) as video:
            usage.path_taken, usage.file_name = video.path_taken, video.file_name
            usage.reused_upload = video.reused_upload
            yield video

    def analyze(self, asset: MediaAsset, request: AnalysisRequest, on_text: StreamFn | None = None) -> AnalysisResult:
        started = time.perf_counter()
        client = self.client(request)
        usage = GeminiUsage(model=client.model)
        with self.video(client, asset, usage, request.fps) as video:
            record = answer_round(client, video, request, asset.probe.duration_s, usage)
        return self._result(client, request, record, usage, asset.sha256, started, on_text)

    def analyze_youtube(self, url: str, request: AnalysisRequest, on_text: StreamFn | None = None) -> AnalysisResult:
        """A public YouTube video straight from its URL: Gemini fetches it, nothing is downloaded."""
        started = time.perf_counter()
        client = self.client(request)
        video = youtube_input(url, request.fps)
        usage = GeminiUsage(model=client.model, path_taken=video.path_taken)
        record = answer_round(client, video, request, None, usage)
        result = self._result(client, request, record, usage, None, started, on_text)
        result.notes.append(f"Gemini read the video from {url}; no copy was downloaded, so no provenance was read.")
        return result

    def _result(
        self,
        client: GeminiClient,
        request: AnalysisRequest,
        record: RoundRecord,
        usage: GeminiUsage,
        sha256: str | None,
        started: float,
        on_text: StreamFn | None,
    ) -> AnalysisResult:
        answer = record.answer or ""
        if on_text:
            on_text(1, answer)
        return AnalysisResult(
            question=request.question,
            answer=answer,
            model=ModelInfo(backend=self.name, name=client.model, source="Google Gemini API"),
            request=request,
            media_sha256=sha256,
            rounds=[record],
            notes=[f"{call.what}: {call.attempts} attempt(s)" for call in usage.calls if call.attempts > 1],
            seconds=round(time.perf_counter() - started, 3),
            gemini=usage,
        )
