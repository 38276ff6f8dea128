"""The model host: the process's ONE local model, and the queue of those who use it.

Everything that touches the local model goes through `HOST`:
- `turn(priority)` takes the model in turn. Interactive requests (the app's sessions, the CLI) go
  before batch items; within each priority, first come first served. A waiter is told, at every
  poll, how long it has waited and how many wait with it (and can be stopped there: a Streamlit
  script is stopped by raising from that callback).
- `model(...)` gives the loaded model, loading it (or replacing another checkpoint) first; only
  inside a turn.
- `unload()` takes its turn like everyone else, so it waits for a running analysis.
- `loaded` / `status()` describe what is held, as data (the checkpoint's path and quantization).

Two processes cannot share one loaded model: each would hold its own copy (16.6 GB for the 7B
model). So the batch worker runs inside the process that hosts the model: the app's server process
(or a headless `python -m core batch`, which then is that process). See the README's Architecture.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from core.config import Settings
from core.models.local.loading import LoadedModel, ModelSource, load_model, resolve_source

Priority = Literal["interactive", "batch"]
_RANK: dict[Priority, int] = {"interactive": 0, "batch": 1}


@dataclass(frozen=True)
class QueueState:
    waited_s: float
    waiting: int  # turns waiting for the model, this one included


QueuedFn = Callable[[QueueState], None]


@dataclass(frozen=True)
class LoadedKey:
    """Which checkpoint is loaded, and how: compared as data."""

    path: str
    quantization: str

    @classmethod
    def of(cls, source: ModelSource, settings: Settings) -> LoadedKey:
        return cls(str(source.path), settings.quantization)


class ModelHost:
    def __init__(self, poll_s: float = 0.5) -> None:
        self.poll_s = poll_s
        self._cond = threading.Condition()
        self._queue: list[tuple[int, int]] = []  # (priority rank, ticket), a heap
        self._tickets = itertools.count()
        self._holder: int | None = None
        self._loaded: LoadedModel | None = None
        self._key: LoadedKey | None = None

    # -- the queue ------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._holder is not None

    @property
    def waiting(self) -> int:
        return len(self._queue)

    @contextmanager
    def turn(self, priority: Priority = "interactive", on_queued: QueuedFn | None = None) -> Iterator[float]:
        """Hold the model for the body; yields the seconds spent waiting for it."""
        started = time.monotonic()
        entry = (_RANK[priority], next(self._tickets))
        with self._cond:
            heapq.heappush(self._queue, entry)
            try:
                while self._holder is not None or self._queue[0] != entry:
                    if on_queued is not None:
                        self._cond.release()
                        try:
                            on_queued(QueueState(round(time.monotonic() - started, 1), len(self._queue)))
                        finally:
                            self._cond.acquire()
                    self._cond.wait(timeout=self.poll_s)
            except BaseException:
                self._queue.remove(entry)
                heapq.heapify(self._queue)
                self._cond.notify_all()
                raise
            heapq.heappop(self._queue)
            self._holder = entry[1]
        try:
            yield time.monotonic() - started
        finally:
            with self._cond:
                self._holder = None
                self._cond.notify_all()

    # -- the model --------------------------------------------------------------------------------
    @property
    def loaded(self) -> LoadedModel | None:
        """The model held now, if any (no lock: a page asking while a load runs gets None at once)."""
        return self._loaded

    @property
    def loaded_key(self) -> LoadedKey | None:
        return self._key

    def is_loaded(self, settings: Settings, source: ModelSource) -> bool:
        return self._key == LoadedKey.of(source, settings)

    def model(self, settings: Settings, source: ModelSource | None = None) -> LoadedModel:
        """The loaded model for `source` (default: where the settings point), loading it first when
        another checkpoint, or none, is held. Call inside a turn: loading replaces what others use."""
        source = source or resolve_source(settings)
        key = LoadedKey.of(source, settings)
        if self._loaded is not None and self._key == key:
            return self._loaded
        self._drop()
        loaded = load_model(settings, source)
        self._loaded, self._key = loaded, key
        return loaded

    def load(
        self, settings: Settings, source: ModelSource | None = None, on_queued: QueuedFn | None = None
    ) -> LoadedModel:
        """Load the model in turn (after a running analysis), as the Models page's button does."""
        with self.turn("interactive", on_queued):
            return self.model(settings, source)

    def unload(self, on_queued: QueuedFn | None = None) -> bool:
        """Drop the model in turn (after a running analysis); True when one was held."""
        with self.turn("interactive", on_queued):
            held = self._loaded is not None
            self._drop()
            return held

    def discard(self) -> None:
        """Drop the model now, from inside a turn (a model left half-changed must be loaded again)."""
        self._drop()

    def _drop(self) -> None:
        self._loaded, self._key = None, None
        import gc

        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass


HOST = ModelHost()
