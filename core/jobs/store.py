"""The job store: `<data dir>/jobs.sqlite` (WAL), shared by every vChat process on that data dir.

Tables:
- `jobs`: what to do (kind, model, the request as JSON, options such as a label schema), the input
  (columns, the original CSV's bytes) and the job's state: active, paused or cancelled, and `hold`,
  the reason the worker cannot start it (no Gemini key in this process, no weights...).
- `items`: one per CSV row: its cells, its state (queued, preparing, running, done, failed,
  cancelled), attempts, the claim (owner, lease_until), when a retry may start (`not_before`), and,
  once done, a reference to the stored result (`result_ref`: which store, folder and key; the result
  itself stays in the result store, never copied here), the media's record, seconds by stage.
- `attempts`: every attempt of every item, with its outcome (done, failed, retry, interrupted).
- `lease`: one row: which process works batches for this data dir (owner, pid, host, until).

No API key is ever written here: a key typed in the app stays in the memory of the process that
runs the job (core/jobs/worker.py `KEYS`).

Every change is one transaction (BEGIN IMMEDIATE), so a process killed at any point leaves the
store as it was before or after that change. An item is finished only by the owner of its claim
while that owner holds the lease: a worker that lost its lease (stopped, then taken over) cannot
write over its successor's work.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from core.config import Settings
from core.processes import pid_exists

ItemState = Literal["queued", "preparing", "running", "done", "failed", "cancelled"]
JobState = Literal["active", "paused", "cancelled"]
ITEM_STATES: tuple[ItemState, ...] = ("queued", "preparing", "running", "done", "failed", "cancelled")
IN_FLIGHT = ("preparing", "running")
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    model TEXT NOT NULL,
    model_label TEXT NOT NULL,
    model_path TEXT,
    request TEXT NOT NULL,
    options TEXT NOT NULL,
    columns TEXT NOT NULL,
    input_key TEXT NOT NULL,
    original BLOB,
    delimiter TEXT NOT NULL DEFAULT ',',
    skipped TEXT NOT NULL DEFAULT '{}',
    submitted_by TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'active',
    hold TEXT
);
CREATE INDEX IF NOT EXISTS jobs_input ON jobs (input_key);
CREATE TABLE IF NOT EXISTS items (
    job_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    row_number INTEGER NOT NULL,
    url TEXT NOT NULL,
    question TEXT,
    label TEXT,
    item_id TEXT,
    cells TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    lease_until REAL,
    not_before REAL NOT NULL DEFAULT 0,
    result_ref TEXT,
    asset TEXT,
    from_store INTEGER,
    error TEXT,
    seconds REAL,
    stages TEXT,
    started_at REAL,
    finished_at REAL,
    PRIMARY KEY (job_id, idx)
);
CREATE TABLE IF NOT EXISTS attempts (
    job_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    owner TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    outcome TEXT,
    error TEXT,
    PRIMARY KEY (job_id, idx, attempt)
);
CREATE TABLE IF NOT EXISTS lease (
    name TEXT PRIMARY KEY,
    owner TEXT,
    pid INTEGER,
    host TEXT,
    role TEXT,
    until REAL NOT NULL DEFAULT 0,
    beat REAL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT);
"""


class ResultRef(BaseModel):
    """Where an item's result is kept: the result store (`results`) or the fact-check store."""

    store: Literal["results", "factcheck"] = "results"
    folder: str
    key: str


class Job(BaseModel):
    id: str
    created_at: float
    kind: str
    name: str
    model: str
    model_label: str
    model_path: str | None = None
    request: dict[str, Any]
    options: dict[str, Any] = Field(default_factory=dict)
    columns: list[str]
    input_key: str
    delimiter: str = ","
    skipped: dict[str, str] = Field(default_factory=dict)  # spreadsheet row -> why it was left out
    submitted_by: str
    state: JobState = "active"
    hold: str | None = None

    @property
    def created(self) -> str:
        return datetime.fromtimestamp(self.created_at, UTC).astimezone().strftime("%Y-%m-%d %H:%M")


class Item(BaseModel):
    job_id: str
    idx: int
    row_number: int
    url: str
    question: str | None = None
    label: str | None = None
    item_id: str | None = None
    cells: dict[str, str]
    state: ItemState = "queued"
    attempts: int = 0
    owner: str | None = None
    lease_until: float | None = None
    not_before: float = 0.0
    result_ref: ResultRef | None = None
    asset: str | None = None  # the MediaAsset's JSON (paths, source, probe): to open the result
    from_store: bool | None = None
    error: str | None = None
    seconds: float | None = None
    stages: dict[str, float] = Field(default_factory=dict)
    started_at: float | None = None
    finished_at: float | None = None


