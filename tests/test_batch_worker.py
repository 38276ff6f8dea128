"""Batches run through the real worker and job store, on the Gemini stand-in (the real SDK against a
local server): every row done, results referenced by their result-store key, a finished row costs
nothing when run again, leases taken over, the exports."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pandas as pd
import pytest

from core.config import Settings
from core.jobs.csv_input import read_batch_csv
from core.jobs.export import appended_csv, results_csv, results_jsonl
from core.jobs.store import JobStore
from core.jobs.submit import submit_job
from core.jobs.worker import BatchWorker
from core.models.base import AnalysisRequest
from tests.batch_support import batch_clips, put_clips  # noqa: F401 (a fixture)
from tests.gemini_fake import FakeGemini, json_reply, rate_limited

pytestmark = pytest.mark.timeout(120)


def batch_csv(names: list[str]) -> bytes:
    lines = ["id,url,question,label,note"]
    notes = ["=1+1", "plain", "@home", "-x"]
    for n, name in enumerate(names):
        lines.append(f'{n + 1},{name},,{"AB"[n % 2]},"{notes[n % 4]}"')
    return ("\n".join(lines) + "\n").encode()


def submit(settings: Settings, data: bytes, kind: str = "analyze", **options: object):  # type: ignore[no-untyped-def]
    batch = read_batch_csv(data, settings, name="list.csv")
    assert batch.clean, batch.problems
    defaults: dict[str, object] = {"question": "Which option, A or B?"} if kind == "analyze" else {}
    return submit_job(
        batch, settings, kind=kind, model="gemini", model_label="Gemini (stand-in)",
        request=AnalysisRequest(question="(each row's question)"), original=data, **{**defaults, **options},
    )  # fmt: skip


def result_files(settings: Settings) -> list[Path]:
    return sorted((settings.data_dir / "results").rglob("*.json"))


def test_a_batch_runs_to_done_and_a_rerun_costs_nothing(gemini: FakeGemini, gemini_settings: Settings, batch_clips):  # noqa: F811
    settings = gemini_settings.model_copy(update={"batch_concurrency": 2})
    names = put_clips(batch_clips, settings.media_dir, 4)
    data = batch_csv(names)
    job, reused = submit(settings, data)
    assert not reused
    assert BatchWorker(settings, role="cli").run_job(job.id)
    store = JobStore(settings)
    items = store.items(job.id)
    assert [i.state for i in items] == ["done"] * 4
    assert [i.row_number for i in items] == [2, 3, 4, 5]
    assert len(gemini.generate_requests()) == 4
    # results are referenced by their key in the result store, never copied into the job store
    assert len(result_files(settings)) == 4
    for item in items:
        assert item.result_ref is not None and item.from_store is False
        assert (settings.data_dir / "results" / item.result_ref.folder / f"{item.result_ref.key}.json").is_file()
    raw = (settings.data_dir / "jobs.sqlite").read_bytes()
    assert b"A test pattern" not in raw
    attempts = store.attempts(job.id)
    assert [(a["idx"], a["outcome"]) for a in attempts] == [(n, "done") for n in range(4)]

    # the results CSV: input columns, then the answer and the bookkeeping, formula cells neutralised
    frame = pd.read_csv(io.BytesIO(results_csv(job, items, settings)), dtype=str, keep_default_na=False)
    assert list(frame.columns) == [
        "id", "url", "question", "label", "note", "answer", "status", "error", "model", "seconds", "result_key",
    ]  # fmt: skip
    assert frame["url"].tolist() == names
    assert frame["note"].tolist() == ["'=1+1", "plain", "'@home", "'-x"]
    assert set(frame["answer"]) == {"A test pattern"} and set(frame["status"]) == {"done"}
    assert frame["result_key"].tolist() == [i.result_ref.key for i in items]  # type: ignore[union-attr]
    # the original CSV with the result columns appended
    appended = pd.read_csv(io.BytesIO(appended_csv(job, data, items, settings)), dtype=str, keep_default_na=False)
    assert list(appended.columns)[:5] == ["id", "url", "question", "label", "note"]
    assert appended["answer"].tolist() == ["A test pattern"] * 4
    # JSON Lines: the full stored result of each row
    records = [json.loads(line) for line in results_jsonl(job, items, settings).decode().splitlines()]
    assert [r["row"] for r in records] == [2, 3, 4, 5]
    assert all(r["result"]["answer"] == "A test pattern" for r in records)

    # the same CSV as a new job: every row comes from the result store, no request is sent
    again, _ = submit(settings, data)
    assert again.id != job.id
    assert BatchWorker(settings, role="cli").run_job(again.id)
    assert [i.from_store for i in store.items(again.id)] == [True] * 4
    assert len(gemini.generate_requests()) == 4
    assert len(result_files(settings)) == 4


def test_labels_kind_one_column_per_label(gemini: FakeGemini, gemini_settings: Settings, batch_clips):  # noqa: F811
    names = put_clips(batch_clips, gemini_settings.media_dir, 2)
    answer = {"reasoning": "r", "answer": '{"topic": "news", "people": false}', "evidence": []}
    gemini.script(json_reply(answer), json_reply(answer))
    schema = '{"properties": {"topic": {"type": "string", "enum": ["news", "sports"]}, "people": {"type": "boolean"}}}'
    job, _ = submit(gemini_settings, ("url\n" + "\n".join(names) + "\n").encode(), kind="labels", schema=schema)
    assert BatchWorker(gemini_settings, role="cli").run_job(job.id)
    items = JobStore(gemini_settings).items(job.id)
    frame = pd.read_csv(io.BytesIO(results_csv(job, items, gemini_settings)), dtype=str, keep_default_na=False)
    assert list(frame.columns)[:5] == ["url", "topic", "people", "answer", "labels_note"]
    assert frame["topic"].tolist() == ["news", "news"] and frame["people"].tolist() == ["false", "false"]
    assert "topic" in json.dumps(gemini.generate_requests()[0])


def test_transient_failures_are_retried_and_bad_rows_fail(gemini: FakeGemini, gemini_settings: Settings, batch_clips):  # noqa: F811
    settings = gemini_settings.model_copy(
        update={"batch_concurrency": 1, "batch_backoff_s": 0.05, "gemini_retries": 0, "batch_retries": 2}
    )
    names = put_clips(batch_clips, settings.media_dir, 2)
    gemini.script(rate_limited())  # the first request: a 429 the engine does not retry past
    (settings.media_dir / "broken.mp4").write_bytes(b"this is not a video")
    job, _ = submit(settings, ("url\n" + "\n".join([*names, "broken.mp4"]) + "\n").encode())
    assert BatchWorker(settings, role="cli").run_job(job.id)
    store = JobStore(settings)
    items = store.items(job.id)
    assert [i.state for i in items] == ["done", "done", "failed"]
    assert sorted(i.attempts for i in items[:2]) == [1, 2]  # the row that got the 429 ran again
    assert items[2].error and "\n" not in items[2].error
    retried = next(i.idx for i in items if i.attempts == 2)
    assert [a["outcome"] for a in store.attempts(job.id) if a["idx"] == retried] == ["retry", "done"]
    # retry-failed queues the failed row again
    assert store.retry_failed(job.id) == 1
    assert store.items(job.id)[2].state == "queued"


def test_an_expired_lease_is_taken_over_and_a_live_one_is_not(settings: Settings):
    store = JobStore(settings)
    with store._write() as db:  # a worker on another machine that stopped beating a while ago
        db.execute("UPDATE lease SET owner = 'app:elsewhere:1:x', pid = 1, host = 'elsewhere', role = 'app',"
                   " until = ?, beat = ? WHERE name = 'batch'", (time.time() - 1, time.time() - 31))  # fmt: skip
    assert store.acquire("cli:here:2:y", "cli", 30)
    assert store.lease().owner == "cli:here:2:y"
    with store._write() as db:  # a live worker elsewhere
        db.execute("UPDATE lease SET owner = 'app:elsewhere:1:x', host = 'elsewhere', until = ? WHERE name = 'batch'",
                   (time.time() + 30,))  # fmt: skip
    assert not store.acquire("cli:here:3:z", "cli", 30)
    # a holder on this host whose process is gone is taken over at once
    with store._write() as db:
        db.execute("UPDATE lease SET host = ?, pid = ? WHERE name = 'batch'", (os.uname().nodename, 2**22 + 12345))
    assert store.acquire("cli:here:3:z", "cli", 30)


def test_an_item_claimed_by_a_stopped_worker_is_taken_over(gemini: FakeGemini, gemini_settings: Settings, batch_clips):  # noqa: F811
    names = put_clips(batch_clips, gemini_settings.media_dir, 1)
    job, _ = submit(gemini_settings, f"url\n{names[0]}\n".encode())
    store = JobStore(gemini_settings)
    assert store.acquire("old", "cli", 30)
    claimed = store.claim(job.id, "old", 30)
    assert claimed is not None and store.items(job.id)[0].state == "preparing"
    with store._write() as db:  # the old worker stopped beating: its lease ran out
        db.execute("UPDATE lease SET until = 0 WHERE name = 'batch'")
    assert BatchWorker(gemini_settings, role="cli").run_job(job.id)
    [item] = store.items(job.id)
    assert (item.state, item.attempts) == ("done", 2)
    assert [a["outcome"] for a in store.attempts(job.id)] == ["interrupted", "done"]
    # the old owner's late answer is not written over the new one
    assert not store.finish(job.id, 0, "old", state="failed", error="late")
    assert store.items(job.id)[0].state == "done"


def test_pause_cancel_resume_and_a_held_job(
    gemini: FakeGemini,
    gemini_settings: Settings,
    settings: Settings,
    batch_clips,  # noqa: F811
):
    names = put_clips(batch_clips, gemini_settings.media_dir, 3)
    data = ("url\n" + "\n".join(names) + "\n").encode()
    store = JobStore(gemini_settings)
    job, _ = submit(gemini_settings, data)
    store.set_state(job.id, "paused")
    assert BatchWorker(gemini_settings, role="cli").run_job(job.id)  # nothing starts while paused
    assert {i.state for i in store.items(job.id)} == {"queued"}
    store.set_state(job.id, "cancelled")
    assert {i.state for i in store.items(job.id)} == {"cancelled"}
    assert store.runnable_jobs() == []
    store.set_state(job.id, "active")
    assert BatchWorker(gemini_settings, role="cli").run_job(job.id)
    assert {i.state for i in store.items(job.id)} == {"done"}

    # no Gemini key in this process: the job is held with the reason, no row fails
    keyless = settings.model_copy(update={"media_dir": gemini_settings.media_dir})
    held, _ = submit(keyless, data, question="Another question?")
    assert BatchWorker(keyless, role="cli").run_job(held.id)
    found = JobStore(keyless).job(held.id)
    assert found is not None and found.hold and "key" in found.hold.lower()
    assert {i.state for i in JobStore(keyless).items(held.id)} == {"queued"}


def test_a_factcheck_batch_gives_each_row_its_rating_and_bands(gemini: FakeGemini, gemini_settings: Settings, batch_clips):  # type: ignore[no-untyped-def]  # noqa: F811, E501
    settings = gemini_settings.model_copy(update={"batch_concurrency": 2})
    names = put_clips(batch_clips, settings.media_dir, 2)
    job, _ = submit(settings, batch_csv(names), kind="factcheck")
    assert BatchWorker(settings, role="cli").run_job(job.id)
    items = JobStore(settings).items(job.id)
    assert [i.state for i in items] == ["done", "done"]
    assert all(i.result_ref is not None and i.result_ref.store == "factcheck" for i in items)
    frame = pd.read_csv(io.BytesIO(results_csv(job, items, settings)), dtype=str, keep_default_na=False)
    assert {"answer", "visual_band", "credibility_band", "audio_band"} <= set(frame.columns)
    # the stand-in's answers are not in the checks' form: each check says so, the report stands
    assert set(frame["visual_band"]) == {"could not be read"}
    assert set(frame["answer"]) == {"Insufficient evidence"}
    reports = sorted((settings.data_dir / "factchecks").rglob("report.json"))
    assert len(reports) == 2


def test_the_app_picks_up_unfinished_jobs_when_it_starts(monkeypatch, tmp_path: Path, gemini: FakeGemini, batch_clips):  # noqa: F811
    from core.config import get_settings
    from core.jobs.worker import stop_background_workers
    from tests.gemini_fake import VALID_KEY
    from tests.support import app_env, new_app

    app_env(monkeypatch, tmp_path, GEMINI_API_KEY=VALID_KEY, GOOGLE_GEMINI_BASE_URL=gemini.base_url)
    settings = get_settings()
    job, _ = submit(settings, batch_csv(put_clips(batch_clips, settings.media_dir, 2)))  # left unfinished
    try:
        app = new_app().run()  # the Analyze page: nobody opens the Batch page
        assert not app.exception
        store = JobStore(settings)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and store.counts(job.id).finished < 2:
            time.sleep(0.2)
        assert [i.state for i in store.items(job.id)] == ["done", "done"]
    finally:
        stop_background_workers()
