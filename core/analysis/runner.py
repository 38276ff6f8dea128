"""One analysis, start to finish: the single flow the app (and later the CLI and jobs) call.

    check the backend -> prepare the media (progress by stage) -> look the result up in the
    store -> wait for the local model's turn -> load it -> analyze, streaming -> store

Results are stored under `<data dir>/results/<media sha256>/<key>.json`, where the key
hashes everything the answer depends on: the bytes, the sanitize settings, the backend,
the model (path, quantization, adapter and its config hash, Gemini model name) and the
request. The same question about the same video with the same settings is served from
there at once, unless the caller asks for a re-run. No API key is ever part of a key or a
stored file: the key travels beside the request, to `get_backend` only.

Local-model analyses take turns on one process-wide queue, so a second browser session
waits (and is told, through `on_queued`) instead of loading a second copy of the model.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from core.config import Settings
from core.errors import InputError
from core.media.frames import FrameSample
from core.media.pipeline import MediaAsset, prepare_media
from core.media.storage import atomic_write_json, read_json
from core.models.base import AnalysisRequest, AnalysisResult, RoundRecord, StreamFn
from core.models.choices import GEMINI_BACKENDS, LOCAL_MODEL_BACKENDS
from core.models.local.adapters import get_adapter
from core.models.local.loading import LoadedModel, current_local_model, get_local_model, resolve_source
from core.models.registry import get_backend

# (stage, message, fraction done or None). Stages: fetch, download, provenance, probe,
# sanitize, ready, remote, frames, queue, model, analyze, round, store, done.
StageFn = Callable[[str, str, float | None], None]


@dataclass
class QueueState:
    waited_s: float
    waiting: int  # sessions waiting for the model, this one included


QueuedFn = Callable[[QueueState], None]


class ModelQueue:
    """A lock with a waiting count: who holds the local model, and who waits for it.

    Waiting polls, and calls `on_queued` at every poll, so the caller can show that it is
    queued (and a Streamlit script can be stopped while it waits).
    """

    def __init__(self, poll_s: float = 0.5) -> None:
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._waiting = 0
        self.poll_s = poll_s

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    @property
    def waiting(self) -> int:
        return self._waiting

    @contextmanager
    def turn(self, on_queued: QueuedFn | None = None) -> Iterator[float]:
        """Hold the model; yields the seconds spent waiting for it."""
        started = time.monotonic()
        if not self._lock.acquire(blocking=False):
            with self._count_lock:
                self._waiting += 1
            try:
                while True:
                    if on_queued:
                        on_queued(QueueState(round(time.monotonic() - started, 1), self._waiting))
                    if self._lock.acquire(timeout=self.poll_s):
                        break
            finally:
                with self._count_lock:
                    self._waiting -= 1
        try:
            yield time.monotonic() - started
        finally:
            self._lock.release()


LOCAL_MODEL_QUEUE = ModelQueue()


@dataclass
class AnalysisRun:
    result: AnalysisResult
    data: dict[str, Any]  # the result as stored: every field, those of a backend's own result type too
    asset: MediaAsset | None  # None when Gemini read the video from its URL (nothing downloaded)
    key: str
    path: Path
    from_store: bool
    stored_at: str
    source_url: str | None = None  # the URL Gemini read, when asset is None

    @property
    def result_json(self) -> str:
        return json.dumps(self.data, indent=2, ensure_ascii=False)


def _noop_stage(stage: str, message: str, fraction: float | None) -> None:
    pass


def model_identity(
    backend_name: str, settings: Settings, request: AnalysisRequest, model_path: Path | None = None
) -> dict[str, Any]:
    """Which model would answer, exactly (without loading it): part of the result key."""
    identity: dict[str, Any] = {"backend": backend_name}
    if backend_name in LOCAL_MODEL_BACKENDS:
        source = resolve_source(settings, model_path)
        identity.update(
            model_path=str(source.path),
            quantization=settings.quantization,
            max_visual_tokens=settings.max_visual_tokens,
        )
        if request.adapter:
            identity.update(
                adapter=request.adapter, adapter_config_hash=get_adapter(settings, request.adapter).config_hash
            )
    if backend_name in GEMINI_BACKENDS:
        identity["gemini_model"] = request.gemini_model or settings.gemini_model
    return identity


def result_key(asset: MediaAsset, identity: dict[str, Any], request: AnalysisRequest) -> str:
    blob = {
        "media": asset.sha256,
        "sanitized": asset.sanitized.settings_key,
        "model": identity,
        "request": request.model_dump(mode="json"),
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()


def results_dir(settings: Settings) -> Path:
    return settings.data_dir / "results"


def result_path(settings: Settings, media_sha256: str, key: str) -> Path:
    return results_dir(settings) / media_sha256 / f"{key}.json"


def read_stored(path: Path) -> tuple[AnalysisResult, dict[str, Any], str] | None:
    stored = read_json(path)
    if not isinstance(stored, dict) or not isinstance(stored.get("result"), dict):
        return None
    try:
        result = AnalysisResult.model_validate(stored["result"])
    except ValueError:  # written by an older version with another shape: analyse again
        return None
    return result, stored["result"], str(stored.get("stored_at", ""))


def load_local_model(
    settings: Settings, model_path: Path | None = None, on_queued: QueuedFn | None = None
) -> LoadedModel:
    """Load (or get) the process's local model, in turn with running analyses."""
    with LOCAL_MODEL_QUEUE.turn(on_queued):
        return get_local_model(settings, model_path)


