"""The VideoChat-R1.5 iterative perception loop, independent of how a model generates.

Rounds 1..N-1 ask for <think>, <answer> and <glue> (the time segments the answer rests
on); the next round re-samples the video with 1.5x frame density inside those segments
(same total frame count), served from frames already decoded; the last round asks for
the answer alone. Only the segments carry between rounds; when no glue parses, the next
round samples uniformly. Model text is parsed with regular expressions and a literal
parse of the glue list; nothing the model writes is evaluated.
"""

from __future__ import annotations

import ast
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.media.frames import FrameSample, FrameSource, uniform_times
from core.models.base import AnalysisRequest, DroppedSegment, RoundRecord, Segment

MAX_SEGMENTS = 16
MAX_GLUE_CHARS = 4000

THINK_ANSWER_GLUE = """Answer the question: "{question}" according to the content of the video.

Output your thinking process within the <think> </think> tags.

Then give your answer within the <answer> </answer> tags. In the <glue> </glue> tags, list the \
time periods of the video, in seconds, on which your answer is based, in the format \
[(s1, e1), (s2, e2), ...]. For example: <think>...</think><answer>...</answer><glue>[(5.2, 10.4)]</glue>."""

THINK_ANSWER = """Answer the question: "{question}" according to the content of the video.

Output your thinking process within the <think> </think> tags.

Then give your answer within the <answer> </answer> tags. For example: <think>...</think><answer>...</answer>."""

CONTEXT_BLOCK = """Notes about this video from another model (may be incomplete or wrong):
{context}

"""

_TAG = r"<{0}>(.*?)(?:</{0}>|$)"
_NUMBER = r"[-+]?\d+(?:\.\d+)?"


@dataclass
class ParsedOutput:
    reasoning: str | None
    answer: str | None
    segments: list[Segment]
    dropped: list[DroppedSegment]
    notes: list[str]


def round_prompt(question: str, round_number: int, total_rounds: int, context: str | None = None) -> str:
    template = THINK_ANSWER if round_number == total_rounds else THINK_ANSWER_GLUE
    prompt = template.format(question=question.replace('"', "'"))
    return (CONTEXT_BLOCK.format(context=context.strip()) + prompt) if context else prompt


def _last_tag(text: str, tag: str) -> str | None:
    """The content of the last <tag>…</tag> (an unclosed last tag runs to the end)."""
    found = re.findall(_TAG.format(tag), text, flags=re.DOTALL | re.IGNORECASE)
    if not found:
        return None
    inner = found[-1]
    inner = re.sub(rf"</?{tag}>", "", inner, flags=re.IGNORECASE)  # nested tags of the same name
    return inner.strip() or None


def check_span(start: float, end: float, duration_s: float) -> tuple[Segment | None, str]:
    """A span in the video's seconds, clipped to its end; or None and why it cannot be one."""
    if start != start or end != end:  # NaN
        return None, "not numbers"
    if end <= start:
        return None, "end is not after start"
    if start < 0 or start >= duration_s:
        return None, f"outside the video (0-{duration_s:.1f} s)"
    return Segment(start_s=start, end_s=min(end, duration_s)), ""


def parse_glue(text: str, duration_s: float) -> tuple[list[Segment], list[DroppedSegment], list[str]]:
    """Time segments from a glue string such as "[(5.2, 10.4), (20, 25)]".

    A literal parse first (Python or JSON-style lists of pairs); if that fails, pairs of
    numbers are read with a regular expression. Malformed, out-of-range and inverted
    segments are dropped with the reason; at most MAX_SEGMENTS are kept.
    """
    notes: list[str] = []
    dropped: list[DroppedSegment] = []
    text = text.strip()
    if len(text) > MAX_GLUE_CHARS:
        notes.append(f"glue was {len(text)} characters; only the first {MAX_GLUE_CHARS} were read")
        text = text[:MAX_GLUE_CHARS]
    pairs: list[object]
    try:
        value = ast.literal_eval(text)
        if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
            pairs = [value]
        elif isinstance(value, (tuple, list)):
            pairs = list(value)
        else:
            pairs = [value]
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        found = re.findall(rf"\(?\[?\s*({_NUMBER})\s*(?:,|-|to)\s*({_NUMBER})\s*\)?\]?", text)
        pairs = [(float(a), float(b)) for a, b in found]
        notes.append("glue was not a literal list; pairs of numbers were read from it" if pairs else "glue unreadable")
    segments: list[Segment] = []
    for pair in pairs:
        shown = repr(pair)[:80]
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            dropped.append(DroppedSegment(text=shown, reason="not a (start, end) pair"))
            continue
        try:
            start, end = float(pair[0]), float(pair[1])
        except (TypeError, ValueError):
            dropped.append(DroppedSegment(text=shown, reason="not numbers"))
            continue
        if len(segments) >= MAX_SEGMENTS:
            dropped.append(DroppedSegment(text=shown, reason=f"more than {MAX_SEGMENTS} segments"))
            continue
        segment, reason = check_span(start, end, duration_s)
        if segment is None:
            dropped.append(DroppedSegment(text=shown, reason=reason))
            continue
        if end > duration_s:
            notes.append(f"segment {shown} was clipped to the video's end")
        segments.append(segment)
    if len(dropped) > 50:
        notes.append(f"{len(dropped) - 50} more dropped segments not listed")
        dropped = dropped[:50]
    return segments, dropped, notes


