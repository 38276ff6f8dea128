"""Linked mode: Gemini digests the video (it hears the audio, reads long videos cheaply), the local
VideoChat-R1.5 loop looks closely with that digest as context, and Gemini answers too. The result
shows both answers, whether they agree and the spans each cites; it never averages them.

The flow takes the local model's turn for the local loop only: the digest, Gemini's own answer and
the judge call are network calls, made before and after it, so other sessions never wait for them.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel

from core.analysis.digest import digest_context, get_digest
from core.analysis.flows import PerceptionFlow, TurnFn
from core.analysis.spans import shared_seconds, short_answer
from core.analysis.video_answer import answer_round
from core.config import Settings
from core.errors import VChatError
from core.media.pipeline import MediaAsset
from core.models.base import (
    AnalysisRequest,
    AnalysisResult,
    GeminiUsage,
    LinkedComparison,
    ModelInfo,
    Segment,
    StreamFn,
)
from core.models.engine import Engine, FrameEngine
from core.models.gemini.client import GeminiClient
from core.models.gemini.engine import GeminiEngine
from core.progress import ProgressFn

JUDGE_PROMPT = """Two models answered the same question about a video.
Question: "{question}"
Answer A: "{a}"
Answer B: "{b}"
Do A and B say the same thing? verdict: "agree" (same meaning), "partly" (overlap, but one adds \
or leaves out something material), or "disagree" (they contradict each other). explanation: one sentence."""


class Verdict(BaseModel):
    verdict: Literal["agree", "partly", "disagree"]
    explanation: str


def compare_answers(
    engine: GeminiEngine,
    client: GeminiClient,
    question: str,
    local_answer: str,
    gemini_answer: str,
    usage: GeminiUsage,
) -> tuple[str, str, str]:
    """(agreement, method, explanation): short answers compared exactly, others judged by Gemini."""
    local_short, gemini_short = short_answer(local_answer), short_answer(gemini_answer)
    if local_short and gemini_short:
        same = local_short == gemini_short
        return ("agree" if same else "disagree"), "short answers compared exactly", f"{local_short} vs {gemini_short}"
    if not local_answer.strip() or not gemini_answer.strip():
        return "unclear", "one answer is empty", ""
    prompt = JUDGE_PROMPT.format(question=question, a=local_answer[:2000], b=gemini_answer[:2000])
    try:
        verdict, _ = engine.ask(client, [prompt], "judging agreement", usage, Verdict)
    except VChatError as exc:
        return "unclear", "Gemini as judge (failed)", exc.one_line()
    return verdict.verdict, "Gemini as judge (a model's opinion, not a measurement)", verdict.explanation.strip()


def _cited(result: AnalysisResult) -> list[Segment]:
    """The spans the local loop's answer rests on: those of the last round that named any."""
    for record in reversed(result.rounds):
        if record.segments:
            return record.segments
    return []


class LinkedFlow:
    """VideoChat-R1.5 locally, with Gemini's digest as context and Gemini's own answer beside it."""

    name = "linked"

    def __init__(self, gemini: GeminiEngine, local: FrameEngine, settings: Settings) -> None:
        self.gemini = gemini
        self.local = PerceptionFlow(local, settings)
        self.settings = settings
        self.engines: tuple[Engine, ...] = (gemini, local)

    def check(self, request: AnalysisRequest) -> None:
        self.gemini.check(request)
        self.local.check(request)

    def identity(self, request: AnalysisRequest) -> dict[str, Any]:
        return {"flow": "linked", "gemini": self.gemini.identity(request), "local": self.local.identity(request)}

    def run(
        self,
        asset: MediaAsset,
        request: AnalysisRequest,
        stage: ProgressFn,
        on_text: StreamFn | None,
        turn: TurnFn,
    ) -> AnalysisResult:
        started = time.perf_counter()
        client = self.gemini.client(request)
        stage("remote", f"asking {client.model} for the digest and its own answer", None)
        record = get_digest(asset, self.settings, self.gemini.api_key, client.model)
        usage = GeminiUsage(model=client.model)
        if not record.reused:  # the digest was asked for this result: its calls and tokens count here
            usage.calls = list(record.usage.calls)
            usage.prompt_tokens = record.usage.prompt_tokens
            usage.output_tokens = record.usage.output_tokens
            usage.total_tokens = record.usage.total_tokens
        with self.gemini.video(client, asset.sanitized_path, asset.sha256, usage, request.fps) as video:
            gemini_round = answer_round(self.gemini, client, video, request, asset.probe.duration_s, usage)
        context = digest_context(record.digest, self.settings.digest_context_tokens)
        if request.context:
            context = f"{request.context.strip()}\n{context}"
        self.local.run_frames_stage(asset, stage)
        with turn():
            local = self.local.answer(asset, request.model_copy(update={"context": context}), stage, on_text)
        gemini_answer = gemini_round.answer or ""
        agreement, method, explanation = compare_answers(
            self.gemini, client, request.question, local.answer, gemini_answer, usage
        )
        local_segments = _cited(local)
        comparison = LinkedComparison(
            local_answer=local.answer,
            gemini_answer=gemini_answer,
            agreement=agreement,
            method=method,
            explanation=explanation,
            local_segments=local_segments,
            gemini_segments=gemini_round.segments,
            shared_seconds=shared_seconds(local_segments, gemini_round.segments),
        )
        notes = [*local.notes, f"Digest by {record.model}" + (" (from the cache)" if record.reused else "")]
        notes += record.notes
        return local.model_copy(
            update={
                "answer": linked_answer(comparison),
                "model": ModelInfo(
                    **{**local.model.model_dump(), "backend": self.name, "name": f"{local.model.name} + {client.model}"}
                ),
                "notes": notes,
                "gemini": usage,
                "gemini_rounds": [gemini_round],
                "linked": comparison,
                "seconds": round(time.perf_counter() - started, 3),
            }
        )


def linked_answer(comparison: LinkedComparison) -> str:
    """Both answers, and whether they agree, as one text (for tables and exports)."""
    verdict = {
        "agree": "They agree.",
        "partly": "They partly agree.",
        "disagree": "They DISAGREE: check the cited segments yourself.",
        "unclear": "Agreement could not be judged.",
    }[comparison.agreement]
    return (
        f"VideoChat-R1.5: {comparison.local_answer.strip()}\n"
        f"Gemini: {comparison.gemini_answer.strip()}\n"
        f"{verdict}" + (f" ({comparison.explanation})" if comparison.explanation else "")
    )
