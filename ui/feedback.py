"""Every message the app shows: errors, warnings, notes, captions, status labels, spinners.

Streamlit renders all of these as markdown, and what goes into them often quotes outside text:
a server's reason phrase, a URL, an upload's file name, a model name from the address bar, a
model's output. So everything shown through this module is plain text (escaped by
`escape_markdown`: it reads the same, but no link, image, emphasis or HTML comes of it), except
`Markdown` built by `md`, whose template is ours and whose values are escaped.

Pages and views call these helpers instead of `st.error`, `st.warning`, `st.info`,
`st.success`, `st.toast` and `st.status` (tests/test_app_outside_text.py checks that no call
site bypasses them); `st.markdown` and `st.caption` get a literal string, `md(...)` or `plain(...)`.
"""

from __future__ import annotations

import string
from typing import Any, Literal

import streamlit as st
from pydantic import ValidationError

from core.errors import VChatError, validation_message
from ui.text import escape_markdown

ERROR_ICON = ":material/error:"


class Markdown(str):
    """Markdown that is safe to render: our own markup with every outside value escaped (see `md`)."""

    __slots__ = ()


class _EscapingFormatter(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        return escape_markdown(format(value, format_spec))


def md(template: str, *values: object, **named: object) -> Markdown:
    """`template.format(*values, **named)` with every value escaped: markup in the template only."""
    return Markdown(_EscapingFormatter().vformat(template, values, named))


def one_line_error(exc: BaseException) -> str:
    """What went wrong, in one line of plain text (an internal error names only its type)."""
    if isinstance(exc, VChatError):
        return exc.one_line()
    if isinstance(exc, ValidationError):  # a value out of pydantic's own bounds
        return validation_message(exc)
    return f"Internal error ({type(exc).__name__}); the details are in the server log."


def plain(what: object) -> Markdown:
    """`what`, safe to render: `Markdown` as it is, an exception as its one line, None as nothing,
    anything else as text."""
    if what is None:
        return Markdown("")
    if isinstance(what, Markdown):
        return what
    if isinstance(what, BaseException):
        return Markdown(escape_markdown(one_line_error(what)))
    return Markdown(escape_markdown(str(what)))


def _in(where: Any) -> Any:
    return st if where is None else where


def show_error(what: object, *, icon: str | None = ERROR_ICON, where: Any = None) -> None:
    """A red one-line message: an exception's one line, or text (`where`: a container or slot)."""
    _in(where).error(plain(what), icon=icon)


def show_warning(what: object, *, icon: str | None = None, where: Any = None) -> None:
    _in(where).warning(plain(what), icon=icon)


def show_info(what: object, *, icon: str | None = None, where: Any = None) -> None:
    _in(where).info(plain(what), icon=icon)


def show_success(what: object, *, icon: str | None = None, where: Any = None) -> None:
    _in(where).success(plain(what), icon=icon)


def show_caption(what: object, *, where: Any = None) -> None:
    _in(where).caption(plain(what))


def show_toast(what: object, *, icon: str | None = None) -> None:
    st.toast(plain(what), icon=icon)


def new_status(label: object, *, expanded: bool = False, where: Any = None) -> Any:
    """An `st.status` container with a plain-text label."""
    return _in(where).status(plain(label), expanded=expanded)


def update_status(
    status: Any,
    label: object,
    *,
    state: Literal["running", "complete", "error"] | None = None,
    expanded: bool | None = None,
) -> None:
    status.update(label=plain(label), state=state, expanded=expanded)


def show_progress(bar: Any, fraction: float, text: object) -> None:
    """Move a progress bar (from `st.progress`), its text shown as plain text."""
    bar.progress(min(max(fraction, 0.0), 1.0), text=plain(text))


def spinner(text: object, *, show_time: bool = False) -> Any:
    """`st.spinner` with a plain-text message (use as a context manager)."""
    return st.spinner(plain(text), show_time=show_time)
