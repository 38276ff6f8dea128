"""The batch worker: claims items of active jobs and works them, under the data dir's one lease.

One process at a time works batches for a data dir: the one that holds the lease in the job store
(core/jobs/store.py), renewed by a heartbeat every quarter of VCHAT_BATCH_LEASE_S. That process
hosts the model: the app's server (`ensure_background_worker`, a thread started once per process,
holding the lease while the app runs) or a headless `python -m core batch` (`BatchWorker.run_job`,
which gives the lease back when its job is done). A CLI that finds the app holding the lease submits
its job to the store and follows it, so the two never load two copies of the model. A lease that
stops beating (a killed process) is taken over after VCHAT_BATCH_LEASE_S, or at once when its
process is known to be gone (same host, no such pid).

How items run:
- on the local model (the process's one model, `HOST`): one item at a time, at batch priority
  (an interactive analysis goes first), while VCHAT_BATCH_PREFETCH next items are fetched,
  sanitized and their first round's frames decoded, so the model does not wait for media;
- on remote engines (Gemini, vLLM): VCHAT_BATCH_CONCURRENCY items at once (and the media of as many
  next ones, or VCHAT_BATCH_PREFETCH if more, readied meanwhile), at most VCHAT_BATCH_PER_MINUTE started a
  minute; a 429 that the engine's own retries could not get past slows every item of the job down
  (the next starts wait a backoff).
A transient failure (network, 429, 5xx, a timeout) is retried after VCHAT_BATCH_BACKOFF_S, doubling,
up to VCHAT_BATCH_RETRIES times; anything else fails the item with its one-line reason. A failure
that is the job's rather than the item's (no key, a refused key, no weights) holds the job with that
reason until someone resumes it.

A Gemini key typed in the app is kept in `KEYS`, in this process's memory only, for the job it was
given for: never in the job store, a log or a result. After a restart such a job is held ("no
Gemini API key") until the server has GEMINI_API_KEY or someone resumes it with a key.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from core.config import Settings
from core.errors import EXIT_BAD_INPUT, DownloadError, VChatError
from core.jobs.kinds import KindRun, get_kind
from core.jobs.store import Item, Job, JobStore, new_owner
from core.models.gemini.client import GeminiInputError, scrub

log = logging.getLogger("vchat.jobs")

FinishedFn = Callable[[Item, str, str | None], None]  # item, its new state, the error


class KeyRing:
    """Gemini keys typed in the app, by job id, in this process's memory only."""

    def __init__(self) -> None:
        self._keys: dict[str, str] = {}
        self._lock = threading.Lock()

    def remember(self, job_id: str, key: str | None) -> None:
        with self._lock:
            if key:
                self._keys[job_id] = key
            else:
                self._keys.pop(job_id, None)

    def get(self, job_id: str) -> str | None:
        with self._lock:
            return self._keys.get(job_id)

    def forget(self, job_id: str) -> None:
        self.remember(job_id, None)


KEYS = KeyRing()


def is_transient(exc: BaseException) -> bool:
    """Worth another try later: the network, a rate limit, a server error, a timeout."""
    if isinstance(exc, DownloadError):
        return True
    if isinstance(exc, VChatError):
        message = exc.message.lower()
        return exc.exit_code != EXIT_BAD_INPUT and "daily quota" not in message and "blocked" not in message
    return isinstance(exc, (OSError, TimeoutError))


def is_rate_limited(exc: BaseException) -> bool:
    return isinstance(exc, VChatError) and "429" in exc.message


def holds_the_job(exc: BaseException) -> bool:
    """A failure of the job's setup, not of the item: every other item would fail the same way."""
    return isinstance(exc, GeminiInputError) and "api key" in exc.message.lower()


def one_line(exc: BaseException) -> str:
    if isinstance(exc, VChatError):
        return exc.one_line()
    return f"Internal error ({type(exc).__name__}: {str(exc)[:200]}); the details are in the log."


class RateGate:
    """Starts at most `per_minute` a minute (0: no limit); `cool_down` pushes the next start back."""

    def __init__(self, per_minute: float) -> None:
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self.next_at = 0.0
        self._lock = threading.Lock()

    def wait(self, stop: threading.Event) -> bool:
        with self._lock:
            start = max(time.monotonic(), self.next_at)
            self.next_at = start + self.interval
        delay = start - time.monotonic()
        return not (delay > 0 and stop.wait(delay))

    def cool_down(self, seconds: float) -> None:
        with self._lock:
            self.next_at = max(self.next_at, time.monotonic() + seconds)


class OrderedGate:
    """`slots` holders at once; among the waiters, the earliest row goes first."""

    def __init__(self, slots: int) -> None:
        self.free = slots
        self._waiting: list[int] = []
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def slot(self, order: int) -> Iterator[None]:
        with self._cond:
            heapq.heappush(self._waiting, order)
            while self.free == 0 or self._waiting[0] != order:
                self._cond.wait(0.5)
            heapq.heappop(self._waiting)
            self.free -= 1
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self.free += 1
                self._cond.notify_all()


