"""Nothing left behind by the trainer: `python -m finetune` killed with SIGKILL at random points
(starting, validating, loading the model, training) leaves no process running and a folder the
next start accepts, and that start cleans up and runs to the end; a trainer never outlives the
process that started it (the app), even one killed with SIGKILL.

Real trainers on the tiny model, one at a time (two cores): nothing of the trainer is mocked.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.config import Settings
from finetune.options import TrainOptions
from finetune.run_files import is_unused, read_pid, read_progress, read_state, trainer_alive
from finetune.runs import run_state, settings_env
from finetune.trainer import ORPHAN_GRACE_S
from tests.finetune_support import BLUE, RED, make_colour_clip, text_line, write_jsonl
from tests.support import processes_mentioning

ROOT = Path(__file__).resolve().parents[1]
KILLS = 5
SEED = 20261128
STEPS = 60  # about 1.5 s of training on two cores, a checkpoint every step
SMALL = {"frames": 4, "max_pixels": 56 * 56, "grad_accum": 1, "eval_split": 0.25}
PHASES = ("validating", "loading model", "evaluating", "training", "saving")
# Where each kill lands: the phase to wait for ("starting" = from the launch), then a random delay
# in that range (s). The trainer claims its folder about 0.2 s after the launch, so a kill while
# starting may come before. Whatever the machine's speed, the kill comes by step LAST_KILL_STEP,
# so the trainer is still running when it comes.
KILL_PLAN = [("starting", 0.05, 0.2), ("validating", 0.0, 0.8), ("loading model", 0.0, 1.8)] + [
    ("training", 0.0, 1.2)
] * 2
LAST_KILL_STEP = STEPS - 15


@dataclass
class World:
    root: Path
    model: Path
    data: Path

    def settings(self, name: str) -> Settings:
        """A data dir of its own per run (so validation really sanitizes and decodes), shared adapters dir."""
        return Settings(
            data_dir=self.root / f"data-{name}",
            media_dir=self.root / "videos",
            adapters_dir=self.root / "lora_adapters",
            frame_cache_mb=64,
        )

    def argv(self, run_dir: Path, **extra: object) -> list[str]:
        fields = {"max_steps": STEPS, "save_every": 1, **SMALL, **extra}
        options = TrainOptions(data=self.data, output=run_dir, model_path=self.model, **fields)
        return options.to_argv()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> World:
    root = tmp_path_factory.mktemp("ft-kill")
    (root / "videos").mkdir()
    rows = []
    for i in range(4):
        colour = "red" if i % 2 == 0 else "blue"
        make_colour_clip(root / "dataset" / "clips" / f"{colour}{i}.mp4", RED if i % 2 == 0 else BLUE, seed=i)
        rows.append(text_line(f"clips/{colour}{i}.mp4", f"It is {colour}."))
    return World(root, tiny_model, write_jsonl(root / "dataset" / "data.jsonl", rows))


def leftovers(folder: Path) -> list[str]:
    """Temporary and staging names anywhere under `folder` (hidden files, *.tmp, *.part)."""
    if not folder.is_dir():
        return []
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.name.startswith(".") or p.name.endswith((".tmp", ".part"))
    )


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll `condition` every 10 ms; the seconds it took."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)
    return time.monotonic() - start


def no_process_of(world: World, what: str) -> None:
    """Nothing started for this module (trainer, ffmpeg, a parent) is left a few seconds after a kill."""
    try:
        wait_for(lambda: not processes_mentioning(str(world.root)), 5, "the processes to end")
    except AssertionError:
        raise AssertionError(f"{what}: processes outlived it: {processes_mentioning(str(world.root))}") from None


def trainer_env(settings: Settings) -> dict[str, str]:
    """The app's environment for a trainer, with one torch thread: two threads on two cores that
    another test run also uses spin in each op's barrier and train many times slower."""
    return {**settings_env(settings), "OMP_NUM_THREADS": "1"}


