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

Nothing here is ever half-written, even when the trainer is killed with SIGKILL: JSON files and
checkpoints are written under a hidden temporary name tagged with the writer's pid
(`core.media.scratch.temporary_name`) and renamed into place; progress.jsonl and train.log are
append-only, one complete line per write. A temporary name whose writer is gone is removed by
the next trainer of the run (`sweep_run_dir`).

A folder holds a run once `run_config.json` is in it (written right after the trainer claims the
folder, before the dataset is checked). A folder holding only bookkeeping (launch files, state,
log, pid, temporaries) and no live trainer is unused: a new run may start in it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from core.media.scratch import owner_alive, temporary_name
from core.media.storage import atomic_write_bytes, atomic_write_json, read_json
from core.models.local.adapters import FINAL_CHECKPOINT
from core.processes import pid_exists

RUN_CONFIG = "run_config.json"
STATE = "state.json"
PROGRESS = "progress.jsonl"
LOG = "train.log"
PID = "trainer.pid"
CHECKPOINTS = "checkpoints"
LAUNCH = "launch.json"
CONSOLE = "console.log"
FINAL = FINAL_CHECKPOINT
# What the app writes before the trainer starts.
LAUNCH_FILES = frozenset({LAUNCH, CONSOLE})
# What a trainer writes before run_config.json, besides temporaries: a folder holding only these is not a run yet.
BOOKKEEPING = LAUNCH_FILES | {STATE, LOG, PID}
_STEP_DIR = re.compile(r"^step-(\d+)$")
_TAGGED = re.compile(r"vchat-\d+-\d+-[0-9a-f]+")


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def is_unused(run_dir: Path) -> bool:
    """True when a new run may start in `run_dir`: absent, empty, or holding only bookkeeping (the
    app's launch files; the state, log and pid of a trainer that died before it saved its options;
    temporaries), no step done and no other trainer of it alive."""
    if not run_dir.exists():
        return True
    if not run_dir.is_dir():
        return False
    if not all(p.name in BOOKKEEPING or is_temporary(p.name) for p in run_dir.iterdir()):
        return False
    if int(read_state(run_dir).get("step") or 0) > 0:
        return False  # a state that counted steps belongs to a run, whatever else is missing
    return other_trainer(run_dir) is None


def is_temporary(name: str) -> bool:
    """A hidden name ending in .tmp: a file or checkpoint being written, or left by a writer killed mid-write."""
    return name.startswith(".") and name.endswith(".tmp")


def other_trainer(run_dir: Path) -> int | None:
    """The pid of a live trainer of this run other than this process (from state.json, trainer.pid
    or launch.json), or None."""
    state = read_state(run_dir)
    candidates = [state.get("pid") if state.get("state") == "running" else None, *_pids(run_dir)]
    for pid in candidates:
        if isinstance(pid, int) and pid != os.getpid() and trainer_alive(pid):
            return pid
    return None


def sweep_run_dir(run_dir: Path) -> list[str]:
    """Remove the temporaries (half-written files, checkpoints, a half-removed folder) that a
    killed writer left in the run folder and its checkpoints/; a writer still alive keeps its own.
    Untagged ones come from trainers of an earlier version, which are gone when this runs.
    Returns the names removed."""
    removed = []
    for folder in (run_dir, run_dir / CHECKPOINTS):
        try:
            entries = list(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            if not is_temporary(entry.name) or (_TAGGED.search(entry.name) and owner_alive(entry.name)):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(str(entry.relative_to(run_dir)))
    return removed


def remove_tree(path: Path) -> None:
    """Remove a folder so that a kill midway never leaves a part of it under its own name: it is
    renamed to a temporary name first (which the next trainer's sweep removes)."""
    if not path.exists():
        return
    doomed = temporary_name(path)
    path.rename(doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def read_state(run_dir: Path) -> dict[str, Any]:
    state = read_json(run_dir / STATE)
    return state if isinstance(state, dict) else {}


def write_state(run_dir: Path, fresh: bool = False, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into state.json (atomically; readers never see half a file). `fresh` drops
    what an earlier trainer of the folder left there."""
    state = {**({} if fresh else read_state(run_dir)), **fields, "updated_at": now()}
    atomic_write_json(run_dir / STATE, state)
    return state


def write_pid(run_dir: Path, pid: int) -> None:
    atomic_write_bytes(run_dir / PID, str(pid).encode())


def append_progress(run_dir: Path, row: dict[str, Any]) -> None:
    """One complete line per write (a reader, or a kill, never splits a row)."""
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


def tail(path: Path, lines: int) -> str:
    """The last `lines` lines of a text file (a log, the console), trailing blank space dropped; "" when
    it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").rstrip()
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def truncate_progress(run_dir: Path, step: int) -> None:
    """Drop the rows after `step` (a run resumed from an earlier checkpoint redoes those steps),
    and any incomplete line (so the next row starts a line of its own)."""
    try:
        text = (run_dir / PROGRESS).read_text(encoding="utf-8")
    except FileNotFoundError:
        return
    kept = [row for row in read_progress(run_dir) if int(row.get("step", 0)) <= step]
    clean = "".join(json.dumps(row) + "\n" for row in kept)
    if clean != text:
        atomic_write_bytes(run_dir / PROGRESS, clean.encode("utf-8"))


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
    if pid is None or not pid_exists(pid):
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc (not Linux): the signal test is all there is
    zombie = stat.rsplit(")", 1)[-1].split()[0] == "Z"
    return not zombie and b"finetune" in cmdline


def read_pid(run_dir: Path) -> int | None:
    pids = _pids(run_dir)
    return pids[0] if pids else None


def _pids(run_dir: Path) -> list[int]:
    """The trainer's pid from trainer.pid, then the one the app launched (launch.json)."""
    found = []
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
            found.append(int(value))
        except (TypeError, ValueError):
            continue
    return found
