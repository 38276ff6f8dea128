"""Progress of one analysis: an st.status with a line per stage, a queued note, the streamed answer."""

from __future__ import annotations

import time
from typing import Any

from core.models.local.host import QueueState
from ui.feedback import md, show_info, show_progress, update_status

STAGES = {
    "fetch": "Fetch",
    "download": "Download",
    "provenance": "Provenance",
    "probe": "Probe",
    "sanitize": "Sanitize",
    "ready": "Media",
    "remote": "Gemini",
    "frames": "Frames",
    "queue": "Queued",
    "model": "Model",
    "analyze": "Model rounds",
    "round": "Model rounds",
    "store": "Result",
    "done": "Done",
}
STREAM_INTERVAL_S = 0.15


class AnalysisProgress:
    """Callbacks for `run_analysis` that draw into Streamlit containers of the calling script."""

    def __init__(self, status: Any, queued_slot: Any, answer_slot: Any) -> None:
        self.status = status
        self.queued_slot = queued_slot
        self.answer_slot = answer_slot
        self.lines: dict[str, Any] = {}
        self.bar: Any = None
        self.last_stream = 0.0
        self.started = time.monotonic()

    def stage(self, stage: str, message: str, fraction: float | None) -> None:
        label = STAGES.get(stage, stage.capitalize())
        if stage == "download":
            if self.bar is None:
                self.bar = self.status.progress(0.0)
            show_progress(self.bar, fraction or 0.0, message)
            return
        if stage != "queue":
            self.queued_slot.empty()
        if label not in self.lines:
            self.lines[label] = self.status.empty()
        self.lines[label].markdown(md("**{}**: {}", label, message))
        update_status(self.status, f"{label}: {message}")

    def queued(self, state: QueueState) -> None:
        others = state.waiting - 1
        extra = f" {others} other session{'s' if others != 1 else ''} waiting too." if others > 0 else ""
        show_info(
            f"Queued: another analysis is using the local model; this one starts when it is done "
            f"(waiting {state.waited_s:.0f} s).{extra}",
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
        self.queued_slot.empty()
        self.answer_slot.empty()
        update_status(self.status, message, state="complete", expanded=False)

    def fail(self, message: str) -> None:
        self.queued_slot.empty()
        self.answer_slot.empty()
        update_status(self.status, message, state="error", expanded=True)
