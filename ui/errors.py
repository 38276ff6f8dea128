"""One way to show what went wrong in an action a page runs: `with shown_errors(...) as attempt:`.

A user's mistake (a VChatError, a value out of an option's bounds) is its own one line; an OS error
is the caller's sentence about it; anything else is a bug: one line on the page ("Internal error"),
the traceback in the server log. After the block, `attempt.failed` says whether it was shown.
Streamlit's own control flow (`st.rerun`, `st.stop`) passes through untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pydantic import ValidationError

from core.errors import VChatError
from ui.feedback import show_error

log = logging.getLogger("vchat.ui")


@dataclass
class Attempt:
    failed: bool = False
    bug: bool = False  # it failed on something other than the input or the user's choices


@contextmanager
def shown_errors(
    doing: str, os_error: Callable[[OSError], str] | None = None, *, where: object = None
) -> Iterator[Attempt]:
    """Run the block; show its error, if any, as one line (`where`: a container or slot).

    `doing` names the action in the server log when a bug stops it; `os_error` words an OSError
    for the user (without it, an OSError counts as a bug)."""
    attempt = Attempt()
    try:
        yield attempt
    except (VChatError, ValidationError) as exc:
        attempt.failed = True
        show_error(exc, where=where)
    except Exception as exc:
        attempt.failed = True
        if isinstance(exc, OSError) and os_error is not None:
            show_error(os_error(exc), where=where)
        else:  # a bug, not the input: one line here, the traceback in the server log
            attempt.bug = True
            log.exception("%s failed", doing)
            show_error(exc, where=where)
