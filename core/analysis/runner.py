"""One analysis, start to finish: the single flow the app, the CLI and batch jobs call.

    check the flow (weights, key, adapter) -> prepare the media (progress by stage) -> look the
    result up in the store -> run the flow (it takes the local model's turn where it needs it) -> store

The Gemini key, when the user typed one, travels beside the request to the flow's engines only:
it is never part of a request, a key or a stored file (see core/analysis/store.py).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from core.analysis.flows import Flow, capabilities, flow_for
from core.analysis.store import ResultStore, StoredResult
from core.config import Settings
from core.errors import InputError
from core.media.fetch import looks_like_url
from core.media.frames import FrameSample
from core.media.pipeline import MediaAsset, finish_media, inspect_media
from core.media.urlguard import UrlPolicy, check_url
from core.models.base import AnalysisRequest, AnalysisResult, RoundRecord, StreamFn
from core.models.gemini.video import is_youtube_url
from core.models.local.host import HOST, Priority, QueuedFn, QueueState
from core.progress import ProgressFn, no_progress


@dataclass
class AnalysisRun:
    result: AnalysisResult
    data: dict[str, Any]  # the result as stored: every field, those of a flow's own result type too
    asset: MediaAsset | None  # None when a remote engine read the video from its URL (nothing downloaded)
    key: str
    path: Path
    from_store: bool
    stored_at: str
    source_url: str | None = None  # the URL the engine read, when asset is None

    @classmethod
    def of(cls, stored: StoredResult, asset: MediaAsset | None, from_store: bool) -> AnalysisRun:
        return cls(
            stored.result, stored.data, asset, stored.ref.key, stored.path, from_store, stored.stored_at, stored.url
        )

    @property
    def result_json(self) -> str:
        """The JSON download: the result with its source, provenance, probe and sanitize facts (no key)."""
        from core.analysis.export import export_record

        return json.dumps(export_record(self), indent=2, ensure_ascii=False)


def queued_message(state: QueueState) -> str:
    others = state.waiting - 1
    behind = f", {others} other{'s' if others != 1 else ''} waiting too" if others > 0 else ""
    return f"another analysis is using the local model ({state.waited_s:.0f} s so far{behind})"


def model_turn(priority: Priority, stage: ProgressFn, on_queued: QueuedFn | None):  # type: ignore[no-untyped-def]
    """A TurnFn for flows: the host's turn, reporting the wait as the "queue" stage."""

    def queued(state: QueueState) -> None:
        stage("queue", queued_message(state), None)
        if on_queued:
            on_queued(state)

    @contextlib.contextmanager
    def turn() -> Iterator[float]:
        with HOST.turn(priority, queued) as waited:
            yield waited

    return turn


def run_analysis(
    source: str | Path | BinaryIO,
    settings: Settings,
    model: str,
    request: AnalysisRequest,
    *,
    filename: str | None = None,
    model_path: Path | None = None,
    gemini_api_key: str | None = None,
    rerun: bool = False,
    gemini_reads_url: bool = False,
    on_stage: ProgressFn | None = None,
    on_text: StreamFn | None = None,
    on_queued: QueuedFn | None = None,
    priority: Priority = "interactive",
) -> AnalysisRun:
    """Analyse `source` with the model called `model`; serve a stored result when there is one
    (unless `rerun`). Raises VChatError for anything the user can act on."""
    stage = on_stage or no_progress
    if gemini_reads_url:  # the URL itself goes to the engine: nothing is downloaded
        url = _readable_url(source, settings)
        flow = flow_for(model, settings, model_path, gemini_api_key)
        flow.check(request)
        identity = flow.identity(request)
        return _run_by_url(url, flow, identity, request, ResultStore(settings), rerun, stage, on_text)
    flow = flow_for(model, settings, model_path, gemini_api_key)
    asset = checked_media(source, settings, lambda: flow.check(request), filename=filename, progress=stage)
    return analyze_asset(asset, settings, flow, request, rerun=rerun, stage=stage, on_text=on_text,
                         on_queued=on_queued, priority=priority)  # fmt: skip


