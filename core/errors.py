"""The user-facing error family and the CLI exit codes.

Every error a person can act on is a `VChatError`: its `str()` is one line that says what
went wrong and, where there is one, what to do about it. Anything else that escapes is an
internal error (exit code 1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2


class VChatError(Exception):
    """An error with a message a person can act on (bad input, refused URL, bad media)."""

    exit_code: int = EXIT_BAD_INPUT

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = " ".join(message.split())
        self.hint = " ".join(hint.split()) if hint else None
        super().__init__(self.one_line())

    def one_line(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class InputError(VChatError):
    """The source the user gave cannot be used as given (unknown path, bad scheme...)."""


class UrlRefused(InputError):
    """The URL guard refused a URL or one of its redirect hops."""


class LimitExceeded(InputError):
    """A size or duration limit from the settings was exceeded."""


class DownloadError(InputError):
    """The download failed for a reason on the remote side (404, timeout, unsupported)."""


class MediaError(InputError):
    """The file is not a video vChat can use (empty, not a video, truncated, audio only...)."""


class ProcessingError(VChatError):
    """Our own processing step failed (ffmpeg crashed, timed out): exit code 1."""

    exit_code = EXIT_INTERNAL


def validation_message(exc: ValidationError, prefix: str = "", *, as_option: bool = False) -> str:
    """A pydantic ValidationError (a value out of a model's bounds) as one line: `where: what`
    (`as_option`: the field named as its command-line option, `--max-steps`)."""
    first = exc.errors()[0]
    loc = first.get("loc", ())
    if as_option:
        where = "--" + str(loc[0]).replace("_", "-") if loc else "an option"
    else:
        where = ".".join(str(part) for part in loc) or "a value"
    return f"{prefix}{where}: {first['msg']}"
