"""A job at a glance, as data: its state in words, the ETA, seconds by stage (the page and the CLI)."""

from __future__ import annotations

import time

from core.jobs.store import Counts, Item, Job, Lease

# The stages items report (core/progress.py names), grouped as a person reads them.
STAGE_GROUPS = {
    "fetch": "media",
    "download": "media",
    "probe": "media",
    "provenance": "media",
    "sanitize": "media",
    "ready": "media",
    "waiting": "waiting",
    "queue": "waiting",
    "store": "store",
    "done": "store",
}
GROUP_ORDER = ("media", "waiting", "model", "store")


def stage_group(stage: str) -> str:
    return STAGE_GROUPS.get(stage, "model")


def grouped_stages(item: Item) -> dict[str, float]:
    """An item's seconds by group (media, waiting for the model, the model's work, storing)."""
    groups: dict[str, float] = {}
    for stage, seconds in item.stages.items():
        group = stage_group(stage)
        groups[group] = round(groups.get(group, 0.0) + seconds, 3)
    return groups


def job_status(job: Job, counts: Counts) -> str:
    """The job's state in a few words."""
    failed = counts.get("failed")
    tail = f", {failed} failed" if failed else ""
    if job.hold:
        return "held"
    if job.state == "cancelled":
        return f"cancelled{tail}"
    if job.state == "paused" and counts.open:
        return f"paused{tail}"
    if counts.open == 0:
        return f"finished{tail}"
    if counts.get("preparing") or counts.get("running"):
        return f"running{tail}"
    return f"waiting to start{tail}"


def eta_seconds(items: list[Item], now: float | None = None) -> float | None:
    """Seconds until every open item is finished, from the pace of the last items finished (None:
    too few finished yet to tell)."""
    now = time.time() if now is None else now
    open_items = [i for i in items if i.state in ("queued", "preparing", "running")]
    if not open_items:
        return 0.0
    finished = sorted(i.finished_at for i in items if i.state in ("done", "failed") and i.finished_at)
    recent = finished[-20:]
    if len(recent) < 2:
        return None
    span = max(now, recent[-1]) - recent[0]
    if span <= 0:
        return None
    rate = (len(recent) - 1) / span
    return len(open_items) / rate


def worker_text(lease: Lease, owner_pid: int | None = None) -> str:
    """Who works batches for this data dir now."""
    if not lease.live():
        return "no worker holds the batch lease yet (the app's worker takes it within seconds)"
    who = "this app" if lease.role == "app" and lease.pid == owner_pid else f"the {lease.role} process"
    return f"worked by {who} (pid {lease.pid} on {lease.host})"
