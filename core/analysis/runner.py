"""One analysis, start to finish: the single flow the app, the CLI and batch jobs call.

    check the flow (weights, key, adapter) -> prepare the media (progress by stage) -> look the
    result up in the store -> run the flow (it takes the local model's turn where it needs it) -> store

The Gemini key, when the user typed one, travels beside the request to the flow's engines only:
it is never part of a request, a key or a stored file (see core/analysis/store.py).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from core.analysis.flows import Flow, capabilities, flow_for
from core.analysis.store import ResultStore, StoredResult
from core.config import Settings
from core.errors import InputError
from core.media.frames import FrameSample
from core.media.pipeline import MediaAsset, prepare_media
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
        return json.dumps(self.data, indent=2, ensure_ascii=False)


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
    flow = flow_for(model, settings, model_path, gemini_api_key)
    flow.check(request)  # missing weights, unknown adapter or no key: say so before any download
    identity = flow.identity(request)
    store = ResultStore(settings)
    if gemini_reads_url:
        return _run_by_url(source, settings, flow, identity, request, store, rerun, stage, on_text)

    asset = prepare_media(source, settings, filename=filename, progress=stage)
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


def _run_by_url(
    source: str | Path | BinaryIO,
    settings: Settings,
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
    url = source.strip() if isinstance(source, str) else ""
    run_url = getattr(flow, "run_url", None)
    if not capabilities(flow).reads_urls or run_url is None or not is_youtube_url(url):
        raise InputError(
            "Only Gemini can read a video from its URL, and only from a public YouTube URL.",
            "Leave the video to be downloaded instead (untick 'Gemini reads the YouTube video itself', "
            "or drop --no-download).",
        )
    if not settings.gemini_allow_youtube_urls:
        raise InputError(
            "Handing YouTube URLs to Gemini is turned off on this server (VCHAT_GEMINI_ALLOW_YOUTUBE_URLS=0)."
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
