"""Locating and running the ffmpeg binary.

A system ffmpeg is used when present (usually the fastest build), else the static binary
that imageio-ffmpeg ships, so vChat needs nothing outside its Python packages.

An ffmpeg child never outlives vChat: it is started with a parent-death signal (SIGKILL when
the thread that started it ends: the process was killed, even with SIGKILL), and killed when
it runs past its time limit or the caller is interrupted.
"""

from __future__ import annotations

import ctypes
import functools
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import ProcessingError

# (seconds of output written so far) -> None; ffmpeg's -progress reports about twice a second.
FfmpegProgress = Callable[[float], None]
_PR_SET_PDEATHSIG = 1


@functools.lru_cache(maxsize=4)
def ffmpeg_binary(preferred: str | None = None) -> str:
    """Path of the ffmpeg to run: `preferred`, else the system one, else imageio-ffmpeg's."""
    if preferred:
        found = shutil.which(preferred)
        if not found:
            raise ProcessingError(f"VCHAT_FFMPEG_PATH points to {preferred!r}, which is not an executable.")
        return found
    system = shutil.which("ffmpeg")
    if system:
        return system
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class FfmpegRun:
    returncode: int
    stderr: str
    seconds: float


@functools.cache
def _pdeathsig_prefix() -> tuple[str, ...]:
    """util-linux's setpriv sets the parent-death signal and execs the command: no Python code
    runs in the child between fork and exec (a preexec_fn is unsafe in a threaded server)."""
    setpriv = shutil.which("setpriv")
    return (setpriv, "--pdeathsig", "KILL", "--") if setpriv else ()


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child, only where setpriv is missing
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def child_process_args() -> dict[str, object]:
    """Popen arguments that make a child die with this process (use with `wrap_command`)."""
    return {} if _pdeathsig_prefix() else {"preexec_fn": _set_pdeathsig}


def wrap_command(cmd: list[str]) -> list[str]:
    return [*_pdeathsig_prefix(), *cmd]


def run_ffmpeg(
    args: list[str],
    timeout_s: float,
    binary: str | None = None,
    on_progress: FfmpegProgress | None = None,
) -> FfmpegRun:
    """Run ffmpeg with `args` (no stdin, errors-only log), raising ProcessingError on timeout.

    With `on_progress`, ffmpeg's `-progress` output is read and the seconds of output written
    so far are reported as they grow."""
    cmd = [ffmpeg_binary(binary), "-hide_banner", "-nostdin", "-v", "error"]
    if on_progress is not None:
        cmd += ["-progress", "pipe:1", "-stats_period", "0.5"]
    cmd += args
    started = time.perf_counter()
    proc = subprocess.Popen(
        wrap_command(cmd),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if on_progress is not None else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        **child_process_args(),  # type: ignore[arg-type]
    )
    stderr_lines: list[str] = []
    reader = threading.Thread(target=lambda: stderr_lines.extend(proc.stderr or []), daemon=True)
    reader.start()
    timed_out = threading.Event()

    def stop_at_deadline() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(timeout_s, stop_at_deadline)
    timer.daemon = True
    timer.start()
    try:
        if on_progress is not None and proc.stdout is not None:
            for line in proc.stdout:
                key, _, value = line.strip().partition("=")
                if key == "out_time_us" and value.isdigit():
                    on_progress(int(value) / 1e6)
        proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:  # interrupted (KeyboardInterrupt, a stopped script): no orphan
            proc.kill()
            proc.wait()
        reader.join(timeout=5)
    seconds = time.perf_counter() - started
    if timed_out.is_set():
        raise ProcessingError(
            f"ffmpeg did not finish within {timeout_s:.0f} s.",
            "Raise VCHAT_SANITIZE_TIMEOUT_S for very long videos.",
        )
    return FfmpegRun(proc.returncode, "".join(stderr_lines).strip(), seconds)