class Lease(BaseModel):
    owner: str | None
    pid: int | None
    host: str | None
    role: str | None
    until: float
    beat: float | None

    def live(self, now: float | None = None) -> bool:
        """Held by a process that is beating (and, on this host, still running)."""
        now = time.time() if now is None else now
        if not self.owner or self.until < now:
            return False
        return not (self.host == socket.gethostname() and self.pid and not pid_exists(self.pid))


class Counts(BaseModel):
    total: int = 0
    by_state: dict[str, int] = Field(default_factory=dict)

    def get(self, state: str) -> int:
        return self.by_state.get(state, 0)

    @property
    def finished(self) -> int:
        return self.get("done") + self.get("failed") + self.get("cancelled")

    @property
    def open(self) -> int:
        return self.total - self.finished


def new_owner(role: str) -> str:
    """A worker's name: unique per start, saying what it is (`app` or `cli`), where and which process."""
    return f"{role}:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class JobStore:
    def __init__(self, settings: Settings) -> None:
        self.path = settings.data_dir / "jobs.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(SCHEMA)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            db.execute("INSERT OR IGNORE INTO lease (name, until) VALUES ('batch', 0)")

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            yield db
        finally:
            db.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction that takes the write lock at once (no upgrade deadlocks between processes)."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # -- jobs -------------------------------------------------------------------------------------
    def create_job(self, job: Job, items: list[Item], original: bytes | None) -> Job:
        with self._write() as db:
            db.execute(
                "INSERT INTO jobs (id, created_at, kind, name, model, model_label, model_path, request, options,"
                " columns, input_key, original, delimiter, skipped, submitted_by, state, hold)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job.id, job.created_at, job.kind, job.name, job.model, job.model_label, job.model_path,
                    json.dumps(job.request), json.dumps(job.options), json.dumps(job.columns), job.input_key,
                    original, job.delimiter, json.dumps(job.skipped), job.submitted_by, job.state, job.hold,
                ),
            )  # fmt: skip
            db.executemany(
                "INSERT INTO items (job_id, idx, row_number, url, question, label, item_id, cells)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (job.id, item.idx, item.row_number, item.url, item.question, item.label, item.item_id,
                     json.dumps(item.cells))
                    for item in items
                ],
            )  # fmt: skip
        return job

    def job(self, job_id: str) -> Job | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    def jobs(self, limit: int = 100) -> list[Job]:
        """Newest first."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM jobs ORDER BY created_at DESC, id DESC LIMIT ?", (limit,)).fetchall()
        return [_job(row) for row in rows]

    def find_job(self, input_key: str) -> Job | None:
        """The latest job made from the same input (CSV bytes, kind, model, request, options)."""
        with self._connect() as db:
            row = db.execute(
                "SELECT * FROM jobs WHERE input_key = ? ORDER BY created_at DESC LIMIT 1", (input_key,)
            ).fetchone()
        return _job(row) if row else None

    def original(self, job_id: str) -> bytes | None:
        with self._connect() as db:
            row = db.execute("SELECT original FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bytes(row["original"]) if row and row["original"] is not None else None

    def set_state(self, job_id: str, state: JobState) -> None:
        """Pause, resume (active) or cancel a job. Cancelling cancels its queued items; items in flight
        finish. Resuming a cancelled job queues its cancelled items again; resuming clears a hold."""
        with self._write() as db:
            db.execute("UPDATE jobs SET state = ?, hold = NULL WHERE id = ?", (state, job_id))
            if state == "cancelled":
                db.execute(
                    "UPDATE items SET state = 'cancelled', finished_at = ? WHERE job_id = ? AND state = 'queued'",
                    (time.time(), job_id),
                )
            elif state == "active":
                db.execute(
                    "UPDATE items SET state = 'queued', attempts = 0, not_before = 0, finished_at = NULL"
                    " WHERE job_id = ? AND state = 'cancelled'",
                    (job_id,),
                )

    def hold(self, job_id: str, reason: str | None) -> None:
        """Say why the worker cannot start the job (None: it can)."""
        with self._write() as db:
            db.execute("UPDATE jobs SET hold = ? WHERE id = ?", (reason, job_id))

    def retry_failed(self, job_id: str) -> int:
        """Queue the failed items again (their attempts start over); the job becomes active."""
        with self._write() as db:
            changed = db.execute(
                "UPDATE items SET state = 'queued', attempts = 0, not_before = 0, finished_at = NULL"
                " WHERE job_id = ? AND state = 'failed'",
                (job_id,),
            ).rowcount
            db.execute("UPDATE jobs SET state = 'active', hold = NULL WHERE id = ?", (job_id,))
        return changed

    def delete_job(self, job_id: str) -> None:
        """Forget a job (its stored results stay in the result store)."""
        with self._write() as db:
            for table in ("attempts", "items"):
                db.execute(f"DELETE FROM {table} WHERE job_id = ?", (job_id,))
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def runnable_jobs(self) -> list[Job]:
        """Active jobs with open items, oldest first (held ones too: the worker checks them again)."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM jobs WHERE state = 'active' AND EXISTS (SELECT 1 FROM items"
                " WHERE items.job_id = jobs.id AND items.state IN ('queued', 'preparing', 'running'))"
                " ORDER BY created_at, id"
            ).fetchall()
        return [_job(row) for row in rows]

    # -- items ------------------------------------------------------------------------------------
    def items(self, job_id: str) -> list[Item]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM items WHERE job_id = ? ORDER BY idx", (job_id,)).fetchall()
        return [_item(row) for row in rows]

    def item(self, job_id: str, idx: int) -> Item | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM items WHERE job_id = ? AND idx = ?", (job_id, idx)).fetchone()
        return _item(row) if row else None

    def counts(self, job_id: str) -> Counts:
        with self._connect() as db:
            rows = db.execute(
                "SELECT state, COUNT(*) AS n FROM items WHERE job_id = ? GROUP BY state", (job_id,)
            ).fetchall()
        by_state = {row["state"]: row["n"] for row in rows}
        return Counts(total=sum(by_state.values()), by_state=by_state)

    def attempts(self, job_id: str) -> list[dict[str, Any]]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM attempts WHERE job_id = ? ORDER BY idx, attempt", (job_id,)).fetchall()
        return [dict(row) for row in rows]

    def claim(self, job_id: str, owner: str, lease_s: float) -> Item | None:
        """Take the next item of the job that is queued (and due), or whose claim's lease ran out."""
        now = time.time()
        with self._write() as db:
            row = db.execute(
                "SELECT idx FROM items WHERE job_id = ? AND ((state = 'queued' AND not_before <= ?)"
                " OR (state IN ('preparing', 'running') AND (lease_until IS NULL OR lease_until < ?)))"
                " ORDER BY idx LIMIT 1",
                (job_id, now, now),
            ).fetchone()
            if row is None:
                return None
            idx = row["idx"]
            db.execute(
                "UPDATE attempts SET outcome = 'interrupted', ended_at = ? WHERE job_id = ? AND idx = ?"
                " AND outcome IS NULL",
                (now, job_id, idx),
            )
            db.execute(
                "UPDATE items SET state = 'preparing', owner = ?, lease_until = ?, attempts = attempts + 1,"
                " started_at = ?, finished_at = NULL WHERE job_id = ? AND idx = ?",
                (owner, now + lease_s, now, job_id, idx),
            )
            number = db.execute(
                "SELECT COALESCE(MAX(attempt), 0) + 1 FROM attempts WHERE job_id = ? AND idx = ?", (job_id, idx)
            ).fetchone()[0]
            db.execute(
                "INSERT INTO attempts (job_id, idx, attempt, owner, started_at) VALUES (?, ?, ?, ?, ?)",
                (job_id, idx, number, owner, now),
            )
            claimed = db.execute("SELECT * FROM items WHERE job_id = ? AND idx = ?", (job_id, idx)).fetchone()
        return _item(claimed)

    def mark_running(self, job_id: str, idx: int, owner: str) -> bool:
        with self._write() as db:
            return (
                db.execute(
                    "UPDATE items SET state = 'running' WHERE job_id = ? AND idx = ? AND owner = ?"
                    " AND state = 'preparing'",
                    (job_id, idx, owner),
                ).rowcount
                == 1
            )

    def finish(
        self,
        job_id: str,
        idx: int,
        owner: str,
        *,
        state: Literal["done", "failed", "queued"],
        error: str | None = None,
        result_ref: ResultRef | None = None,
        asset: str | None = None,
        from_store: bool | None = None,
        seconds: float | None = None,
        stages: dict[str, float] | None = None,
        not_before: float = 0.0,
    ) -> bool:
        """End this owner's attempt at an item: done (with its result's reference), failed, or queued
        again for a retry at `not_before`. False (nothing written) when the claim or the lease is no
        longer this owner's."""
        now = time.time()
        with self._write() as db:
            holds = db.execute("SELECT 1 FROM lease WHERE name = 'batch' AND owner = ?", (owner,)).fetchone()
            if holds is None:
                return False
            changed = db.execute(
                "UPDATE items SET state = ?, error = ?, result_ref = COALESCE(?, result_ref),"
                " asset = COALESCE(?, asset), from_store = COALESCE(?, from_store), seconds = COALESCE(?, seconds),"
                " stages = COALESCE(?, stages), not_before = ?, owner = NULL, lease_until = NULL,"
                " finished_at = CASE WHEN ? = 'queued' THEN NULL ELSE ? END"
                " WHERE job_id = ? AND idx = ? AND owner = ? AND state IN ('preparing', 'running')",
                (
                    state, error, result_ref.model_dump_json() if result_ref else None, asset,
                    None if from_store is None else int(from_store), seconds,
                    json.dumps(stages) if stages is not None else None, not_before, state, now, job_id, idx, owner,
                ),
            ).rowcount  # fmt: skip
            if changed != 1:
                return False
            outcome = "retry" if state == "queued" else state
            db.execute(
                "UPDATE attempts SET outcome = ?, error = ?, ended_at = ? WHERE job_id = ? AND idx = ?"
                " AND owner = ? AND outcome IS NULL",
                (outcome, error, now, job_id, idx, owner),
            )
        return True

    def next_due(self, job_id: str) -> float | None:
        """When the next queued item of the job may start (None: nothing is queued)."""
        with self._connect() as db:
            row = db.execute(
                "SELECT MIN(not_before) FROM items WHERE job_id = ? AND state = 'queued'", (job_id,)
            ).fetchone()
        return row[0] if row and row[0] is not None else None

    # -- the lease ---------------------------------------------------------------------------------
    def lease(self) -> Lease:
        with self._connect() as db:
            row = db.execute("SELECT * FROM lease WHERE name = 'batch'").fetchone()
        return Lease(owner=row["owner"], pid=row["pid"], host=row["host"], role=row["role"], until=row["until"],
                     beat=row["beat"])  # fmt: skip

    def acquire(self, owner: str, role: str, lease_s: float) -> bool:
        """Take the lease when it is free, run out, or held by a process of this host that is gone.
        Items claimed by a former holder are released at once (their attempts are then 'interrupted')."""
        now = time.time()
        with self._write() as db:
            row = db.execute("SELECT * FROM lease WHERE name = 'batch'").fetchone()
            current = Lease(owner=row["owner"], pid=row["pid"], host=row["host"], role=row["role"],
                            until=row["until"], beat=row["beat"])  # fmt: skip
            if current.owner != owner and current.live(now):
                return False
            db.execute(
                "UPDATE lease SET owner = ?, pid = ?, host = ?, role = ?, until = ?, beat = ? WHERE name = 'batch'",
                (owner, os.getpid(), socket.gethostname(), role, now + lease_s, now),
            )
            db.execute(
                "UPDATE items SET lease_until = 0 WHERE state IN ('preparing', 'running') AND owner IS NOT ?",
                (owner,),
            )
        return True

    def renew(self, owner: str, lease_s: float) -> bool:
        """The heartbeat: extend the lease and this owner's claims; False when the lease is not ours."""
        now = time.time()
        with self._write() as db:
            held = db.execute(
                "UPDATE lease SET until = ?, beat = ? WHERE name = 'batch' AND owner = ?", (now + lease_s, now, owner)
            ).rowcount
            if held:
                db.execute(
                    "UPDATE items SET lease_until = ? WHERE owner = ? AND state IN ('preparing', 'running')",
                    (now + lease_s, owner),
                )
        return held == 1

    def release(self, owner: str) -> None:
        with self._write() as db:
            db.execute("UPDATE lease SET owner = NULL, until = 0 WHERE name = 'batch' AND owner = ?", (owner,))


def _job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        created_at=row["created_at"],
        kind=row["kind"],
        name=row["name"],
        model=row["model"],
        model_label=row["model_label"],
        model_path=row["model_path"],
        request=json.loads(row["request"]),
        options=json.loads(row["options"]),
        columns=json.loads(row["columns"]),
        input_key=row["input_key"],
        delimiter=row["delimiter"],
        skipped=json.loads(row["skipped"]),
        submitted_by=row["submitted_by"],
        state=row["state"],
        hold=row["hold"],
    )


def _item(row: sqlite3.Row) -> Item:
    data = dict(row)
    data["cells"] = json.loads(data["cells"])
    data["stages"] = json.loads(data["stages"]) if data["stages"] else {}
    data["result_ref"] = ResultRef.model_validate_json(data["result_ref"]) if data["result_ref"] else None
    data["from_store"] = None if data["from_store"] is None else bool(data["from_store"])
    return Item(**data)


def new_job_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
