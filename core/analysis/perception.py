"""The VideoChat-R1.5 iterative perception loop, as the authors run it, independent of how a
model generates.

Read from the model card (OpenGVLab/VideoChat-R1_5-7B README) and the evaluation scripts of
OpenGVLab/VideoChat-R1 (`Videochat-R1.5/src_eval/eval_*.py`, commit 67d2d75):
- Rounds 1..N-1 ask for <think>, <answer> and <glue> (the time periods, in seconds, the answer
  rests on); the last round asks for <think> and <answer> (the card's QA_THINK), no glue.
- After each round the FIRST `<glue>...</glue>` (closed) is read with `ast.literal_eval`; the
  next round samples 1.5x more densely inside those periods (core.media.sampling), with the same
  frame budget. No glue tag, or one that does not parse: the next round samples uniformly.
- The glue's numbers are taken as seconds of the video (`int(seconds * video_fps)` frames), as the
  official loop does. `VCHAT_GLUE_TIME=model-axis` reads them on the model's uniform time axis
  instead (frame i at i / sampled fps) and maps them to the video's seconds first; both readings
  are kept in each round record.
- Generation budget: 2048 new tokens a round (the official loop's max_new_tokens); a round cut off
  by the budget before its tags close says so.

Deliberate differences (the round records say when one applied): when the glue is not a literal,
number pairs written in list or tuple notation (`(10, 20)`, `[5.2, 9]`) are still read (never
prose, durations or "3-4 s"); a bare pair `(5, 9)` counts as one segment (the official loop would
fail on it and sample uniformly); a negative start is clipped to 0; at most 16 segments are kept;
segments outside the video or reversed are dropped with the reason. Nothing the model writes is
evaluated: `ast.literal_eval` reads literals only.
"""

from __future__ import annotations

import ast
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from core.analysis.spans import check_span
from core.media.frames import DecodedFn, FrameSample, FrameSource
from core.media.sampling import uniform_indices
from core.models.base import AnalysisRequest, DroppedSegment, RoundRecord, Segment
from core.models.engine import Generation
from core.progress import ProgressFn

PERCEPTION_VERSION = 2  # part of result keys: results of an older loop are not served for a new one
MAX_SEGMENTS = 16
MAX_GLUE_CHARS = 4000
GlueTime = Literal["video", "model-axis"]

THINK_ANSWER_GLUE = """Answer the question: "{question}" according to the content of the video.

Output your think process within the <think> </think> tags.

Then, provide your answer within the <answer> </answer> tags. At the same time, in the <glue> </glue> \
tags, present the precise time period in seconds of the video clips on which you base your answer to \
this question in the format of [(s1, e1), (s2, e2), ...]. For example: \
<think>...</think><answer>...</answer><glue>[(5.2, 10.4)]</glue>."""

THINK_ANSWER = """Answer the question: "{question}" according to the content of the video.

Output your think process within the <think> </think> tags.

Then, provide your answer within the <answer> </answer> tags. For example: <think>...</think><answer>...</answer>."""

CONTEXT_BLOCK = """Notes about this video from another model (may be incomplete or wrong):
{context}

"""

_NUMBER = r"[-+]?\d+(?:\.\d+)?"
# A pair of numbers in tuple or list notation, and nothing else between the brackets.
_PAIR = re.compile(rf"[\(\[]\s*({_NUMBER})\s*,\s*({_NUMBER})\s*[\)\]]")
_TIME_IN_TEXT = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*(s|sec|secs|second|seconds)\b", re.IGNORECASE)


@dataclass
class ParsedOutput:
    reasoning: str | None
    answer: str | None
    glue: str | None  # the first <glue> as written
    segments: list[Segment]  # the glue's periods as written (start_s/end_s = the model's numbers)
    dropped: list[DroppedSegment]
    notes: list[str] = field(default_factory=list)
    complete: bool = True  # every tag the round asked for was closed
    glue_read: bool = False  # a glue was read (its periods, possibly none, steer the next round)


