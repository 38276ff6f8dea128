"""Job kinds: what a batch does with each row, in one registry (`KINDS`).

- `analyze`: one question for all rows, or the row's own `question` cell; the answer.
- `labels`: a label schema (core/jobs/labels.py) asked of every video; one column per label.
- `factcheck`: the fact-check flow (core/analysis/factcheck), imported when a fact-check job runs;
  the suggested rating and each check's band.

A kind builds a `KindRun` for a job (its flow checked once: a missing key or weights hold the job
instead of failing every row), which readies one item's media (`prepare`, run ahead of the model
for the local model) and answers it (`run`) through the same functions the app and the CLI use
(`checked_media` and `analyze_asset` from core/analysis/runner.py, or `run_factcheck`); and it turns
a finished item's stored result into output cells (`values`) and a JSON record (`record`).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from core.analysis.flows import Flow, capabilities, flow_for
from core.analysis.runner import AnalysisRun, analyze_asset, checked_media
from core.analysis.store import ResultRef as AnalysisRef
from core.analysis.store import ResultStore, StoredResult
from core.config import Settings
from core.errors import InputError
from core.jobs.labels import LabelSchema
from core.jobs.store import Item, Job, ResultRef
from core.media.pipeline import MediaAsset
from core.models.base import AnalysisRequest
from core.models.local.host import QueuedFn
from core.progress import ProgressFn

log = logging.getLogger("vchat.jobs")


@dataclass
class Outcome:
    """What a finished item keeps: where its result is, the media's record, whether it was stored before."""

    ref: ResultRef
    asset: str | None
    from_store: bool


class KindRun(Protocol):
    """One job's work, set up once per pickup by the worker."""

    local: bool  # runs on this process's one local model (one item at a time, media readied ahead)

    def prepare(self, item: Item, stage: ProgressFn) -> MediaAsset: ...

    def run(self, item: Item, asset: MediaAsset, stage: ProgressFn, on_queued: QueuedFn) -> Outcome: ...


class JobKind(Protocol):
    name: str
    title: str
    help: str

    def start(self, job: Job, settings: Settings, api_key: str | None) -> KindRun:
        """The job's run, checked (weights, key, adapter): VChatError holds the job."""
        ...

    def columns(self, job: Job) -> list[str]:
        """The result columns this kind adds to each output row (before status, error...)."""
        ...

    def values(self, job: Job, item: Item, settings: Settings) -> dict[str, str]:
        """A done item's result columns, read from its stored result."""
        ...

    def record(self, job: Job, item: Item, settings: Settings) -> dict[str, Any] | None:
        """A done item's full result as JSON (the JSON Lines download)."""
        ...


# -- reading stored results (results are immutable per key: kept in memory once read) --------------
_cache: OrderedDict[tuple[str, int], Any] = OrderedDict()
_cache_lock = threading.Lock()
CACHE_ENTRIES = 4096


def _cached(path: Path, load: Any) -> Any:
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return None
    key = (str(path), stamp)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    value = load()
    if value is not None:
        with _cache_lock:
            _cache[key] = value
            while len(_cache) > CACHE_ENTRIES:
                _cache.popitem(last=False)
    return value


def stored_result(settings: Settings, ref: ResultRef) -> StoredResult | None:
    """The stored analysis an item refers to (None: it is gone from the result store)."""
    store = ResultStore(settings)
    analysis_ref = AnalysisRef(ref.folder, ref.key)
    return _cached(store.path(analysis_ref), lambda: store.get(analysis_ref))


def stored_run(settings: Settings, item: Item) -> AnalysisRun | None:
    """A done item's result as the Analyze view shows it (with its media when it was downloaded)."""
    if item.result_ref is None or item.result_ref.store != "results":
        return None
    stored = stored_result(settings, item.result_ref)
    if stored is None:
        return None
    asset = MediaAsset.model_validate_json(item.asset) if item.asset else None
    return AnalysisRun.of(stored, asset, from_store=True)