def run_analysis(
    source: str | Path | BinaryIO,
    settings: Settings,
    backend_name: str,
    request: AnalysisRequest,
    *,
    filename: str | None = None,
    model_path: Path | None = None,
    gemini_api_key: str | None = None,
    rerun: bool = False,
    gemini_reads_url: bool = False,
    on_stage: StageFn | None = None,
    on_text: StreamFn | None = None,
    on_queued: QueuedFn | None = None,
) -> AnalysisRun:
    """Analyse `source` with the backend called `backend_name`; serve a stored result when
    there is one (unless `rerun`). Raises VChatError for anything the user can act on."""
    stage = on_stage or _noop_stage
    backend = get_backend(backend_name, settings, model_path, gemini_api_key=gemini_api_key)
    backend.check(request)  # missing weights, unknown adapter or no key: say so before any download
    identity = model_identity(backend_name, settings, request, model_path)
    if gemini_reads_url:
        return _run_by_url(source, settings, backend, identity, request, rerun, stage, on_text)

    def media_progress(step: str, fraction: float | None, message: str) -> None:
        stage(step, message, fraction)

    asset = prepare_media(source, settings, filename=filename, progress=media_progress)
    key = result_key(asset, identity, request)
    path = result_path(settings, asset.sha256, key)
    stored = None if rerun else read_stored(path)
    if stored is not None:
        result, data, stored_at = stored
        stage("done", "served from the stored result", 1.0)
        return AnalysisRun(result, data, asset, key, path, True, stored_at)

    prepare = getattr(backend, "prepare", None)  # remote work a backend does before its local turn
    if callable(prepare):
        stage("remote", "asking Gemini (digest and its own answer) before the local model's turn", None)
        prepare(asset, request)
    if backend_name in LOCAL_MODEL_BACKENDS:
        index = asset.frames(settings).index
        stage("frames", f"{index.count} frames, {index.duration_s:.1f} s at {index.fps:.3g} fps", None)

        def queued(state: QueueState) -> None:
            stage("queue", _queued_message(state), None)
            if on_queued:
                on_queued(state)

        with LOCAL_MODEL_QUEUE.turn(queued):
            held = current_local_model()
            if held is None or not str(held.info.source).endswith(f": {identity['model_path']}"):
                stage("model", "loading the local model (once per process; the first time takes a while)", None)
            loaded = get_local_model(settings, model_path)
            stage("model", f"{loaded.info.name} ready on {loaded.info.device} ({loaded.info.dtype})", None)
            result = _analyze(backend, asset, request, stage, on_text)
    else:
        result = _analyze(backend, asset, request, stage, on_text)
    if result.media_sha256 is None:
        result.media_sha256 = asset.sha256
    data, stored_at = _store(path, key, identity, result, stage)
    return AnalysisRun(result, data, asset, key, path, False, stored_at)