def round_prompt(question: str, round_number: int, total_rounds: int, context: str | None = None) -> str:
    template = THINK_ANSWER if round_number == total_rounds else THINK_ANSWER_GLUE
    prompt = template.format(question=question.replace('"', "'"))
    return (CONTEXT_BLOCK.format(context=context.strip()) + prompt) if context else prompt


def first_tag(text: str, tag: str) -> str | None:
    """The content of the first closed <tag>...</tag>, as the official loop reads it (re.search)."""
    found = re.search(rf"<{tag}>(.*?)</{tag}>", text, flags=re.DOTALL | re.IGNORECASE)
    if found is None:
        return None
    return re.sub(rf"</?{tag}>", "", found.group(1), flags=re.IGNORECASE).strip()  # nested tags of the same name


def _unclosed_tag(text: str, tag: str) -> str | None:
    """An opened tag that never closed (a cut-off output): its text to the end."""
    found = re.search(rf"<{tag}>(.*)$", text, flags=re.DOTALL | re.IGNORECASE)
    return found.group(1).strip() or None if found else None


def _literal_pairs(text: str) -> tuple[list[object], list[str]]:
    """The glue's items: a literal list (or one pair) of pairs; else well-formed number pairs."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        pairs: list[object] = [(float(a), float(b)) for a, b in _PAIR.findall(text)]
        note = "the glue is not a literal list; the number pairs written in it were read" if pairs else ""
        return pairs, [note or "the glue could not be read"]
    if isinstance(value, tuple | list) and len(value) == 2 and all(isinstance(v, int | float) for v in value):
        return [value], ["the glue is a single pair, not a list of pairs; it was read as one segment"]
    if isinstance(value, tuple | list):
        return list(value), []
    return [value], []


def parse_glue(text: str, duration_s: float) -> tuple[list[Segment], list[DroppedSegment], list[str]]:
    """Time periods from a glue string such as "[(5.2, 10.4), (20, 25)]", as the model wrote them.

    Reversed, out-of-range and malformed periods are dropped with the reason; a negative start is
    clipped to 0; at most MAX_SEGMENTS are kept."""
    notes: list[str] = []
    dropped: list[DroppedSegment] = []
    text = text.strip()
    if len(text) > MAX_GLUE_CHARS:
        notes.append(f"glue was {len(text)} characters; only the first {MAX_GLUE_CHARS} were read")
        text = text[:MAX_GLUE_CHARS]
    pairs, read_notes = _literal_pairs(text)
    notes += read_notes
    segments: list[Segment] = []
    for pair in pairs:
        shown = repr(pair)[:80]
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
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
        if start < 0 <= end:
            notes.append(f"segment {shown} starts before 0 s; it was clipped to 0 s")
            start = 0.0
        if start == end and 0 <= start < duration_s:  # one moment: the official sampler gives it a frame
            segments.append(Segment(start_s=start, end_s=end, model_start_s=start, model_end_s=end))
            continue
        segment, reason = check_span(start, end, duration_s)
        if segment is None:
            dropped.append(DroppedSegment(text=shown, reason=reason))
            continue
        if end > duration_s:
            notes.append(f"segment {shown} was clipped to the video's end")
        segments.append(segment.model_copy(update={"model_start_s": segment.start_s, "model_end_s": segment.end_s}))
    if len(dropped) > 50:
        notes.append(f"{len(dropped) - 50} more dropped segments not listed")
        dropped = dropped[:50]
    return segments, dropped, notes


def parse_output(text: str, duration_s: float, expect_glue: bool) -> ParsedOutput:
    """Reasoning, answer and glue of one round's output, read as the official loop reads them."""
    notes: list[str] = []
    reasoning = first_tag(text, "think") or _unclosed_tag(text, "think")
    answer = first_tag(text, "answer")
    complete = answer is not None
    if answer is None:
        answer = _unclosed_tag(text, "answer")
        if answer is None:
            notes.append("no <answer> tag: the whole output is taken as the answer")
            answer = re.sub(r"<[^>]{1,20}>", " ", text).strip() or None
    glue = first_tag(text, "glue") if expect_glue else None
    segments: list[Segment] = []
    dropped: list[DroppedSegment] = []
    glue_read = False
    if expect_glue:
        if glue is None:
            complete = False
            notes.append("no closed <glue> tag")
        else:
            segments, dropped, glue_notes = parse_glue(glue, duration_s)
            notes += glue_notes
            glue_read = "the glue could not be read" not in glue_notes
    return ParsedOutput(
        reasoning, answer, glue, segments, dropped, notes, complete, glue_read if expect_glue else False
    )


