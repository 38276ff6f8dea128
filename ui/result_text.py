"""Small text pieces the result views share: fact lists that wrap (never cut off), time spans."""

from __future__ import annotations

from collections.abc import Iterable

from core.models.base import Segment
from ui.feedback import Markdown, md


def bullets(rows: Iterable[tuple[str, object]]) -> Markdown:
    """`- **name:** value` lines, values escaped and shown whole; rows without a value are left out."""
    lines = [md("- **{}:** {}", name, value) for name, value in rows if value not in (None, "", [])]
    return Markdown("\n".join(lines))


def items(lines: Iterable[str]) -> Markdown:
    """A bullet list of outside text, escaped."""
    return Markdown("\n".join(md("- {}", line) for line in lines))


def spans(segments: list[Segment]) -> str:
    """'0.5-1.5 s, 4.0-6.2 s', or 'none'."""
    return ", ".join(f"{s.start_s:.1f}-{s.end_s:.1f} s" for s in segments) or "none"


def plural(count: int, noun: str) -> str:
    """'1 round', '3 rounds'."""
    return f"{count} {noun}" + ("" if count == 1 else "s")
