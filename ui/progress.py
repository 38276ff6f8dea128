"""Progress of one analysis: an st.status with a line per stage (what it is doing, a bar where the
stage knows how far it is, the seconds it took), a queued note, the streamed answer, and the total
time the person has waited in the status label."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

from core.models.local.host import QueueState
from ui.errors import shown_errors
from ui.feedback import md, new_status, plain, show_info, show_progress, update_status
from ui.text import human_seconds

# Stage names (core/progress.py) in words a newcomer reads; stages sharing a label share a line.
STAGES = {
    "fetch": "Getting the video",
    "download": "Downloading",
    "probe": "Checking the video",
    "provenance": "Reading metadata and C2PA",
    "sanitize": "Making a clean copy to analyse",
    "ready": "Video ready",
    "remote": "Asking Gemini",
    "evidence": "Measuring without a model",
    "shots": "Finding shots",
    "keyframes": "Keeping keyframes",
    "audio": "Listening to the signal",
    "visual": "Looking for frozen and black frames",
    "check": "Checking",
    "frames": "Reading frames",
    "queue": "Waiting for the local model",
    "model": "Preparing the model",
    "analyze": "Looking at the video",
    "round": "Looking at the video",
    "store": "Saving the result",
    "done": "Done",
}
STREAM_INTERVAL_S = 0.15
REDRAW_INTERVAL_S = 0.2  # a stage's line and bar are redrawn at most this often (the last state always)


class _Line:
    """One stage's line in the status: text, bar, elapsed time."""

    def __init__(self, label: str, slot: Any, started: float) -> None:
        self.label = label
        self.slot = slot
        self.bar: Any = None
        self.resumed: float | None = started  # None while another stage runs
        self.spent = 0.0  # seconds of the periods this stage ran before `resumed` (stages interleave)
        self.message = ""
        self.drawn_at = 0.0

    def resume(self, now: float) -> None:
        if self.resumed is None:
            self.resumed = now

    def end(self, now: float) -> None:
        if self.resumed is not None:
            self.spent += now - self.resumed
            self.resumed = None
        self.draw(now, 1.0 if self.bar is not None else None, force=True)

    def draw(self, now: float, fraction: float | None, force: bool = False) -> None:
        if not force and now - self.drawn_at < REDRAW_INTERVAL_S:
            return
        self.drawn_at = now
        running = self.resumed is not None
        took = human_seconds(self.spent + (now - self.resumed if self.resumed is not None else 0.0))
        text = md("**{}**: {} · {}", self.label, self.message, took if running else f"took {took}")
        if fraction is None and self.bar is None:
            self.slot.markdown(plain(text))
            return
        if self.bar is None:
            self.bar = self.slot.progress(0.0)
        show_progress(self.bar, fraction if fraction is not None else 1.0, text)


class AnalysisProgress:
    """Callbacks for `run_analysis` that draw into Streamlit containers of the calling script."""

    def __init__(self, status: Any, queued_slot: Any, answer_slot: Any) -> None:
        self.status = status
        self.queued_slot = queued_slot
        self.answer_slot = answer_slot
        self.lines: dict[str, _Line] = {}
        self.current: _Line | None = None
        self.last_stream = 0.0
        self.started = time.monotonic()

    def waited(self) -> str:
        return human_seconds(time.monotonic() - self.started)

    def stage(self, stage: str, message: str, fraction: float | None) -> None:
        now = time.monotonic()
        label = STAGES.get(stage, stage.capitalize())
        if stage != "queue":
            self.queued_slot.empty()
        line = self.lines.get(label)
        if line is None:
            line = self.lines[label] = _Line(label, self.status.empty(), now)
        if self.current is not None and self.current is not line:
            self.current.end(now)
        line.resume(now)
        line.message = message
        changed = self.current is not line
        self.current = line
        line.draw(now, fraction, force=changed or fraction == 1.0)
        update_status(self.status, f"{label}: {message} ({self.waited()} so far)")

    def queued(self, state: QueueState) -> None:
        others = state.waiting - 1
        extra = f" {others} other session{'s' if others != 1 else ''} waiting too." if others > 0 else ""
        show_info(
            f"Another analysis is using the local model; this one starts when it is done "
            f"(waiting {human_seconds(state.waited_s)}).{extra}",
            icon=":material/hourglass_top:",
            where=self.queued_slot,
        )

    def text(self, round_number: int, text: str) -> None:
        now = time.monotonic()
        if now - self.last_stream < STREAM_INTERVAL_S:
            return
        self.last_stream = now
        self.answer_slot.markdown(md("*Round {}, as it is generated:*  \n{}", round_number, text))

    def finish(self, message: str) -> None:
        """`message` with the whole time waited, the last stage's line closed."""
        if self.current is not None:
            self.current.end(time.monotonic())
        self.queued_slot.empty()
        self.answer_slot.empty()
        update_status(self.status, f"{message} · {self.waited()} in all", state="complete", expanded=False)

    def fail(self, message: str) -> None:
        self.queued_slot.empty()
        self.answer_slot.empty()
        update_status(self.status, f"{message} after {self.waited()}", state="error", expanded=True)


Done = TypeVar("Done")


def run_in_status(
    title: str, action: str, work: Callable[[AnalysisProgress], Done], finished: Callable[[Done], str]
) -> Done | None:
    """`work(progress)` inside an st.status titled `title`, with a line per stage; its error shown as
    one line (ui/errors.shown_errors) and the label "The {action} stopped" (or "failed", for a bug),
    else the label `finished(result)`. Returns the result, None when it failed."""
    queued_slot = st.empty()
    status = new_status(title, expanded=True)
    progress = AnalysisProgress(status, queued_slot, st.empty())
    with shown_errors(action, where=st.container()) as attempt:
        result = work(progress)
    if attempt.failed:
        progress.fail(f"The {action} failed" if attempt.bug else f"The {action} stopped")
        return None
    progress.finish(finished(result))
    return result