# -- analyze ----------------------------------------------------------------------------------------
def job_request(job: Job, question: str) -> AnalysisRequest:
    return AnalysisRequest(**{**job.request, "question": question})


class AnalyzeRun:
    def __init__(self, kind: AnalyzeKind, job: Job, settings: Settings, api_key: str | None) -> None:
        self.kind, self.job, self.settings = kind, job, settings
        model_path = Path(job.model_path) if job.model_path else None
        self.flow: Flow = flow_for(job.model, settings, model_path, api_key)
        self.flow.check(job_request(job, kind.question(job, None)))
        self.local = capabilities(self.flow).uses_local_host

    def prepare(self, item: Item, stage: ProgressFn) -> MediaAsset:
        asset = checked_media(item.url, self.settings, lambda: None, progress=stage)
        if self.local:
            self._decode_first_round(asset, job_request(self.job, self.kind.question(self.job, item)), stage)
        return asset

    def _decode_first_round(self, asset: MediaAsset, request: AnalysisRequest, stage: ProgressFn) -> None:
        """Decode the frames the first round will look at, into the shared frame source, while the
        model works on an earlier item (best effort: the run decodes what is missing)."""
        from core.analysis.perception import round_sample

        engine = next((e for e in self.flow.engines if e.capabilities.takes_frames and hasattr(e, "fit")), None)
        if engine is None:
            return
        try:
            source = asset.frames(self.settings)
            fitted, _ = engine.fit(request, source.index)  # type: ignore[attr-defined]
            stage("frames", "decoding the first round's frames ahead of the model", None)
            round_sample(source, fitted, None)
        except Exception:  # the run itself reports what is wrong with the frames
            log.debug("decoding ahead failed", exc_info=True)

    def run(self, item: Item, asset: MediaAsset, stage: ProgressFn, on_queued: QueuedFn) -> Outcome:
        request = job_request(self.job, self.kind.question(self.job, item))
        run = analyze_asset(asset, self.settings, self.flow, request, stage=stage, on_queued=on_queued,
                            priority="batch")  # fmt: skip
        ref = ResultRef(store="results", folder=asset.sha256, key=run.key)
        return Outcome(ref=ref, asset=asset.model_dump_json(), from_store=run.from_store)


class AnalyzeKind:
    name = "analyze"
    title = "Ask a question"
    help = "One question for every row, or each row's own `question` cell; the answer in a column."

    def question(self, job: Job, item: Item | None) -> str:
        own = item.question if item is not None else None
        return own or str(job.options.get("question") or "") or "(each row's question)"

    def start(self, job: Job, settings: Settings, api_key: str | None) -> KindRun:
        return AnalyzeRun(self, job, settings, api_key)

    def columns(self, job: Job) -> list[str]:
        if job.model == "linked":
            return ["answer", "answer_local", "answer_gemini", "agreement"]
        return ["answer"]

    def values(self, job: Job, item: Item, settings: Settings) -> dict[str, str]:
        stored = stored_result(settings, item.result_ref) if item.result_ref else None
        if stored is None:
            return {}
        result = stored.result
        values = {"answer": result.answer}
        if result.linked is not None:
            values.update(
                answer_local=result.linked.local_answer,
                answer_gemini=result.linked.gemini_answer,
                agreement=result.linked.agreement,
            )
        return values

    def record(self, job: Job, item: Item, settings: Settings) -> dict[str, Any] | None:
        from core.analysis.export import export_record

        run = stored_run(settings, item)
        return export_record(run) if run is not None else None


