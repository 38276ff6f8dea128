"""Linked mode: Gemini digests the video (it hears the audio, reads long videos cheaply), the local
VideoChat-R1.5 loop looks closely with that digest as context, and Gemini answers too. The
result shows both answers, whether they agree and the spans each cites; it never averages them.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from core.analysis.digest import DigestRecord, digest_context, get_digest
from core.config import Settings
from core.errors import VChatError
from core.media.pipeline import MediaAsset
from core.models.base import (
    AnalysisRequest,
    AnalysisResult,
    GeminiUsage,
    LinkedComparison,
    ModelInfo,
    RoundRecord,
    Segment,
    StreamFn,
)
from core.models.gemini.backend import GeminiBackend, answer_round
from core.models.gemini.client import GeminiClient
from core.models.gemini.generate import generate, parse_structured
from core.models.local.backend import LocalBackend

JUDGE_PROMPT = """Two models answered the same question about a video.
Question: "{question}"
Answer A: "{a}"
Answer B: "{b}"
Do A and B say the same thing? verdict: "agree" (same meaning), "partly" (overlap, but one adds \
or leaves out something material), or "disagree" (they contradict each other). explanation: one sentence."""

_OPTION = re.compile(r"^(?:\(([a-h])\)|([a-h])(?:[.:)]|$))")  # "B", "b.", "(c) a cat"; not "A dog"
_NUMBER = re.compile(r"^-?\d+(?:[.,]\d+)?$")


class Verdict(BaseModel):
    verdict: Literal["agree", "partly", "disagree"]
    explanation: str


def short_answer(text: str) -> str | None:
    """The answer as a comparable token when it is an option letter, yes/no, or a number."""
    cleaned = text.strip().lower()
    cleaned = re.sub(r"^(the answer is|answer)\s*[:\-]?\s*", "", cleaned)
    if option := _OPTION.match(cleaned):
        return f"option {option.group(1) or option.group(2)}"
    word = cleaned.split()[0].strip(".,;:!?\"'") if cleaned.split() else ""
    if word in ("yes", "no"):
        return word
    if _NUMBER.match(word) and len(cleaned.split()) <= 3:
        return str(float(word.replace(",", ".")))
    return None


def _union(segments: list[Segment]) -> list[tuple[float, float]]:
    spans: list[tuple[float, float]] = []
    for start, end in sorted((s.start_s, s.end_s) for s in segments):
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    return spans


def shared_seconds(a: list[Segment], b: list[Segment]) -> float:
    """Seconds of video cited by both lists of segments."""
    total = 0.0
    for start_a, end_a in _union(a):
        for start_b, end_b in _union(b):
            total += max(0.0, min(end_a, end_b) - max(start_a, start_b))
    return round(total, 3)


def compare_answers(
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
        generated = generate(client, [prompt], "judging agreement", usage, schema=Verdict)
        verdict = parse_structured(client, generated, Verdict, "judging agreement")
    except VChatError as exc:
        return "unclear", "Gemini as judge (failed)", exc.one_line()
    return verdict.verdict, "Gemini as judge (a model's opinion, not a measurement)", verdict.explanation.strip()


def _cited(result: AnalysisResult) -> list[Segment]:
    """The spans the local loop's answer rests on: those of the last round that named any."""
    for record in reversed(result.rounds):
        if record.segments:
            return record.segments
    return []


@dataclass
class _GeminiHalf:
    media_sha256: str
    request_json: str
    client: GeminiClient
    digest: DigestRecord
    usage: GeminiUsage
    gemini_round: RoundRecord
    seconds: float  # spent on the Gemini half, counted in the result's seconds


class LinkedBackend:
    """VideoChat-R1.5 locally, with Gemini's digest as context and Gemini's own answer beside it."""

    name = "linked"

    def __init__(self, settings: Settings, model_path: Path | None = None, api_key: str | None = None) -> None:
        self.settings = settings
        self.local = LocalBackend(settings, model_path)
        self.gemini = GeminiBackend(settings, api_key)
        self.api_key = api_key
        self._prepared: _GeminiHalf | None = None

    def check(self, request: AnalysisRequest | None = None) -> None:
        self.gemini.check(request)
        self.local.check(request)

    def prepare(self, asset: MediaAsset, request: AnalysisRequest) -> None:
        """The Gemini half (the digest, Gemini's own answer): network calls, made before the caller
        takes its turn on the local model so other sessions do not wait behind them."""
        started = time.perf_counter()
        client = self.gemini.client(request)
        record = get_digest(asset, self.settings, self.api_key, client.model)
        usage = GeminiUsage(model=client.model)
        if not record.reused:  # the digest was asked for this result: its calls and tokens count here
            usage.calls = list(record.usage.calls)
            usage.prompt_tokens = record.usage.prompt_tokens
            usage.output_tokens = record.usage.output_tokens
            usage.total_tokens = record.usage.total_tokens
        with self.gemini.video(client, asset, usage, request.fps) as video:
            gemini_round = answer_round(client, video, request, asset.probe.duration_s, usage)
        seconds = time.perf_counter() - started
        self._prepared = _GeminiHalf(
            asset.sha256, request.model_dump_json(), client, record, usage, gemini_round, seconds
        )

    def analyze(self, asset: MediaAsset, request: AnalysisRequest, on_text: StreamFn | None = None) -> AnalysisResult:
        started = time.perf_counter()
        half = self._prepared
        if half is None or (half.media_sha256, half.request_json) != (asset.sha256, request.model_dump_json()):
            self.prepare(asset, request)
            half = self._prepared
        assert half is not None
        self._prepared = None
        client, record, usage, gemini_round = half.client, half.digest, half.usage, half.gemini_round
        context = digest_context(record.digest, self.settings.digest_context_tokens)
        if request.context:
            context = f"{request.context.strip()}\n{context}"
        local = self.local.analyze(asset, request.model_copy(update={"context": context}), on_text)
        gemini_answer = gemini_round.answer or ""
        agreement, method, explanation = compare_answers(client, request.question, local.answer, gemini_answer, usage)
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
                "seconds": round(time.perf_counter() - started + half.seconds, 3),
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
