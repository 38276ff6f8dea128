"""Text from models, videos and users, made safe to show as markdown."""

from __future__ import annotations

import re

# CommonMark lets a backslash escape any ASCII punctuation; escaping all of it turns off
# links, images, emphasis, headings, HTML and Streamlit's :directives: in untrusted text.
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def escape_markdown(text: str | None) -> str:
    """`text` shown literally by st.markdown (line breaks kept)."""
    if not text:
        return ""
    escaped = _PUNCTUATION.sub(r"\\\1", text.replace("\r\n", "\n"))
    return escaped.replace("\n", "  \n")


def human_bytes(size: int | float | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"