def parse_output(text: str, duration_s: float, expect_glue: bool) -> ParsedOutput:
    reasoning = _last_tag(text, "think")
    answer = _last_tag(text, "answer")
    notes: list[str] = []
    if answer is None:
        notes.append("no <answer> tag: the whole output is taken as the answer")
        answer = re.sub(r"<[^>]{1,20}>", " ", text).strip() or None
    segments: list[Segment] = []
    dropped: list[DroppedSegment] = []
    glue = _last_tag(text, "glue")
    if expect_glue:
        if glue is None:
            notes.append("no <glue> tag: the next round samples uniformly")
        else:
            segments, dropped, glue_notes = parse_glue(glue, duration_s)
            notes += glue_notes
    return ParsedOutput(reasoning, answer, segments, dropped, notes)


def model_time_to_video(seconds: float, sample: FrameSample) -> float:
    """Map a time the model names to the video's seconds.

    The processor lays the sampled frames on a uniform axis: frame i sits at
    i / sampled_fps. A time on that axis is a (fractional) frame position, and the video
    time is interpolated between the true timestamps of the frames around it."""
    if not sample.timestamps or sample.sampled_fps <= 0:
        return seconds
    position = seconds * sample.sampled_fps
    last = len(sample.timestamps) - 1
    if position <= 0:
        return max(0.0, sample.timestamps[0] + position / sample.sampled_fps)
    if position >= last:
        return min(sample.duration_s, sample.timestamps[last] + (position - last) / sample.sampled_fps)
    low = int(position)
    frac = position - low
    return sample.timestamps[low] * (1 - frac) + sample.timestamps[low + 1] * frac


def to_video_time(segments: list[Segment], sample: FrameSample) -> list[Segment]:
    return [
        Segment(
            start_s=round(model_time_to_video(s.start_s, sample), 3),
            end_s=round(model_time_to_video(s.end_s, sample), 3),
            model_start_s=s.start_s,
            model_end_s=s.end_s,
        )
        for s in segments
    ]


def uniformity_departure(sample: FrameSample) -> float:
    """Largest distance (s) between a sampled frame and the uniform grid of the same count."""
    grid = uniform_times(len(sample.timestamps), sample.duration_s)
    return max((abs(a - b) for a, b in zip(sample.timestamps, grid, strict=True)), default=0.0)


@dataclass
class Generation:
    text: str
    tokens_in: int
    tokens_out: int
    second_per_grid_t: float | None = None


# (frames, prompt, round number) -> what the model said
GenerateFn = Callable[[FrameSample, str, int], Generation]


# The decoded pool is 1.5x as dense as one round: just what 1.5x density inside segments needs
# (a denser pool serves tiny segments more exactly but costs more decoding; see bench/perception.py).
POOL_FACTOR = 1.5


def frames_per_round(source: FrameSource, request: AnalysisRequest) -> int:
    if request.fps:
        return source.count_for_fps(request.fps, min_frames=1, max_frames=request.frames)
    return request.frames


def sample_round(
    source: FrameSource, request: AnalysisRequest, segments: list[Segment], pool: list[int] | None
) -> FrameSample:
    n = frames_per_round(source, request)
    if segments:
        spans = [(s.start_s, s.end_s) for s in segments]
        return source.sample_weighted(n, spans, max_pixels=request.max_pixels, pool=pool)
    if request.fps:
        return source.sample_fps(
            request.fps, min_frames=1, max_frames=request.frames, max_pixels=request.max_pixels, pool=pool
        )
    return source.sample_uniform(n, max_pixels=request.max_pixels, pool=pool)


def run_perception(source: FrameSource, request: AnalysisRequest, generate: GenerateFn) -> list[RoundRecord]:
    """Run `request.rounds` rounds; each round's segments steer the next round's sampling."""
    records: list[RoundRecord] = []
    segments: list[Segment] = []
    pool: list[int] | None = None
    if request.rounds > 1:  # decode once, up front, the frames every round will choose from
        pool = source.pool_indices(math.ceil(POOL_FACTOR * frames_per_round(source, request)))
    for number in range(1, request.rounds + 1):
        started = time.perf_counter()
        decoded_before = source.frames_decoded_total
        if pool is not None and number == 1:
            source.prefetch(pool, max_pixels=request.max_pixels)
        sample = sample_round(source, request, segments, pool)
        decoded = source.frames_decoded_total - decoded_before
        prompt = round_prompt(request.question, number, request.rounds, request.context)
        generation = generate(sample, prompt, number)
        parsed = parse_output(generation.text, sample.duration_s, expect_glue=number < request.rounds)
        parsed.segments = to_video_time(parsed.segments, sample)
        records.append(
            RoundRecord(
                round=number,
                prompt=prompt,
                raw_output=generation.text,
                reasoning=parsed.reasoning,
                answer=parsed.answer,
                segments=parsed.segments,
                dropped_segments=parsed.dropped,
                parse_notes=parsed.notes,
                sampling=sample.sampling,
                frame_timestamps=[round(t, 3) for t in sample.timestamps],
                frame_indices=sample.indices,
                sampled_fps=sample.sampled_fps,
                second_per_grid_t=generation.second_per_grid_t,
                uniformity_departure_s=round(uniformity_departure(sample), 3),
                decoded_frames=decoded,
                tokens_in=generation.tokens_in,
                tokens_out=generation.tokens_out,
                seconds=round(time.perf_counter() - started, 3),
            )
        )
        segments = parsed.segments
    return records