def model_time_to_video(seconds: float, timestamps: Sequence[float], sampled_fps: float, duration_s: float) -> float:
    """A time on the model's axis (frame i at i / sampled fps) as the video's seconds, interpolated
    between the true timestamps of the frames around it."""
    if not timestamps or sampled_fps <= 0:
        return seconds
    position = seconds * sampled_fps
    last = len(timestamps) - 1
    if position <= 0:
        return max(0.0, timestamps[0] + position / sampled_fps)
    if position >= last:
        return min(duration_s, timestamps[last] + (position - last) / sampled_fps)
    low = int(position)
    frac = position - low
    return timestamps[low] * (1 - frac) + timestamps[low + 1] * frac


def read_glue(segments: list[Segment], sample: FrameSample, glue_time: GlueTime) -> list[Segment]:
    """The glue's periods in the video's seconds: as written ("video", the authors' reading), or
    mapped from the model's time axis ("model-axis")."""
    if glue_time == "video":
        return segments
    mapped = []
    for segment in segments:
        start = model_time_to_video(segment.start_s, sample.timestamps, sample.sampled_fps, sample.duration_s)
        end = model_time_to_video(segment.end_s, sample.timestamps, sample.sampled_fps, sample.duration_s)
        mapped.append(segment.model_copy(update={"start_s": round(start, 3), "end_s": round(end, 3)}))
    return mapped


def annotate_times(text: str, record: RoundRecord, duration_s: float) -> str:
    """`text` with the video time written beside each time the model named on its own axis
    ("12.0 s" -> "12.0 s (video 12.4 s)"), for rounds read with the model-axis reading."""
    if record.glue_time != "model-axis" or not record.frame_timestamps:
        return text

    def beside(match: re.Match[str]) -> str:
        video = model_time_to_video(float(match.group(1)), record.frame_timestamps, record.sampled_fps, duration_s)
        return f"{match.group(0)} (video {video:.1f} s)"

    return _TIME_IN_TEXT.sub(beside, text)


def uniformity_departure(sample: FrameSample) -> float:
    """Largest distance (s) between a sampled frame and the uniform sampler's frame of the same rank."""
    if not sample.indices or sample.video_fps <= 0:
        return 0.0
    grid = uniform_indices(sample.total_frames, len(sample.indices))
    return max(abs(i - g) for i, g in zip(sample.indices, grid, strict=True)) / sample.video_fps


def damaged_frames_note(sample: FrameSample) -> str:
    """What a round says when some of its frames could not be decoded."""
    damaged = set(sample.substituted)
    times = [t for i, t in zip(sample.indices, sample.timestamps, strict=True) if i in damaged]
    where = f"{min(times):.1f}-{max(times):.1f} s" if times else "somewhere"
    return (
        f"{len(sample.substituted)} of the {len(sample.indices)} frames ({where}) could not be decoded (damaged data "
        "in the file); the nearest decodable frames were shown instead"
    )


def cut_off_note(max_new_tokens: int) -> str:
    return f"cut off at {max_new_tokens} tokens before its answer was complete: raise Max new tokens"


# (frames, prompt, round number) -> what the model said
GenerateFn = Callable[[FrameSample, str, int], Generation]