@dataclass
class StageClock:
    """Seconds spent in each stage of an item (the time until the next stage's first report)."""

    seconds: dict[str, float] = field(default_factory=dict)
    current: str | None = None
    since: float = 0.0

    def stage(self, stage: str, message: str = "", fraction: float | None = None) -> None:
        if stage == self.current:
            return
        self.close()
        self.current, self.since = stage, time.monotonic()

    def close(self) -> None:
        if self.current is not None:
            spent = time.monotonic() - self.since
            self.seconds[self.current] = round(self.seconds.get(self.current, 0.0) + spent, 3)
        self.current = None


class BatchWorker:
    def __init__(self, settings: Settings, role: str = "app", on_finished: FinishedFn | None = None) -> None:
        self.settings = settings
        self.store = JobStore(settings)
        self.role = role
        self.owner = new_owner(role)
        self.on_finished = on_finished
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.lost = threading.Event()
        self._beating: threading.Thread | None = None
        self._beat_stop = threading.Event()

    # -- the lease --------------------------------------------------------------------------------
    @property
    def lease_s(self) -> float:
        return self.settings.batch_lease_s

    def acquire(self) -> bool:
        if not self.store.acquire(self.owner, self.role, self.lease_s):
            return False
        self.lost.clear()
        self._beat_stop.clear()
        self._beating = threading.Thread(target=self._heartbeat, name="vchat-batch-heartbeat", daemon=True)
        self._beating.start()
        return True

    def release(self) -> None:
        self._beat_stop.set()
        if self._beating is not None:
            self._beating.join(timeout=5)
            self._beating = None
        self.store.release(self.owner)

    def _heartbeat(self) -> None:
        interval = max(self.lease_s / 4, 0.2)
        while not self._beat_stop.wait(interval):
            try:
                if not self.store.renew(self.owner, self.lease_s):
                    log.warning("batch worker %s lost its lease", self.owner)
                    self.lost.set()
                    return
            except Exception:  # a locked or vanished store: try again at the next beat
                log.warning("batch heartbeat failed", exc_info=True)

    # -- the loops --------------------------------------------------------------------------------
    def serve(self) -> None:
        """The app's loop: take the lease when it is free, then work every active job, until stopped."""
        holding = False
        try:
            while not self.stop.is_set():
                if not holding or self.lost.is_set():
                    holding = self.acquire()
                    if not holding:
                        self.stop.wait(min(max(self.lease_s / 3, 0.5), 5))
                        continue
                job = next((j for j in self.store.runnable_jobs() if not j.hold or KEYS.get(j.id)), None)
                if job is None:
                    self.wake.wait(1.0)
                    self.wake.clear()
                    continue
                self.work(job)
        finally:
            if holding:
                self.release()

    def run_job(self, job_id: str) -> bool:
        """The CLI's loop: work one job to its end under the lease; False when another process holds it."""
        if not self.acquire():
            return False
        try:
            while not self.stop.is_set() and not self.lost.is_set():
                job = self.store.job(job_id)
                if job is None or job.state != "active" or self.store.counts(job_id).open == 0:
                    break
                if not self.work(job):
                    break
        finally:
            self.release()
        return True

    def work(self, job: Job) -> bool:
        """Work a job until it has nothing left to start, is paused, cancelled or held; False when
        it is held (its setup failed: see the job's `hold`)."""
        kind = get_kind(job.kind)
        try:
            run = kind.start(job, self.settings, KEYS.get(job.id))
        except VChatError as exc:
            self.store.hold(job.id, self._scrub(job, exc.one_line()))
            return False
        except Exception as exc:
            log.exception("batch job %s could not start", job.id)
            self.store.hold(job.id, one_line(exc))
            return False
        if job.hold:
            self.store.hold(job.id, None)
        slots = 1 if run.local else self.settings.batch_concurrency
        # the next items' media readied while the slots work (remote: a whole round of slots ahead)
        ahead = self.settings.batch_prefetch if run.local else max(self.settings.batch_prefetch, slots)
        threads = slots + ahead
        gate = OrderedGate(slots)
        rate = RateGate(0 if run.local else self.settings.batch_per_minute)
        inflight: dict[Future[None], Item] = {}
        with ThreadPoolExecutor(threads, thread_name_prefix=f"vchat-batch-{job.id[-6:]}") as pool:
            while not self.lost.is_set():
                current = self.store.job(job.id)
                starting = (
                    not self.stop.is_set() and current is not None and current.state == "active" and not current.hold
                )
                while starting and len(inflight) < threads:
                    item = self.store.claim(job.id, self.owner, self.lease_s)
                    if item is None:
                        break
                    inflight[pool.submit(self._process, job, run, item, gate, rate)] = item
                if not inflight:
                    due = self.store.next_due(job.id) if starting else None
                    if due is None:
                        break
                    self.stop.wait(min(max(due - time.time(), 0.05), 1.0))
                    continue
                done, _ = wait(inflight, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    inflight.pop(future)
        current = self.store.job(job.id)
        return current is not None and not current.hold

    # -- one item ---------------------------------------------------------------------------------
    def _process(self, job: Job, run: KindRun, item: Item, gate: OrderedGate, rate: RateGate) -> None:
        clock = StageClock()
        started = time.monotonic()
        try:
            asset = run.prepare(item, clock.stage)
            clock.stage("waiting")
            with gate.slot(item.idx):
                if not rate.wait(self.stop):
                    raise InterruptedError("the worker is stopping")
                self.store.mark_running(job.id, item.idx, self.owner)
                outcome = run.run(item, asset, clock.stage, lambda _state: None)
            clock.close()
            seconds = round(time.monotonic() - started, 3)
            written = self.store.finish(
                job.id, item.idx, self.owner, state="done", result_ref=outcome.ref, asset=outcome.asset,
                from_store=outcome.from_store, seconds=seconds, stages=clock.seconds,
            )  # fmt: skip
            if written:
                self._finished(item, "done", None)
        except Exception as exc:
            clock.close()
            self._failed(job, item, exc, round(time.monotonic() - started, 3), clock.seconds, rate)

    def _failed(
        self, job: Job, item: Item, exc: BaseException, seconds: float, stages: dict[str, float], rate: RateGate
    ) -> None:
        if not isinstance(exc, VChatError):
            log.warning("batch item %s/%d failed", job.id, item.idx, exc_info=exc)
        message = self._scrub(job, one_line(exc))
        backoff = self.settings.batch_backoff_s * 2 ** max(item.attempts - 1, 0)
        if isinstance(exc, InterruptedError):  # stopping: the next worker takes the item up again
            self.store.finish(job.id, item.idx, self.owner, state="queued", error=None)
            return
        if holds_the_job(exc):
            self.store.finish(job.id, item.idx, self.owner, state="queued", error=message)
            self.store.hold(job.id, message)
            return
        if is_rate_limited(exc):  # the engine's own retries did not get past it: every start waits
            rate.cool_down(backoff)
        retry = is_transient(exc) and item.attempts <= self.settings.batch_retries
        state = "queued" if retry else "failed"
        written = self.store.finish(
            job.id, item.idx, self.owner, state=state, error=message, seconds=seconds, stages=stages,
            not_before=time.time() + backoff if retry else 0.0,
        )  # fmt: skip
        if written:
            self._finished(item, "retry" if retry else "failed", message)

    def _finished(self, item: Item, state: str, error: str | None) -> None:
        if self.on_finished is not None:
            with contextlib.suppress(Exception):
                self.on_finished(item, state, error)

    @staticmethod
    def _scrub(job: Job, text: str) -> str:
        return scrub(text, KEYS.get(job.id))


# -- the app's worker: one thread per process and data dir -------------------------------------------
_background: dict[str, tuple[BatchWorker, threading.Thread]] = {}
_background_lock = threading.Lock()


def ensure_background_worker(settings: Settings) -> BatchWorker:
    """The app's worker for this data dir, started on the first call in this process: it takes the
    lease as soon as it is free and works every active job, including those left unfinished by a
    former run of the app."""
    key = str(settings.data_dir)
    with _background_lock:
        running = _background.get(key)
        if running is not None and running[1].is_alive():
            return running[0]
        worker = BatchWorker(settings, role="app")
        thread = threading.Thread(target=_serve, args=(worker,), name="vchat-batch-worker", daemon=True)
        _background[key] = (worker, thread)
        thread.start()
        return worker


def resume_unfinished_jobs(settings: Settings) -> BatchWorker | None:
    """At the app's start: the background worker, when the job store holds unfinished active jobs
    (left by a former run of the app, a stopped server or a killed CLI batch); else nothing starts."""
    if not (settings.data_dir / "jobs.sqlite").is_file():
        return None
    if not JobStore(settings).runnable_jobs():
        return None
    return ensure_background_worker(settings)


def _serve(worker: BatchWorker) -> None:
    try:
        worker.serve()
    except Exception:
        log.exception("the batch worker stopped")


def background_worker(settings: Settings) -> BatchWorker | None:
    running = _background.get(str(settings.data_dir))
    return running[0] if running is not None and running[1].is_alive() else None


def nudge(settings: Settings) -> None:
    """Tell this process's worker that there is new work (it looks every second anyway)."""
    worker = background_worker(settings)
    if worker is not None:
        worker.wake.set()


def stop_background_workers(timeout_s: float = 60) -> None:
    """Stop every app worker of this process (tests; a server shutting down lets them finish)."""
    with _background_lock:
        running = list(_background.values())
        _background.clear()
    for worker, _ in running:
        worker.stop.set()
        worker.wake.set()
    for _, thread in running:
        thread.join(timeout_s)