# -- labels -----------------------------------------------------------------------------------------
class LabelsKind(AnalyzeKind):
    name = "labels"
    title = "Label every video"
    help = "A JSON schema of labels, asked of every video; one column per label."

    @staticmethod
    def schema(job: Job) -> LabelSchema:
        return LabelSchema.from_json(str(job.options.get("schema") or ""))

    def question(self, job: Job, item: Item | None) -> str:
        return self.schema(job).question()

    def columns(self, job: Job) -> list[str]:
        return [*self.schema(job).names, "answer", "labels_note"]

    def values(self, job: Job, item: Item, settings: Settings) -> dict[str, str]:
        values = super().values(job, item, settings)
        if "answer" not in values:
            return values
        reading = self.schema(job).read(values["answer"])
        return {**reading.values, "answer": values["answer"], "labels_note": "; ".join(reading.problems)}


# -- fact-check (the flow in core/analysis/factcheck, imported when a job runs) --------------------------------------
class FactCheckRun:
    local: bool

    def __init__(self, job: Job, settings: Settings, api_key: str | None) -> None:
        from core.analysis.factcheck.flow import flows_for

        self.job, self.settings, self.api_key = job, settings, api_key
        self.request = job_request(job, "fact-check")
        model_path = Path(job.model_path) if job.model_path else None
        self.flows = flows_for(job.model, settings, model_path, api_key)
        for flow in self.flows.values():
            flow.check(self.request)
        self.local = any(capabilities(flow).uses_local_host for flow in self.flows.values())

    def prepare(self, item: Item, stage: ProgressFn) -> MediaAsset:
        return checked_media(item.url, self.settings, lambda: None, progress=stage)

    def run(self, item: Item, asset: MediaAsset, stage: ProgressFn, on_queued: QueuedFn) -> Outcome:
        from core.analysis.factcheck.flow import factcheck_asset

        run = factcheck_asset(
            asset,
            self.settings,
            self.job.model,
            self.flows,
            self.request,
            gemini_api_key=self.api_key,
            on_stage=stage,
            on_queued=on_queued,
            priority="batch",
        )
        ref = ResultRef(store="factcheck", folder=run.asset.sha256, key=run.report.key)
        return Outcome(ref=ref, asset=run.asset.model_dump_json(), from_store=run.from_store)


class FactCheckKind:
    name = "factcheck"
    title = "Fact-check every video"
    help = "The fact-check report of each video: the suggested rating and each check's band."
    CHECKS = ("visual", "credibility", "audio")

    def start(self, job: Job, settings: Settings, api_key: str | None) -> KindRun:
        return FactCheckRun(job, settings, api_key)

    def columns(self, job: Job) -> list[str]:
        return ["answer", *(f"{name}_band" for name in self.CHECKS)]

    def _report(self, item: Item, settings: Settings) -> Any:
        from core.analysis.factcheck.store import REPORT_FILE, FactCheckStore

        if item.result_ref is None or item.result_ref.store != "factcheck":
            return None
        store = FactCheckStore(settings)
        folder, key = item.result_ref.folder, item.result_ref.key
        stored = _cached(store.folder(folder, key) / REPORT_FILE, lambda: store.get(folder, key))
        return stored.report if stored is not None else None

    def values(self, job: Job, item: Item, settings: Settings) -> dict[str, str]:
        report = self._report(item, settings)
        if report is None:
            return {}
        values = {"answer": str(report.overall.suggested)}
        for check in report.checks:
            bands = [str(j.band) if j.band else str(j.state) for j in check.judgements]
            values[f"{check.name}_band"] = " / ".join(bands)
        return values

    def record(self, job: Job, item: Item, settings: Settings) -> dict[str, Any] | None:
        report = self._report(item, settings)
        return report.model_dump(mode="json") if report is not None else None


KINDS: dict[str, JobKind] = {"analyze": AnalyzeKind(), "labels": LabelsKind(), "factcheck": FactCheckKind()}


def get_kind(name: str) -> JobKind:
    if name not in KINDS:
        raise InputError(f"Unknown batch kind '{name}'.", f"Choose one of: {', '.join(KINDS)}.")
    return KINDS[name]
