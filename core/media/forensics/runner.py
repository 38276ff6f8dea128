"""ffmpeg analysis passes: a file read with the demuxer the probe chose and the `file` protocol only
(as the sanitizer reads it), through filters that log what they find, to a null output
(`filter_pass`) or, for the sanitized video, also to small raw frames read by Python (`FramePipe`).

The filters (ebur128, silencedetect, freezedetect, blackdetect) report at ffmpeg's info level, so
the pass runs with `-v info`; `-copyts` keeps the file's own timestamps, so the times they print
are presentation times the caller can put on its axis.
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

from core.config import Settings
from core.errors import MediaError, ProcessingError
from core.media.ffmpeg import child_process_args, ffmpeg_binary, run_ffmpeg, wrap_command
from core.media.sniff import ffmpeg_input

_NUMBER = r"(-?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?|-?inf|nan)"


def filter_pass(path: Path, demuxer: str, stream: str, option: str, filters: str, settings: Settings) -> str:
    """Run `filters` (`option` is -af or -vf) over one stream (`stream`, e.g. "0:1") of `path`;
    return ffmpeg's log. Raises MediaError when ffmpeg fails."""
    args = ["-v", "info", "-nostats", *ffmpeg_input(path, demuxer), "-copyts", "-map", stream]
    args += ["-sn", "-dn", "-an" if option == "-vf" else "-vn", option, filters, "-f", "null", "-"]
    run = run_ffmpeg(args, settings.sanitize_timeout_s, settings.ffmpeg_path)
    if run.returncode != 0:
        detail = run.stderr.splitlines()[-1] if run.stderr else f"exit code {run.returncode}"
        raise MediaError(f"ffmpeg could not measure '{path.name}': {detail[:300]}")
    return run.stderr


def numbers(log: str, key: str, source: str = "") -> list[float]:
    """Every value printed as `key: value` or `key:value` (on lines naming `source`), in order."""
    found = []
    for line in log.splitlines():
        if source and source not in line:
            continue
        for match in re.finditer(rf"(?<!\w){re.escape(key)}\s*:\s*{_NUMBER}", line, flags=re.IGNORECASE):
            value = float(match.group(1))
            if value == value:  # not nan
                found.append(value)
    return found


def stretches(log: str, start_key: str, end_key: str, source: str, end_of_stream: float) -> list[tuple[float, float]]:
    """(start, end) pairs from a filter that logs a start and, later, an end; a stretch still open
    when the stream ends closes at `end_of_stream`."""
    pairs: list[tuple[float, float]] = []
    start: float | None = None
    pattern = re.compile(rf"(?<!\w)({re.escape(start_key)}|{re.escape(end_key)})\s*:\s*{_NUMBER}", re.IGNORECASE)
    for line in log.splitlines():
        if source not in line:
            continue
        for match in pattern.finditer(line):
            value = float(match.group(2))
            if value != value:
                continue
            if match.group(1).lower() == start_key.lower():
                start = value
            elif start is not None:
                pairs.append((start, max(start, value)))
                start = None
    if start is not None:
        pairs.append((start, max(start, end_of_stream)))
    return pairs


class FramePipe:
    """ffmpeg writing raw frames of a fixed size to its stdout, read one at a time.

    Started like run_ffmpeg's children (no stdin, parent-death signal) and killed at its deadline,
    when the reader stops early or fails, and with this process. `log` holds ffmpeg's stderr once
    the pipe is closed; closing raises ProcessingError when the deadline was passed."""

    def __init__(self, args: list[str], frame_bytes: int, timeout_s: float, binary: str | None = None) -> None:
        self.cmd = [ffmpeg_binary(binary), "-hide_banner", "-nostdin", *args]
        self.frame_bytes = frame_bytes
        self.timeout_s = timeout_s
        self.log = ""
        self.returncode: int | None = None
        self._lines: list[str] = []
        self._timed_out = threading.Event()

    def __enter__(self) -> FramePipe:
        self.proc = subprocess.Popen(
            wrap_command(self.cmd),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            **child_process_args(),  # type: ignore[arg-type]
        )
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        self._timer = threading.Timer(self.timeout_s, self._stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def _read_log(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self._lines.append(raw.decode("utf-8", "replace"))

    def _stop(self) -> None:
        self._timed_out.set()
        self.proc.kill()

    def frames(self) -> Iterator[bytes]:
        assert self.proc.stdout is not None
        while True:
            data = self.proc.stdout.read(self.frame_bytes)
            if len(data) < self.frame_bytes:
                return
            yield data

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        if self.proc.poll() is None and exc[0] is not None:
            self.proc.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()  # a writer blocked on a full pipe gets EPIPE instead of waiting forever
        self.returncode = self.proc.wait()
        self._reader.join(timeout=5)
        self.log = "".join(self._lines)
        if self._timed_out.is_set() and exc[0] is None:
            raise ProcessingError(
                f"ffmpeg did not finish within {self.timeout_s:.0f} s.",
                "Raise VCHAT_SANITIZE_TIMEOUT_S for very long videos.",
            )
