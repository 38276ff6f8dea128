"""One question, one schema-checked answer from an engine that watches the whole video (Gemini),
with the time spans the answer rests on; and the same from a public YouTube URL."""

from __future__ import annotations

import time

from pydantic import BaseModel, Field

from core.analysis.flows import SingleEngineFlow, TurnFn
from core.analysis.spans import check_span
from core.media.pipeline import MediaAsset
from core.models.base import AnalysisRequest, AnalysisResult, DroppedSegment, GeminiUsage, RoundRecord, StreamFn
from core.models.gemini.client import GeminiClient
from core.models.gemini.engine import GeminiEngine
from core.models.gemini.video import VideoInput
from core.progress import ProgressFn

ANSWER_PROMPT = """Watch the whole video, listen to its audio, and answer this question about it:
"{question}"

Give your reasoning, then the answer. In "evidence", list the time spans of the video, in seconds \
from its start, that your answer rests on, each with what is seen or heard there."""


class Evidence(BaseModel):
    start_s: float
    end_s: float
    what: str


class GeminiAnswer(BaseModel):
    """The shape the answer must take (sent as response_schema)."""

    reasoning: str
    answer: str
    evidence: list[Evidence] = Field(default_factory=list)


def answer_prompt(question: str, context: str | None = None) -> str:
    prompt = ANSWER_PROMPT.format(question=question.replace('"', "'"))
    return f"Notes about this video (may be incomplete):\n{context.strip()}\n\n{prompt}" if context else prompt


def answer_round(
    engine: GeminiEngine,
    client: GeminiClient,
    video: VideoInput,
    request: AnalysisRequest,
    duration_s: float | None,
    usage: GeminiUsage,
) -> RoundRecord:
    """Ask the question about `video` and record it as one round (spans checked against the video)."""
    started = time.perf_counter()
    prompt = answer_prompt(request.question, request.context)
    parsed, generated = engine.ask(
        client, [video.part, prompt], "to the question", usage, GeminiAnswer, request.generation
    )
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
        sampling=f"{engine.name} (server-side, {request.fps or 1:g} fps)",
        frame_timestamps=[],
        frame_indices=[],
        sampled_fps=request.fps or 1.0,
        tokens_in=generated.prompt_tokens,
        tokens_out=generated.output_tokens,
        seconds=round(time.perf_counter() - started, 3),
    )


class VideoAnswerFlow(SingleEngineFlow):
    """The question asked of an engine that takes the whole video (or a URL): one answer."""

    kind = "video-answer"
    engine: GeminiEngine

    def run(
        self,
        asset: MediaAsset,
        request: AnalysisRequest,
        stage: ProgressFn,
        on_text: StreamFn | None,
        turn: TurnFn,
    ) -> AnalysisResult:
        started = time.perf_counter()
        client = self.engine.client(request)
        usage = GeminiUsage(model=client.model)
        stage("analyze", f"asking {client.model}", None)
        with self.engine.video(client, asset.sanitized_path, asset.sha256, usage, request.fps) as video:
            record = answer_round(self.engine, client, video, request, asset.probe.duration_s, usage)
        return self._result(client, request, record, usage, asset.sha256, started, on_text)

    def run_url(
        self, url: str, request: AnalysisRequest, stage: ProgressFn, on_text: StreamFn | None
    ) -> AnalysisResult:
        """A public YouTube video straight from its URL: the engine fetches it, nothing is downloaded."""
        started = time.perf_counter()
        client = self.engine.client(request)
        usage = GeminiUsage(model=client.model)
        stage("remote", f"{client.model} is reading the video from YouTube (nothing is downloaded here)", None)
        video = self.engine.from_url(url, usage, request.fps)
        record = answer_round(self.engine, client, video, request, None, usage)
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
            model=self.engine.model_info(request),
            request=request,
            media_sha256=sha256,
            rounds=[record],
            notes=[f"{call.what}: {call.attempts} attempt(s)" for call in usage.calls if call.attempts > 1],
            seconds=round(time.perf_counter() - started, 3),
            gemini=usage,
        )