def _store(
    path: Path, key: str, identity: dict[str, Any], result: AnalysisResult, stage: StageFn, **extra: str
) -> tuple[dict[str, Any], str]:
    """Write the result where the next identical request finds it; returns (data, stored_at)."""
    stored_at = datetime.now(UTC).isoformat(timespec="seconds")
    data = result.model_dump(mode="json")
    stage("store", "storing the result", None)
    atomic_write_json(path, {"key": key, "stored_at": stored_at, "model_identity": identity, **extra, "result": data})
    stage("done", f"answered in {result.seconds:.1f} s", 1.0)
    return data, stored_at


def _run_by_url(
    source: str | Path | BinaryIO,
    settings: Settings,
    backend: Any,
    identity: dict[str, Any],
    request: AnalysisRequest,
    rerun: bool,
    stage: StageFn,
    on_text: StreamFn | None,
) -> AnalysisRun:
    """A public YouTube URL handed to Gemini as it is: no download, so no provenance and no frames.
    Stored by (URL, model, request) under results/by-url/."""
    from core.models.gemini.video import is_youtube_url

    analyze_url = getattr(backend, "analyze_youtube", None)
    url = source.strip() if isinstance(source, str) else ""
    if analyze_url is None or not is_youtube_url(url):
        raise InputError(
            "Only Gemini can read a video from its URL, and only from a public YouTube URL.",
            "Untick 'Gemini reads the YouTube video itself' to download the video instead.",
        )
    if not settings.gemini_allow_youtube_urls:
        raise InputError(
            "Handing YouTube URLs to Gemini is turned off on this server (VCHAT_GEMINI_ALLOW_YOUTUBE_URLS=0)."
        )
    blob = {"url": url, "model": identity, "request": request.model_dump(mode="json")}
    key = hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()
    path = results_dir(settings) / "by-url" / f"{key}.json"
    stored = None if rerun else read_stored(path)
    if stored is not None:
        result, data, stored_at = stored
        stage("done", "served from the stored result", 1.0)
        return AnalysisRun(result, data, None, key, path, True, stored_at, source_url=url)
    stage("remote", "Gemini is reading the video from YouTube (nothing is downloaded here)", None)
    result = analyze_url(url, request, on_text)
    data, stored_at = _store(path, key, identity, result, stage, url=url)
    return AnalysisRun(result, data, None, key, path, False, stored_at, source_url=url)


def _queued_message(state: QueueState) -> str:
    others = state.waiting - 1
    behind = f", {others} other session{'s' if others != 1 else ''} waiting too" if others > 0 else ""
    return f"queued: another analysis is using the local model ({state.waited_s:.0f} s so far{behind})"


def _analyze(
    backend: Any, asset: MediaAsset, request: AnalysisRequest, stage: StageFn, on_text: StreamFn | None
) -> AnalysisResult:
    current = {"round": 0}

    def stream(number: int, text: str) -> None:
        if number != current["round"]:
            current["round"] = number
            stage("round", f"round {number} of {request.rounds}", (number - 1) / request.rounds)
        if on_text:
            on_text(number, text)

    stage("analyze", f"asking {backend.name}", None)
    return backend.analyze(asset, request, stream)


def round_frames(asset: MediaAsset, settings: Settings, record: RoundRecord, max_pixels: int) -> FrameSample:
    """The frames a round saw (from memory when the analysis just ran), for a strip of thumbnails."""
    if not record.frame_indices:
        raise InputError(f"Round {record.round} recorded no frames.")
    source = asset.frames(settings)
    return source.sample_uniform(len(record.frame_indices), max_pixels=max_pixels, pool=record.frame_indices)