def checked_media(
    source: str | Path | BinaryIO,
    settings: Settings,
    check: Callable[[], None],
    filename: str | None = None,
    progress: ProgressFn | None = None,
) -> MediaAsset:
    """The media of `source`, ready for a model, checked in the order a person can act on: the input
    first (a refused URL, a file that is not a video), then `check` (the engines: weights, key,
    adapter), then the slow steps (download, sanitize)."""
    stage = progress or no_progress
    is_url = isinstance(source, str | Path) and looks_like_url(str(source))
    if is_url:
        check_url(str(source), UrlPolicy.from_settings(settings))
        check()
        inspected = inspect_media(source, settings, filename=filename, progress=stage)
    else:
        inspected = inspect_media(source, settings, filename=filename, progress=stage)
        check()
    return finish_media(inspected, settings, progress=stage)


def analyze_asset(
    asset: MediaAsset,
    settings: Settings,
    flow: Flow,
    request: AnalysisRequest,
    *,
    rerun: bool = False,
    stage: ProgressFn = no_progress,
    on_text: StreamFn | None = None,
    on_queued: QueuedFn | None = None,
    priority: Priority = "interactive",
) -> AnalysisRun:
    """Answer `request` about prepared media with `flow` (checked by the caller): the stored result
    when there is one (unless `rerun`), else the flow's answer, stored."""
    identity = flow.identity(request)
    store = ResultStore(settings)
    ref = store.media_ref(asset, identity, request)
    stored = None if rerun else store.get(ref)
    if stored is not None:
        stage("done", "served from the stored result", 1.0)
        return AnalysisRun.of(stored, asset, from_store=True)
    turn = model_turn(priority, stage, on_queued)
    result = flow.run(asset, request, stage, on_text, turn)
    if result.media_sha256 is None:
        result.media_sha256 = asset.sha256
    stage("store", "storing the result", None)
    stored = store.put(ref, identity, result)
    stage("done", f"answered in {result.seconds:.1f} s", 1.0)
    return AnalysisRun.of(stored, asset, from_store=False)


def _readable_url(source: str | Path | BinaryIO, settings: Settings) -> str:
    """The public YouTube URL an engine is to read itself, or InputError."""
    url = source.strip() if isinstance(source, str) else ""
    if not is_youtube_url(url):
        raise InputError(
            "Only Gemini can read a video from its URL, and only from a public YouTube URL.",
            "Leave the video to be downloaded instead (untick 'Gemini reads the YouTube video itself', "
            "or drop --no-download).",
        )
    if not settings.gemini_allow_youtube_urls:
        raise InputError(
            "Handing YouTube URLs to Gemini is turned off on this server (VCHAT_GEMINI_ALLOW_YOUTUBE_URLS=0)."
        )
    return url


def _run_by_url(
    url: str,
    flow: Flow,
    identity: dict[str, Any],
    request: AnalysisRequest,
    store: ResultStore,
    rerun: bool,
    stage: ProgressFn,
    on_text: StreamFn | None,
) -> AnalysisRun:
    """A public YouTube URL handed to an engine that reads URLs: no download, so no provenance and
    no frames. Stored by (URL, model, request) under results/by-url/."""
    run_url = getattr(flow, "run_url", None)
    if not capabilities(flow).reads_urls or run_url is None:
        raise InputError(
            "Only Gemini can read a video from its URL, and only from a public YouTube URL.",
            "Leave the video to be downloaded instead (untick 'Gemini reads the YouTube video itself', "
            "or drop --no-download).",
        )
    ref = store.url_ref(url, identity, request)
    stored = None if rerun else store.get(ref)
    if stored is not None:
        stage("done", "served from the stored result", 1.0)
        return AnalysisRun.of(stored, None, from_store=True)
    result = run_url(url, request, stage, on_text)
    stage("store", "storing the result", None)
    stored = store.put(ref, identity, result, url=url)
    stage("done", f"answered in {result.seconds:.1f} s", 1.0)
    return AnalysisRun.of(stored, None, from_store=False)


def round_frames(asset: MediaAsset, settings: Settings, record: RoundRecord, max_pixels: int) -> FrameSample:
    """The frames a round saw (from memory when the analysis just ran), for a strip of thumbnails."""
    if not record.frame_indices:
        raise InputError(f"Round {record.round} recorded no frames.")
    return asset.frames(settings).sample_indices(record.frame_indices, max_pixels=max_pixels)
