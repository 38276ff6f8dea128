"""Linked mode: Gemini digests the video (it hears the audio, reads long videos cheaply), the local
VideoChat-R1.5 loop looks closely with that digest as context, and Gemini answers too. The result
(`LinkedResult`) holds both answers, whether they agree, the spans each cites and the digest itself;
it never averages them.

The flow takes the local model's turn for the local loop only: the digest, Gemini's own answer and
the judge call are network calls, made before and after it, so other sessions never wait for them.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel

from core.analysis.digest import DigestRecord, digest_context, get_digest
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

LOCAL_NAME = "VideoChat-R1.5"
JUDGE_PROMPT = """Two models answered the same question about a video.
Question: "{question}"
Answer A, by {a_name}: "{a}"
Answer B, by {b_name}: "{b}"
Do A and B say the same thing? verdict: "agree" (same meaning), "partly" (overlap, but one adds \
or leaves out something material), or "disagree" (they contradict each other). explanation: one sentence \
that calls the answers by their models' names ({a_name}, {b_name}), not "A" and "B"."""


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
    names: tuple[str, str] = (LOCAL_NAME, "Gemini"),
) -> tuple[str, str, str]:
    """(agreement, method, explanation): short answers compared exactly, others judged by Gemini.
    `names` are the local model's and Gemini's names, as the explanation should call them."""
    local_short, gemini_short = short_answer(local_answer), short_answer(gemini_answer)
    if local_short and gemini_short:
        same = local_short == gemini_short
        compared = f"{names[0]}: {local_short}; {names[1]}: {gemini_short}"
        return ("agree" if same else "disagree"), "short answers compared exactly", compared
    if not local_answer.strip() or not gemini_answer.strip():
        return "unclear", "one answer is empty", ""
    prompt = JUDGE_PROMPT.format(
        question=question, a=local_answer[:2000], b=gemini_answer[:2000], a_name=names[0], b_name=names[1]
    )
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


class LinkedResult(AnalysisResult):
    """A linked-mode result: the local loop's result, with Gemini's round, the comparison, and the
    digest the local model was given as context (so the page and the export can show it)."""

    digest: DigestRecord | None = None


def _names(adapter: str | None, gemini_model: str | None) -> tuple[str, str]:
    local = LOCAL_NAME + (f" + LoRA {adapter}" if adapter else "")
    return local, f"Gemini ({gemini_model})" if gemini_model else "Gemini"


def answer_names(result: AnalysisResult) -> tuple[str, str]:
    """What the two answers of a linked result are called: the local model (with its adapter) and Gemini."""
    return _names(result.model.adapter, result.gemini.model if result.gemini else None)


def judged(comparison: LinkedComparison, names: tuple[str, str]) -> str:
    """How agreement was judged, in words that name the models (the judge saw the local model's
    answer as "A" and Gemini's as "B", and may still call them so)."""
    how = comparison.method[:1].upper() + comparison.method[1:]
    if how.startswith("Gemini as judge") and comparison.agreement != "unclear":
        how += f", where A is {names[0]} and B is {names[1]}"
    return f"{how}: {comparison.explanation}" if comparison.explanation else how


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
    ) -> LinkedResult:
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
        names = _names(local.model.adapter, client.model)
        agreement, method, explanation = compare_answers(
            self.gemini, client, request.question, local.answer, gemini_answer, usage, names
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
        return LinkedResult(
            **{
                **dict(local),
                "answer": linked_answer(comparison, names),
                "model": ModelInfo(
                    **{**local.model.model_dump(), "backend": self.name, "name": f"{local.model.name} + {client.model}"}
                ),
                "notes": notes,
                "gemini": usage,
                "gemini_rounds": [gemini_round],
                "linked": comparison,
                "digest": record,
                "seconds": round(time.perf_counter() - started, 3),
            }
        )


VERDICTS = {
    "agree": "They agree.",
    "partly": "They partly agree.",
    "disagree": "They DISAGREE: check the cited segments yourself.",
    "unclear": "Agreement could not be judged.",
}


def linked_answer(comparison: LinkedComparison, names: tuple[str, str] = (LOCAL_NAME, "Gemini")) -> str:
    """Both answers, each under its model's name, and whether they agree, as one text (for tables and exports)."""
    how = judged(comparison, names) if comparison.explanation else ""
    return (
        f"{names[0]}: {comparison.local_answer.strip()}\n"
        f"{names[1]}: {comparison.gemini_answer.strip()}\n"
        f"{VERDICTS[comparison.agreement]}" + (f" {how}" if how else "")
    )
