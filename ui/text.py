"""Text from models, videos and users, made safe to show as markdown."""

from __future__ import annotations

import re

# CommonMark lets a backslash escape any ASCII punctuation; escaping all of it turns off
# links, images, emphasis, headings, HTML and Streamlit's :directives: in untrusted text.
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
# GFM also links bare URLs and e-mail addresses, found in the text after escapes are undone; an
# invisible WORD JOINER after `http(s)`, `www` and `@` breaks those patterns, and reads the same.
WORD_JOINER = "\u2060"
_AUTOLINK = re.compile(r"(https?(?=://)|www(?=\.)|@)", re.IGNORECASE)


def escape_markdown(text: str | None) -> str:
    """`text` shown literally by st.markdown (line breaks kept): no markup, HTML or link comes of it."""
    if not text:
        return ""
    unlinked = _AUTOLINK.sub(r"\1" + WORD_JOINER, text.replace("\r\n", "\n"))
    return _PUNCTUATION.sub(r"\\\1", unlinked).replace("\n", "  \n")


def human_bytes(size: int | float | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"



def human_seconds(seconds: float) -> str:
    """12.3 s, 4 min 05 s, 1 h 02 min: how long something took, read at a glance."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
