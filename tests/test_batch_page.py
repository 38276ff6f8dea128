"""The Batch page through AppTest, on the Gemini stand-in: upload a CSV, read the validation report,
start, see the items table, the charts and the evaluation, download, open a row in Analyze."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.config import get_settings
from core.jobs.store import JobStore
from core.jobs.worker import stop_background_workers
from tests.batch_support import batch_clips, put_clips  # noqa: F401 (a fixture)
from tests.gemini_fake import VALID_KEY, FakeGemini
from tests.support import AppPaths, app_env, button, new_app, shown_text

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(autouse=True)
def _stop_workers() -> Iterator[None]:
    """The page starts this process's batch worker; stop it before the next test's data dir."""
    yield
    stop_background_workers(30)
    get_settings.cache_clear()


@pytest.fixture
def paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gemini: FakeGemini) -> AppPaths:
    paths = app_env(monkeypatch, tmp_path)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", gemini.base_url)
    return paths


def batch_page() -> AppTest:
    app = new_app()
    app.query_params["gemini_api_key"] = VALID_KEY
    app.run()
    app.sidebar.selectbox(key="model_choice").select("gemini")
    return app.switch_page("app_pages/batch.py").run()


def wait_for_the_job(paths: AppPaths, timeout_s: float = 60) -> str:
    store = JobStore(get_settings())
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs = store.jobs()
        if jobs and store.counts(jobs[0].id).open == 0:
            return jobs[0].id
        time.sleep(0.2)
    raise AssertionError("the batch did not finish")


def test_upload_start_watch_and_download(paths: AppPaths, batch_clips):  # noqa: F811
    names = put_clips(batch_clips, paths.media_dir, 3)
    csv = "url,label,note\n" + "".join(f"{n},{label},=x\n" for n, label in zip(names, "AAB", strict=True))
    app = batch_page()
    assert not app.exception
    assert "Upload a CSV to start" in shown_text(app)
    app.file_uploader(key="batch_upload").upload("my list.csv", csv.encode(), "text/csv").run()
    text = shown_text(app)
    assert "my list.csv: 3 data row(s), columns url, label, note" in text
    assert "The CSV is ready: no problem found." in text
    app.text_area(key="batch_question").input("Which option, A or B?")
    app = button(app, "Start the batch").click().run()
    assert not app.exception and not app.error, shown_text(app)
    assert "closing this tab does not stop it" in shown_text(app)
    job_id = wait_for_the_job(paths)
    # the key typed in this session reached the worker in memory only: never the job store
    for stored in paths.data_dir.glob("jobs.sqlite*"):
        assert VALID_KEY.encode() not in stored.read_bytes()
    app = app.run()
    assert not app.exception
    [table] = app.dataframe
    frame = table.value
    assert frame["url"].tolist() == names
    assert frame["status"].tolist() == ["done"] * 3
    assert frame["answer"].tolist() == ["A test pattern"] * 3
    assert "3 of 3 rows finished · finished" in next(p.proto.text for p in app.get("progress"))
    figures = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    assert figures[0]["data"][0]["x"] == ["done"]  # items by status
    assert len(figures) >= 4  # status, answers, seconds, confusion matrix, per-class
    assert "Evaluation" in [s.value for s in app.subheader]
    assert "accuracy 0.667" in shown_text(app)
    labels = [b.proto.label for b in app.get("download_button")]
    assert labels == ["Results (CSV)", "Full results (JSON Lines)", "Original CSV with results"]
    # after a reload (a new session) the job is listed with its state
    again = batch_page()
    [listed] = again.selectbox(key="batch_job").options
    assert listed.startswith("my list.csv · Ask a question · Google Gemini") and listed.endswith(job_id[-6:])
    assert "3 of 3 rows finished · finished" in next(p.proto.text for p in again.get("progress"))
    # a row's stored result opens in the Analyze view
    opened = button(again, "Open in Analyze").click().run()
    assert not opened.exception
    assert "A test pattern" in [m.value for m in opened.markdown]


def test_a_bad_csv_shows_its_rows_and_cannot_start(paths: AppPaths):
    app = batch_page()
    bad = b"url,question\n,what\nftp://example.org/v.mp4,what\n"
    app.file_uploader(key="batch_upload").upload("bad.csv", bad, "text/csv").run()
    text = shown_text(app)
    assert "2 problem(s) in 2 row(s) (row 1 is the header):" in text
    assert "row 2: the url cell is empty." in text and "row 3: 'ftp://example.org/v.mp4' has the scheme" in text
    assert button(app, "Start the batch").disabled
    app.file_uploader(key="batch_upload").upload("nourl.csv", b"link\nx\n", "text/csv").run()
    assert "There is no 'url' column (the header has 'link')." in shown_text(app)