def round_sample(
    source: FrameSource,
    request: AnalysisRequest,
    key_time: list[tuple[float, float]] | None,
    on_decoded: DecodedFn | None = None,
) -> FrameSample:
    """The frames a round shows: the official sampler's, decoded once across rounds."""
    plan = source.plan(frames=request.frames, fps=request.fps, key_time=key_time)
    return source.sample(plan, max_pixels=request.max_pixels, on_decoded=on_decoded)


def _decoding_reporter(progress: ProgressFn, number: int, rounds: int) -> DecodedFn:
    def report(done: int, wanted: int) -> None:
        progress("frames", f"round {number} of {rounds}: decoded {done} of {wanted} new frames", done / wanted)

    return report


def _spans(segments: Sequence[Segment] | Sequence[tuple[float, float]]) -> str:
    pairs = [(s.start_s, s.end_s) if isinstance(s, Segment) else s for s in segments]
    return ", ".join(f"{a:.1f}-{b:.1f} s" for a, b in pairs)


def run_perception(
    source: FrameSource,
    request: AnalysisRequest,
    generate: GenerateFn,
    glue_time: GlueTime = "video",
    progress: ProgressFn | None = None,
) -> list[RoundRecord]:
    """Run `request.rounds` rounds; each round's glue steers the next round's frames. `progress`
    hears "frames" (frames decoded of those the round needs) before each round's generation."""
    records: list[RoundRecord] = []
    key_time: list[tuple[float, float]] | None = None
    for number in range(1, request.rounds + 1):
        started = time.perf_counter()
        decoded_before = source.frames_decoded_total
        on_decoded = _decoding_reporter(progress, number, request.rounds) if progress else None
        sample = round_sample(source, request, key_time, on_decoded)
        decoded = source.frames_decoded_total - decoded_before
        prompt = round_prompt(request.question, number, request.rounds, request.context)
        generation = generate(sample, prompt, number)
        last = number == request.rounds
        parsed = parse_output(generation.text, sample.duration_s, expect_glue=not last)
        segments = read_glue(parsed.segments, sample, glue_time)
        notes = [*sample.notes, *parsed.notes]
        if sample.substituted:
            notes.append(damaged_frames_note(sample))
        truncated = not parsed.complete and generation.tokens_out >= request.generation.max_new_tokens
        if truncated:
            notes.append(cut_off_note(request.generation.max_new_tokens))
        key_time = [(s.start_s, s.end_s) for s in segments] if parsed.glue_read else None
        next_round = None
        if not last:
            if segments:
                next_round = f"round {number + 1} looks 1.5x more densely at {_spans(segments)}"
            elif key_time is not None:
                next_round = f"no period of the glue lies in the video: round {number + 1} spreads its frames"
            else:
                next_round = f"no usable glue: round {number + 1} samples uniformly"
        records.append(
            RoundRecord(
                round=number,
                prompt=prompt,
                raw_output=generation.text,
                reasoning=parsed.reasoning,
                answer=parsed.answer,
                glue=parsed.glue,
                glue_time=glue_time,
                segments=segments,
                dropped_segments=parsed.dropped,
                parse_notes=notes,
                next_round=next_round,
                truncated=truncated,
                sampling=sample.sampling,
                sampled_segments=[Segment(start_s=round(a, 3), end_s=round(b, 3)) for a, b in sample.segments],
                frame_timestamps=[round(t, 3) for t in sample.timestamps],
                frame_indices=sample.indices,
                nframes=sample.nframes,
                sampled_fps=sample.sampled_fps,
                second_per_grid_t=generation.second_per_grid_t,
                uniformity_departure_s=round(uniformity_departure(sample), 3),
                decoded_frames=decoded,
                tokens_in=generation.tokens_in,
                tokens_out=generation.tokens_out,
                seconds=round(time.perf_counter() - started, 3),
            )
        )
    return records
