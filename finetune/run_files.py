"""The run folder: what the trainer writes and what the app reads (nothing else is shared).

<adapters_dir>/<NAME>/
    run_config.json     the options, the data file's sha256, the sampling (frames, fps, pixels),
                        the model, the split, library versions: enough to reproduce the run
    state.json          running (with its phase) | finished | cancelled | failed, step, pid, losses
    progress.jsonl      one row a step (and one per evaluation)
    train.log           the trainer's log
    trainer.pid         the trainer's process id, for cancel (SIGTERM)
    checkpoints/step-000042/   adapter weights + optimizer, scheduler and RNG state (last two kept)
    final_checkpoint/   the adapter the app serves (appears, by an atomic rename, when the run ends)
    launch.json, console.log   only for runs started by the app (argv; stdout and stderr)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any

from core.media.storage import atomic_write_bytes, atomic_write_json, read_json
from core.models.local.adapters import FINAL_CHECKPOINT

RUN_CONFIG = "run_config.json"
STATE = "state.json"
PROGRESS = "progress.jsonl"
LOG = "train.log"
PID = "trainer.pid"
CHECKPOINTS = "checkpoints"
LAUNCH = "launch.json"
CONSOLE = "console.log"
FINAL = FINAL_CHECKPOINT
# What the app writes before the trainer starts: a folder holding only these is not a run yet.
LAUNCH_FILES = frozenset({LAUNCH, CONSOLE})
_STEP_DIR = re.compile(r"^step-(\d+)$")


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def is_unused(run_dir: Path) -> bool:
    """True when a run may start in `run_dir`: absent, empty, or holding only the app's launch files."""
    if not run_dir.exists():
        return True
    return run_dir.is_dir() and all(p.name in LAUNCH_FILES for p in run_dir.iterdir())


def read_state(run_dir: Path) -> dict[str, Any]:
    state = read_json(run_dir / STATE)
    return state if isinstance(state, dict) else {}


def write_state(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into state.json (atomically; readers never see half a file)."""
    state = {**read_state(run_dir), **fields, "updated_at": now()}
    atomic_write_json(run_dir / STATE, state)
    return state


def append_progress(run_dir: Path, row: dict[str, Any]) -> None:
    with open(run_dir / PROGRESS, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_progress(run_dir: Path) -> list[dict[str, Any]]:
    """Every complete row of progress.jsonl (a row being written is left for the next read)."""
    try:
        text = (Path(run_dir) / PROGRESS).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    rows = []
    for line in text.split("\n")[:-1]:  # the part after the last newline may be incomplete
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def truncate_progress(run_dir: Path, step: int) -> None:
    """Drop the rows after `step` (a run resumed from an earlier checkpoint redoes those steps)."""
    rows = read_progress(run_dir)
    kept = [row for row in rows if int(row.get("step", 0)) <= step]
    if len(kept) != len(rows):
        text = "".join(json.dumps(row) + "\n" for row in kept)
        atomic_write_bytes(run_dir / PROGRESS, text.encode("utf-8"))


def checkpoint_dirs(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every complete checkpoint, oldest first."""
    root = run_dir / CHECKPOINTS
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _STEP_DIR.match(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> tuple[int, Path] | None:
    found = checkpoint_dirs(run_dir)
    return found[-1] if found else None


def trainer_alive(pid: int | None) -> bool:
    """True while `pid` is a live, non-zombie process running `finetune` (a pid reused by
    another program after the trainer ended does not count)."""
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc (not Linux): the signal test is all there is
    zombie = stat.rsplit(")", 1)[-1].split()[0] == "Z"
    return not zombie and b"finetune" in cmdline


def read_pid(run_dir: Path) -> int | None:
    for source in (run_dir / PID, run_dir / LAUNCH):
        try:
            text = source.read_text(encoding="utf-8").strip()
        except OSError:
            continue
        if source.name == LAUNCH:
            try:
                value = json.loads(text).get("pid")
            except (json.JSONDecodeError, AttributeError):
                continue
        else:
            value = text
        try:
            return int(value)
        except (TypeError, ValueError):
            continue
    return None