def finetune(argv: list[str], settings: Settings, **popen: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "finetune", *argv], cwd=ROOT, env=trainer_env(settings), text=True, **popen
    )  # type: ignore[call-overload]


def run_to_the_end(world: World, run_dir: Path, settings: Settings, argv: list[str]) -> str:
    """Run the trainer to its end and check what the user gets: finished, the adapter, a clean folder."""
    proc = finetune(argv, settings, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, f"{argv}: exit {proc.returncode}\n{err}"
    state = run_state(run_dir)
    assert state.state == "finished" and state.adapter_ready, (state, err)
    assert (run_dir / "final_checkpoint" / "adapter_config.json").is_file()
    assert (run_dir / "final_checkpoint" / "adapter_model.safetensors").is_file()
    assert leftovers(run_dir) == [], f"temporaries left in the run folder: {leftovers(run_dir)}"
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "trainer.pid").exists()
    assert leftovers(settings.data_dir) == [], f"temporaries left in the data dir: {leftovers(settings.data_dir)}"
    rows = read_progress(run_dir)
    assert [r["step"] for r in rows if r["kind"] == "train"] == list(range(1, state.step + 1)), "rows lost or doubled"
    assert (run_dir / "progress.jsonl").read_text().endswith("\n")
    return err


def train_rows(run_dir: Path) -> int:
    return sum(r["kind"] == "train" for r in read_progress(run_dir))


def reached(run_dir: Path, proc: subprocess.Popen[str], phase: str) -> bool:
    """The trainer is in `phase` or a later one (or has ended)."""
    now = read_state(run_dir).get("phase")
    return proc.poll() is not None or (now in PHASES and PHASES.index(now) >= PHASES.index(phase))


def test_a_trainer_killed_at_random_points_leaves_a_folder_the_next_run_finishes(world: World):
    rng = random.Random(SEED)
    plan = list(KILL_PLAN)
    rng.shuffle(plan)
    assert len(plan) == KILLS
    for attempt, (phase, low, high) in enumerate(plan):
        run_dir = world.root / "lora_adapters" / f"killed-{attempt}"
        settings = world.settings(f"kill-{attempt}")
        what = f"attempt {attempt} (killed {phase})"
        with open(world.root / f"killed-{attempt}.err", "w") as console:
            proc = finetune(world.argv(run_dir), settings, stdout=console, stderr=subprocess.STDOUT)
        if phase != "starting":
            wait_for(functools.partial(reached, run_dir, proc, phase), 120, f"{what}: the phase")
        delay = rng.uniform(low, high)
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and train_rows(run_dir) < LAST_KILL_STEP:
            time.sleep(0.005)
        assert proc.poll() is None, f"{what}: the trainer ended first:\n{Path(console.name).read_text()}"
        seen = read_state(run_dir).get("phase", "starting")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        no_process_of(world, what)

        left = leftovers(run_dir)
        was_running = read_state(run_dir).get("state") == "running"
        if was_running:  # a dead trainer's 'running' reads as failed
            assert run_state(run_dir).state == "failed" and not run_state(run_dir).alive, what
        resume = (run_dir / "run_config.json").is_file() or (run_dir / "checkpoints").is_dir()
        restarts = not any((run_dir / "checkpoints").glob("step-*")) and not (run_dir / "final_checkpoint").is_dir()
        if resume:
            assert run_state(run_dir).resumable, f"{what}: the page would offer no Resume"
        argv = ["--output", str(run_dir), "--resume"] if resume else world.argv(run_dir)
        err = run_to_the_end(world, run_dir, settings, argv)
        log = (run_dir / "train.log").read_text()
        if resume and restarts:  # said on stderr (the console) and in the log
            assert "starting it again from step 0 with the run's saved options" in log, log
            assert "starting it again from step 0 with the run's saved options" in err, err
        if was_running:  # the next trainer's log says what became of the last one
            assert "stopped without a word while" in log, log
        no_process_of(world, f"{what}, the next run")
        print(
            f"\n{what}: killed {delay:.2f} s after the phase began, in {seen!r}, leaving {left or 'no temporaries'}; "
            f"then {'--resume' if resume else 'a fresh start'} finished"
        )


