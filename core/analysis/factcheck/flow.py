"""One fact-check, start to finish: the flow the page, the CLI and batch jobs call.

    check the input, then the engines -> prepare the media -> the stored report, unless a re-run ->
    evidence that needs no model (core/media/forensics) -> Gemini's digest, when Gemini is one of the
    engines (the claims' words) -> each check asked of each engine, as an ordinary analysis through
    `analyze_asset` (stored, served from the store) -> bands, overall suggestion -> stored report

A check an engine cannot run (the local model hears nothing) is "not applicable" with the reason; an
answer that cannot be read is "could not be read" with its text kept; an engine that fails on one
check leaves that judgement "failed" and the rest of the report stands.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from core.analysis.factcheck import checks as check_texts
from core.analysis.factcheck.checks import CheckName, applicable, read_answer
from core.analysis.factcheck.moments import cited_moments, keep_frames
from core.analysis.factcheck.overall import disagreement, suggest
from core.analysis.factcheck.report import REPORT_VERSION, CheckReport, FactCheckReport, Judgement
from core.analysis.factcheck.signals import context_for, signals_for
from core.analysis.factcheck.store import FactCheckStore, StoredReport
from core.analysis.flows import LINKED, Flow, capabilities, flow_for
from core.analysis.runner import AnalysisRun, analyze_asset, checked_media
from core.config import Settings
from core.errors import VChatError
from core.media.forensics import FORENSICS_VERSION, Evidence, gather_evidence
from core.media.pipeline import InspectedMedia, MediaAsset, prepare_media
from core.models.base import AnalysisRequest
from core.models.local.host import Priority, QueuedFn
from core.progress import ProgressFn, no_progress

CHECKS: tuple[CheckName, ...] = ("visual", "credibility", "audio")


@dataclass
class FactCheckRun:
    stored: StoredReport
    asset: MediaAsset
    from_store: bool

    @property
    def report(self) -> FactCheckReport:
        return self.stored.report


@dataclass
class MeasuredMedia:
    """A video and the evidence measured about it, with no model at all."""

    asset: MediaAsset
    evidence: Evidence


def measure_only(
    source: str | Path | BinaryIO,
    settings: Settings,
    *,
    filename: str | None = None,
    on_stage: ProgressFn | None = None,
) -> MeasuredMedia:
    """The report's evidence without its checks: provenance flags, shots and keyframes, audio and
    picture signals. Needs no model, weights or key (a fact-checker's first look, on any install)."""
    stage = on_stage or no_progress
    asset = prepare_media(source, settings, filename=filename, progress=stage)
    evidence = gather_evidence(asset, settings, progress=stage)
    stage("done", "measured (no model was used)", 1.0)
    return MeasuredMedia(asset, evidence)


def engines_for(model: str) -> list[str]:
    """The engines that judge each check: each of linked mode's two on its own (their bands compared)."""
    return ["local", "gemini"] if model == LINKED else [model]


def run_factcheck(
    source: str | Path | BinaryIO,
    settings: Settings,
    model: str,
    request: AnalysisRequest,
    *,
    filename: str | None = None,
    model_path: Path | None = None,
    gemini_api_key: str | None = None,
    rerun: bool = False,
    on_stage: ProgressFn | None = None,
    on_queued: QueuedFn | None = None,
    priority: Priority = "interactive",
) -> FactCheckRun:
    """Fact-check `source` with the model called `model` (`request`: the settings every check's
    analysis uses; its question is replaced by each check's own). Raises VChatError for what a person
    can act on; a failure inside one check is recorded in the report instead."""
    stage = on_stage or no_progress
    flows = flows_for(model, settings, model_path, gemini_api_key)

    def check_engines() -> None:
        for flow in flows.values():
            flow.check(request)

    asset = checked_media(source, settings, check_engines, filename=filename, progress=stage)
    return factcheck_asset(
        asset, settings, model, flows, request, gemini_api_key=gemini_api_key, rerun=rerun, on_stage=stage,
        on_queued=on_queued, priority=priority,
    )  # fmt: skip


def flows_for(model: str, settings: Settings, model_path: Path | None, api_key: str | None) -> dict[str, Flow]:
    """The flow of each engine that judges the checks (not yet checked: `Flow.check` does that)."""
    return {name: flow_for(name, settings, model_path, api_key) for name in engines_for(model)}


def factcheck_asset(
    asset: MediaAsset,
    settings: Settings,
    model: str,
    flows: dict[str, Flow],
    request: AnalysisRequest,
    *,
    gemini_api_key: str | None = None,
    rerun: bool = False,
    on_stage: ProgressFn | None = None,
    on_queued: QueuedFn | None = None,
    priority: Priority = "interactive",
) -> FactCheckRun:
    """Fact-check media already prepared, with `flows` already checked (`flows_for`): the part of
    `run_factcheck` a batch runs on media it readied ahead."""
    stage = on_stage or no_progress
    store = FactCheckStore(settings)
    key = store.key(_identity(asset, model, flows, request))
    stored = None if rerun else store.get(asset.sha256, key)
    if stored is not None:
        stage("done", "served from the stored report", 1.0)
        return FactCheckRun(stored, asset, from_store=True)

    started = time.perf_counter()
    evidence = gather_evidence(asset, settings, progress=stage)
    notes: list[str] = []
    digest_text, digest_summary = _digest(asset, settings, flows, gemini_api_key, stage, notes)
    folder = store.folder(asset.sha256, key)
    reports = []
    asked = [(check, name) for check in CHECKS for name in flows]
    for number, (check, name) in enumerate(asked, start=1):
        stage("check", f"{check_texts.TITLES[check]} with {_label(flows[name])} ({number} of {len(asked)})", None)
        context = context_for(check, evidence, asset, digest_text)
        judgement = _judge(check, flows[name], asset, settings, request, context, rerun, stage, on_queued, priority)
        keep_frames(judgement, asset, settings, folder / "frames")
        reports.append((check, judgement))
    checks = []
    for check in CHECKS:
        report = CheckReport(
            name=check,
            title=check_texts.TITLES[check],
            judgements=[judgement for name, judgement in reports if name == check],
            signals=signals_for(check, evidence, asset),
        )
        report.disagreement = disagreement(report)
        checks.append(report)
    report = FactCheckReport(
        version=REPORT_VERSION,
        key=key,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        model=model,
        engines=[_label(flow) for flow in flows.values()],
        media=InspectedMedia(**{name: getattr(asset, name) for name in InspectedMedia.model_fields}),
        evidence=evidence,
        checks=checks,
        overall=suggest(checks, evidence, asset),
        digest_summary=digest_summary,
        notes=notes,
        seconds=round(time.perf_counter() - started, 3),
    )
    stage("store", "storing the report", None)
    stored = store.put(report)
    stage("done", f"reported in {report.seconds:.1f} s", 1.0)
    return FactCheckRun(stored, asset, from_store=False)


def _identity(asset: MediaAsset, model: str, flows: dict[str, Flow], request: AnalysisRequest) -> dict[str, object]:
    """Everything a report depends on (the questions are the checks' own: their version stands for them)."""
    return {
        "media": asset.sha256,
        "sanitized": asset.sanitized.settings_key,
        "model": model,
        "engines": {name: flow.identity(request) for name, flow in flows.items()},
        "request": request.model_dump(mode="json", exclude={"question", "context"}),
        "prompts": check_texts.PROMPT_VERSION,
        "evidence": FORENSICS_VERSION,
        "report": REPORT_VERSION,
    }


def _label(flow: Flow) -> str:
    engine = flow.engines[0]
    return str(getattr(engine, "label", engine.name))


def _digest(
    asset: MediaAsset,
    settings: Settings,
    flows: dict[str, Flow],
    api_key: str | None,
    stage: ProgressFn,
    notes: list[str],
) -> tuple[str | None, str | None]:
    """Gemini's digest (speech, on-screen text, claims) when Gemini is one of the engines."""
    if "gemini" not in flows:
        notes.append(
            "The claims come from what the local model reads on screen: it cannot hear the speech "
            "(Gemini's digest, in linked mode or with Gemini, adds what is said)."
        )
        return None, None
    from core.analysis.digest import digest_context, get_digest

    stage("remote", "asking Gemini for the digest: speech, on-screen text, claims", None)
    try:
        record = get_digest(asset, settings, api_key)
    except VChatError as exc:
        notes.append(f"Gemini's digest could not be made ({exc.one_line()}); the claims come from the checks alone.")
        return None, None
    return digest_context(record.digest, settings.digest_context_tokens), record.digest.summary


def _judge(
    check: CheckName,
    flow: Flow,
    asset: MediaAsset,
    settings: Settings,
    request: AnalysisRequest,
    context: str,
    rerun: bool,
    stage: ProgressFn,
    on_queued: QueuedFn | None,
    priority: Priority,
) -> Judgement:
    """One engine's judgement of one check (never raises for the engine's own failures)."""
    hears = capabilities(flow).hears_audio
    question = check_texts.question(check, hears)
    base = {"engine": _label(flow), "prompt_version": check_texts.PROMPT_VERSION, "question": question}
    not_applicable = applicable(check, hears, asset.probe.has_audio)
    if not_applicable is not None:
        return Judgement(model=_label(flow), state="not applicable", reason=not_applicable.reason, **base)
    asked = request.model_copy(update={"question": question, "context": context})
    try:
        run = analyze_asset(asset, settings, flow, asked, rerun=rerun, stage=stage, on_queued=on_queued,
                            priority=priority)  # fmt: skip
    except VChatError as exc:
        return Judgement(model=_label(flow), state="failed", reason=exc.one_line(), **base)
    return _read(run, asked, base)


def _read(run: AnalysisRun, request: AnalysisRequest, base: dict[str, object]) -> Judgement:
    result = run.result
    model = result.model.name + (f" + adapter {result.model.adapter}" if result.model.adapter else "")
    read = read_answer(result.answer)
    common = {**base, "model": model, "result_key": run.key, "seconds": result.seconds, "notes": read.notes}
    if read.band is None:
        return Judgement(
            state="could not be read",
            reason="The answer was not in the asked-for form (no BAND line); its text is kept.",
            raw_answer=result.answer or (result.rounds[-1].raw_output if result.rounds else ""),
            **common,  # type: ignore[arg-type]
        )
    return Judgement(
        state="judged",
        band=read.band,
        rationale=read.rationale,
        claims=read.claims,
        moments=cited_moments(result),
        **common,  # type: ignore[arg-type]
    )
