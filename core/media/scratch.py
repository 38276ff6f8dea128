"""Scratch space that outlives no one: per-operation folders and temporary names tagged with
their owner process, swept when the owner is gone.

Every download, upload, copy and ffmpeg output is written under `<data dir>/tmp/` in a folder
of its own (removed when the operation ends, whatever happens), and every atomic write goes
through a temporary name in the target's folder. Both carry an owner tag,
`vchat-<pid>-<process start time>-<random>`: a process killed with SIGKILL cannot clean up,
so `sweep_stale` (run when a process starts: the CLI, the app, the trainer) removes what a
dead owner left behind. The start time guards against a pid reused by another process.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.processes import pid_exists

log = logging.getLogger(__name__)

_TAG = re.compile(r"vchat-(\d+)-(\d+)-[0-9a-f]+")


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), or None when unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])  # field 22 of /proc/PID/stat; the first two fields precede ')'
    except (IndexError, ValueError):
        return None


@functools.cache
def _own_tag_prefix(pid: int) -> str:
    return f"vchat-{pid}-{_start_time(pid) or 0}"


def owner_tag() -> str:
    """A new tag naming this process as the owner of a temporary file or folder."""
    return f"{_own_tag_prefix(os.getpid())}-{uuid.uuid4().hex[:12]}"


def owner_alive(name: str) -> bool:
    """True when the tag in `name` names a running process (or `name` has no tag)."""
    match = _TAG.search(name)
    if match is None:
        return True
    pid, started = int(match.group(1)), int(match.group(2))
    if pid == os.getpid():
        return started in (0, _start_time(pid) or 0)
    if not pid_exists(pid):
        return False
    actual = _start_time(pid)
    return actual is None or started == 0 or actual == started


def temporary_name(final: Path) -> Path:
    """A hidden, owner-tagged name beside `final` to write to before renaming into place."""
    return final.with_name(f".{final.name}.{owner_tag()}.tmp")


@contextmanager
def scratch_dir(root: Path, kind: str) -> Iterator[Path]:
    """A private folder under `root` for one operation, removed whatever happens."""
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{kind}.{owner_tag()}.", dir=root))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def sweep_stale(data_dir: Path) -> int:
    """Remove scratch folders and temporary files under `data_dir` whose owner process is gone.
    Returns how many were removed. Safe to run while other vChat processes work: their tags
    name live processes."""
    removed = 0
    if not data_dir.is_dir():
        return 0
    tmp_root = data_dir / "tmp"
    if tmp_root.is_dir():
        for entry in tmp_root.iterdir():
            if _TAG.search(entry.name) and not owner_alive(entry.name):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed += 1
    for folder, dirs, files in os.walk(data_dir):
        if Path(folder) == tmp_root:
            dirs.clear()
            continue
        for name in [*files, *dirs]:
            if name.endswith(".tmp") and _TAG.search(name) and not owner_alive(name):
                path = Path(folder) / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                    dirs.remove(name)
                else:
                    path.unlink(missing_ok=True)
                removed += 1
    if removed:
        log.info("removed %d temporary file(s) left by processes that are gone", removed)
    return removed