def dead_tag() -> str:
    """An owner tag (as core.media.scratch writes them) naming a process that has ended."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return f"vchat-{int(dead.stdout)}-0-0123456789ab"


def test_a_folder_left_before_the_run_saved_its_options_is_taken_over_by_a_fresh_start(world: World):
    """What a trainer killed between claiming its folder and writing run_config.json leaves (with the
    app's launch files): nothing of value, so a fresh start may use the name; --resume says so."""
    settings = world.settings("early")
    run_dir = settings.adapters_dir / "early"
    run_dir.mkdir(parents=True)
    tag = dead_tag()
    dead = int(tag.split("-")[1])
    state = {"state": "running", "phase": "validating", "pid": dead, "step": 0, "started_at": "2026-01-01T00:00:00"}
    (run_dir / "state.json").write_text(json.dumps(state))
    (run_dir / "trainer.pid").write_text(str(dead))
    (run_dir / "launch.json").write_text(json.dumps({"argv": [], "pid": dead}))
    (run_dir / "console.log").write_text("")
    (run_dir / "train.log").write_text("2026-01-01 00:00:00,000 INFO run folder x\n2026-01-01 00:00:00,001 INFO chec")
    (run_dir / f".state.json.{tag}.tmp").write_text('{"state": "runn')
    shown = run_state(run_dir)
    assert shown.state == "failed" and not shown.resumable and not shown.alive
    assert is_unused(run_dir), "the app's Start (start_run, the page) accepts the name"

    refused = finetune(["--output", str(run_dir), "--resume"], settings, stderr=subprocess.PIPE)
    _, err = refused.communicate(timeout=60)
    assert refused.returncode == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "stopped before it saved its options" in err and f"--output {run_dir}" in err

    run_to_the_end(world, run_dir, settings, world.argv(run_dir, max_steps=3))
    log = (run_dir / "train.log").read_text()
    assert f"the previous trainer of this run (process {dead}) stopped without a word while validating" in log
    assert "INFO chec\n" in log, "a line cut by the kill is closed before the next one"
    assert f"removed what a killed writer left half-written: .state.json.{tag}.tmp" in log


PARENT = """
import sys, time
from core.config import get_settings
from finetune.options import TrainOptions
from finetune.runs import start_run
print(start_run(get_settings(), TrainOptions.model_validate_json(sys.argv[1])), flush=True)
time.sleep(600)
"""


def test_a_trainer_stops_when_the_app_that_started_it_is_killed(world: World):
    """The app is a short-lived `python -c` that calls start_run; SIGKILL it while the trainer trains."""
    settings = world.settings("orphan")
    options = TrainOptions(
        data=world.data,
        output=settings.adapters_dir / "orphan",
        model_path=world.model,
        max_steps=5000,
        save_every=1000,
        **SMALL,
    )
    app = subprocess.Popen(
        [sys.executable, "-c", PARENT, options.model_dump_json()],
        cwd=ROOT,
        env=trainer_env(settings),  # start_run passes it on
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        run_dir = Path(app.stdout.readline().strip())  # type: ignore[union-attr]
        assert run_dir == options.output
        wait_for(lambda: len(read_progress(run_dir)) >= 3, 120, "training steps")
        pid = read_pid(run_dir)
        assert trainer_alive(pid)
        app.send_signal(signal.SIGKILL)
        app.wait(timeout=30)
        seconds = wait_for(lambda: not trainer_alive(pid), ORPHAN_GRACE_S + 10, "the orphaned trainer to stop")
    finally:
        kill_all(app, str(options.output))  # whatever happened, no trainer outlives the test
    print(f"\nthe trainer stopped {seconds:.1f} s after its app was killed (bound {ORPHAN_GRACE_S:g} s)")
    assert seconds < ORPHAN_GRACE_S
    no_process_of(world, "the killed app")
    state = run_state(run_dir)
    assert state.state == "cancelled" and state.resumable and state.step >= 2, state
    assert (run_dir / "checkpoints" / f"step-{state.step:06d}" / "trainer_state.pt").is_file()
    assert f"the process that started this run ({app.pid}) is gone" in (run_dir / "train.log").read_text()

    # What a later kill would leave: a checkpoint half-written under its temporary name, a row cut short.
    half = run_dir / "checkpoints" / f".step-{state.step + 50:06d}.{dead_tag()}.tmp"
    half.mkdir()
    (half / "adapter_config.json").write_text('{"r": ')
    with open(run_dir / "progress.jsonl", "a") as fh:
        fh.write('{"kind": "train", "step": ')
    err = run_to_the_end(
        world, run_dir, settings, ["--output", str(run_dir), "--resume", "--max-steps", str(state.step + 3)]
    )
    log = (run_dir / "train.log").read_text()
    assert f"resumed from step-{state.step:06d}: step {state.step} of {state.step + 3}" in log, err
    assert f"removed what a killed writer left half-written: checkpoints/{half.name}" in log

    # Killed once final_checkpoint/ was renamed into place, before the state said so: --resume completes it.
    dead = int(dead_tag().split("-")[1])
    (run_dir / "state.json").write_text(
        json.dumps({**read_state(run_dir), "state": "running", "phase": "saving", "pid": dead})
    )
    (run_dir / "checkpoints" / f"step-{state.step + 3:06d}").mkdir(parents=True)
    assert run_state(run_dir).state == "failed" and run_state(run_dir).adapter_ready
    run_to_the_end(world, run_dir, settings, ["--output", str(run_dir), "--resume"])
    assert (
        "final_checkpoint/ was complete when the trainer stopped: the run is finished"
        in (run_dir / "train.log").read_text()
    )
    assert run_state(run_dir).step == state.step + 3


def kill_all(app: subprocess.Popen[str], mention: str) -> None:
    """SIGKILL the test's app and every process whose command line mentions `mention` (a failed test's leftovers)."""
    if app.poll() is None:
        app.kill()
        app.wait(timeout=30)
    for line in processes_mentioning(mention):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)


WATCHED = """
import sys, time
from pathlib import Path
from finetune.trainer import ParentWatcher, StopFlag
stop = StopFlag()
def last_word() -> int:
    Path(sys.argv[2]).write_text(str(stop.signal))
    return 1
ParentWatcher(int(sys.argv[1]), stop, last_word, grace_s=1.0, poll_s=0.05).start()
Path(sys.argv[2] + ".watching").touch()
time.sleep(300)  # the main thread busy in one long operation: it never looks at the flag
"""
LAUNCHER = """
import os, subprocess, sys, time
subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid()), sys.argv[2]], start_new_session=True)
time.sleep(300)
"""


def test_a_trainer_busy_when_its_app_dies_exits_hard_after_the_grace_period(world: World):
    """The real watcher in a process whose main thread never looks at the flag: the flag is set
    first, and `grace_s` later the process ends itself after its last word."""
    marker = world.root / "hard-exit.txt"
    app = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, WATCHED, str(marker)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_for(lambda: Path(f"{marker}.watching").exists(), 30, "the watcher to start")
        busy = processes_mentioning(str(marker))
        assert len(busy) == 2, busy  # the launcher and the watched process
        app.send_signal(signal.SIGKILL)
        app.wait(timeout=30)
        seconds = wait_for(lambda: not processes_mentioning(str(marker)), 10, "the hard exit")
    finally:
        kill_all(app, str(marker))
    assert 0.8 < seconds < 5, seconds
    assert marker.read_text() == f"the process that started this run ({app.pid}) is gone"
