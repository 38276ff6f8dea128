"""Time spans and answers, compared: the checks every flow (and batch metrics) share.

- `check_span`: a span a model named, as a span of the video (or why it cannot be one).
- `union` / `shared_seconds`: the seconds two sets of spans have in common.
- `short_answer`: an answer reduced to a comparable token when it is an option letter, yes/no or a
  number ("The answer is (B)." -> "option b"), so two answers can be compared exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from core.models.base import Segment

_OPTION = re.compile(r"^(?:\(([a-h])\)|([a-h])(?:[.:)]|$))")  # "B", "b.", "(c) a cat"; not "A dog"
_NUMBER = re.compile(r"^-?\d+(?:[.,]\d+)?$")


def check_span(start: float, end: float, duration_s: float) -> tuple[Segment | None, str]:
    """A span in the video's seconds, clipped to its end; or None and why it cannot be one."""
    if start != start or end != end:  # NaN
        return None, "not numbers"
    if end <= start:
        return None, "end is not after start"
    if start < 0 or start >= duration_s:
        return None, f"outside the video (0-{duration_s:.1f} s)"
    return Segment(start_s=start, end_s=min(end, duration_s)), ""


def union(segments: Iterable[Segment]) -> list[tuple[float, float]]:
    """The spans merged where they overlap or touch, in time order."""
    spans: list[tuple[float, float]] = []
    for start, end in sorted((s.start_s, s.end_s) for s in segments):
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    return spans


def shared_seconds(a: Iterable[Segment], b: Iterable[Segment]) -> float:
    """Seconds of video cited by both lists of segments."""
    total = 0.0
    other = union(b)
    for start_a, end_a in union(a):
        for start_b, end_b in other:
            total += max(0.0, min(end_a, end_b) - max(start_a, start_b))
    return round(total, 3)


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
