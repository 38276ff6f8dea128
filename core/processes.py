"""Whether a process is still there, asked the one portable way (signal 0): the scratch folders'
owners, the batch lease's holder, the trainer and the app that started it all ask it."""

from __future__ import annotations

import os


def pid_exists(pid: int) -> bool:
    """True while a process with this id exists (one we may not signal counts: it exists). A pid can
    be reused after its process ended: callers that care compare the start time too."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
