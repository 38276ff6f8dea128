"""Training runs seen from the app: start one as a subprocess, read its progress, cancel it.

The app never trains in its own process (it holds CUDA, and a fork of it must not): it
starts `python -m finetune` with `subprocess.Popen` in a new session, and from then on
knows the run only by its folder. Everything here reads that folder, so a page that was
reloaded or closed and opened again sees the same state, and a run started from a shell is
shown the same way. No torch import: this module is cheap to import in a page.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel

from core.config import Settings
from core.errors import InputError
from core.media.storage import atomic_write_json
from core.models.local.adapters import ADAPTER_NAME
from finetune.options import TrainOptions, default_run_name
from finetune.run_files import (
    CONSOLE,
    FINAL,
    LAUNCH,
    LOG,
    PID,
    RUN_CONFIG,
    STATE,
    is_unused,
    now,
    other_trainer,
    read_pid,
    read_progress,
    read_state,
    tail,
    trainer_alive,
)

if TYPE_CHECKING:  # the dataset check pulls in the media pipeline (PyAV): imported when a check runs
    from finetune.dataset import ValidationReport

ROOT = Path(__file__).resolve().parents[1]  # the folder holding finetune/ and core/
# Never passed to the trainer: it needs no Gemini key.
_SECRET_ENV = ("GEMINI_API_KEY", "VCHAT_GEMINI_API_KEY", "GOOGLE_API_KEY")
_children: dict[int, subprocess.Popen[bytes]] = {}  # runs started by this process, reaped when polled

__all__ = [
    "RunState",
    "cancel_run",
    "check_dataset",
    "check_run_name",
    "list_runs",
    "read_progress",
    "resume_run",
    "run_state",
    "start_run",
    "trains_on_gpu",
]

State = Literal["starting", "running", "finished", "cancelled", "failed"]
ACTIVE: tuple[State, ...] = ("starting", "running")


class RunState(BaseModel):
    """Where a run stands, from its folder (and whether its process is alive)."""

    name: str
    path: Path
    state: State
    phase: str | None = None  # while running: validating | loading model | evaluating | training | saving
    step: int = 0
    total_steps: int | None = None
    pid: int | None = None
    alive: bool = False
    message: str | None = None
    eval_loss_before: float | None = None
    eval_loss_after: float | None = None
    train_examples: int | None = None
    eval_examples: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    adapter_ready: bool = False  # final_checkpoint/ is there: the app can serve it
    resumable: bool = False  # cancelled or failed once run_config.json was written (resume_run continues it)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def label(self) -> str:
        """The state in a few words: 'running: training', 'finished'..."""
        if self.state == "running" and self.phase:
            return f"running: {self.phase}"
        return self.state

    def progress(self) -> list[dict[str, Any]]:
        """Every complete row of the run's progress.jsonl (a step, or an evaluation)."""
        return read_progress(self.path)

    def summary(self) -> str | None:
        """The run's main options in one line, from its run_config.json (None until the trainer wrote
        it, or for a run_config of another version)."""
        try:
            saved = json.loads((self.path / RUN_CONFIG).read_text(encoding="utf-8"))
            options, data = saved["options"], saved["data"]
            return (
                f"Data: {data['path']} · lr {options['lr']:g} · rank {options['rank']} · "
                f"alpha {options['alpha']:g} · {options['frames']} frames of at most "
                f"{options['max_pixels']:,} pixels · gradient accumulation {options['grad_accum']} · "
                f"{self.train_examples} training, {self.eval_examples} held-out examples"
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def console_tail(self, lines: int = 20) -> str:
        """The last lines the trainer printed (console.log, for a run the app started), else of its
        train.log; "" when neither holds anything."""
        return tail(self.path / CONSOLE, lines) or tail(self.path / LOG, lines)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a subprocess these settings (VCHAT_* variables), minus secrets."""
    env = {k: v for k, v in os.environ.items() if k not in _SECRET_ENV}
    for name, value in settings.model_dump().items():
        key = f"VCHAT_{name.upper()}"
        if name == "gemini_api_key":
            continue
        if value is None:
            env.pop(key, None)
        elif isinstance(value, list):
            env[key] = ",".join(str(v) for v in value)
        else:
            env[key] = str(value)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def _spawn(run_dir: Path, argv: list[str], settings: Settings) -> subprocess.Popen[bytes]:
    """`python -m finetune ARGV` in a session of its own, so a closed tab or the app's terminal stops
    nothing; `--parent-pid` makes it stop (checkpoint, state cancelled) when this process is gone."""
    (run_dir / PID).unlink(missing_ok=True)  # a pid left by an earlier session is not this run's
    with open(run_dir / CONSOLE, "ab") as console:
        process = subprocess.Popen(
            [sys.executable, "-m", "finetune", *argv, "--quiet", "--parent-pid", str(os.getpid())],
            cwd=str(ROOT),
            env=settings_env(settings),
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not killed with the app's terminal; cancelled by its own pid
            close_fds=True,
        )
    _children[process.pid] = process
    atomic_write_json(run_dir / LAUNCH, {"argv": argv, "pid": process.pid, "started_at": now()})
    return process


def check_run_name(settings: Settings, name: str) -> None:
    """InputError when `name` (typed for a new run; "" = a timestamp) cannot be used: not a name, or a
    run of that name exists. A page asks before any work; `start_run` checks again."""
    if not name:
        return
    if not ADAPTER_NAME.match(name):
        raise InputError(f"'{name}' cannot be a run name: use letters, digits, '.', '_' and '-'.")
    if not is_unused(settings.adapters_dir / name):
        raise InputError(f"A run called {name} already exists; choose another name (runs are never overwritten).")


def trains_on_gpu() -> bool:
    """Whether a trainer started here would train on a GPU (CUDA is there). Imports torch, so only a
    page that asks pays for it."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def start_run(settings: Settings, options: TrainOptions, name: str | None = None) -> Path:
    """Start `python -m finetune` for `options` in a new run folder; return the folder at once.

    The folder is `options.output`, else `<adapters_dir>/<name or a timestamp>`."""
    run_dir = options.output or settings.adapters_dir / (name or default_run_name())
    if not ADAPTER_NAME.match(run_dir.name):
        raise InputError(f"'{run_dir.name}' cannot be an adapter name: use letters, digits, '.', '_' and '-'.")
    if not is_unused(run_dir):
        busy = other_trainer(run_dir)
        if busy is not None:
            raise InputError(f"A trainer (process {busy}) is still running in {run_dir}; choose another name.")
        raise InputError(f"{run_dir} already exists; choose another name (runs are never overwritten).")
    run_dir.mkdir(parents=True, exist_ok=True)
    argv = options.model_copy(update={"output": run_dir, "resume": False}).to_argv()
    _spawn(run_dir, argv, settings)
    return run_dir


def resume_run(settings: Settings, run_dir: Path) -> Path:
    """Continue a cancelled (or crashed, or killed) run from its last checkpoint, as a subprocess (from
    step 0, with the run's own options, when it stopped before its first checkpoint)."""
    state = run_state(run_dir)
    if state.active:
        raise InputError(f"The run {state.name} is still {state.state}.")
    if not state.resumable:
        raise InputError(f"The run {state.name} cannot be resumed (it is {state.state}).")
    _spawn(run_dir, ["--output", str(run_dir), "--resume"], settings)
    return run_dir


def check_dataset(
    settings: Settings, options: TrainOptions, should_stop: Callable[[], bool] | None = None
) -> ValidationReport:
    """Every line of `options.data` checked as training will use it (videos through the media
    pipeline, the training frames decoded): the report a page shows before it starts a run."""
    from finetune.collator import sample_frames
    from finetune.dataset import validate_dataset

    return validate_dataset(
        options.data,
        settings,
        check_frames=lambda path: sample_frames(path, options, settings),
        should_stop=should_stop,
    )


def _alive(pid: int | None) -> bool:
    """True while `pid` is a live trainer (a child of ours that ended is reaped here)."""
    child = _children.get(pid) if pid is not None else None
    if child is not None and child.poll() is not None:
        _children.pop(child.pid, None)
        return False
    return trainer_alive(pid)


def run_state(run_dir: Path) -> RunState:
    """The run's state from its folder. A launched trainer that has not written its state yet is
    'starting'; a 'running' run whose process is gone (killed, crashed) is 'failed'."""
    run_dir = Path(run_dir)
    saved = read_state(run_dir)
    state, message = saved.get("state"), saved.get("message")
    pid = saved.get("pid") if state == "running" else None
    alive = _alive(pid)
    if state != "running":
        launched = read_pid(run_dir)  # launch.json: a trainer started by the app, maybe still importing
        if _alive(launched):
            state, pid, alive, message = "starting", launched, True, None
    if state is None:
        state = "failed"
        message = _console_tail(run_dir) or "the trainer never started"
    elif state == "running" and not alive:
        state = "failed"
        message = message or _console_tail(run_dir) or "the trainer stopped without saying why"
    elif state not in get_args(State):  # a state.json of another version, or not one at all
        state, message = "failed", f"unknown state {state!r} in {STATE}"
    finished = (run_dir / FINAL / "adapter_config.json").is_file()
    return RunState(
        name=run_dir.name,
        path=run_dir,
        state=state,
        phase=saved.get("phase") if state == "running" else None,
        step=int(saved.get("step") or 0),
        total_steps=saved.get("total_steps"),
        pid=pid if alive else None,
        alive=alive,
        message=message,
        eval_loss_before=saved.get("eval_loss_before"),
        eval_loss_after=saved.get("eval_loss_after"),
        train_examples=saved.get("train_examples"),
        eval_examples=saved.get("eval_examples"),
        started_at=saved.get("started_at"),
        finished_at=saved.get("finished_at"),
        adapter_ready=finished,
        resumable=state in ("cancelled", "failed") and (run_dir / RUN_CONFIG).is_file() and not finished,
    )


def _console_tail(run_dir: Path, lines: int = 5) -> str | None:
    return tail(run_dir / CONSOLE, lines).strip() or None


def cancel_run(run_dir: Path) -> bool:
    """Ask the run's trainer to stop (SIGTERM: it saves a checkpoint and exits cleanly).
    False when no trainer of this run is alive."""
    pid = read_pid(Path(run_dir))
    if pid is None or not _alive(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    return True


def list_runs(settings: Settings) -> list[RunState]:
    """Every run folder in the adapters dir, newest first (finished, running, failed...)."""
    root = settings.adapters_dir
    if not root.is_dir():
        return []
    runs = [
        run_state(child)
        for child in root.iterdir()
        if child.is_dir() and any((child / f).exists() for f in (RUN_CONFIG, LAUNCH, "state.json"))
    ]
    return sorted(runs, key=lambda r: (r.started_at or "", r.name), reverse=True)
