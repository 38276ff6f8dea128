"""Path confinement, in one place: whether a path lies in a folder, judged on the names as given
(the caller resolves links first where a link must not lead out)."""

from __future__ import annotations

from pathlib import Path


def is_within(path: Path, folder: Path) -> bool:
    """True when `path` is `folder` or lies below it (no filesystem access: `..` is not collapsed)."""
    return path == folder or folder in path.parents
