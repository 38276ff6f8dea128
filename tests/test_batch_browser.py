"""The batch journey in real headless Chromium against `streamlit run Home.py`: upload a CSV, start,
watch progress, reload the page mid-run (the job goes on in the server), download the results CSV."""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.batch_support import batch_clips, put_clips  # noqa: F401 (a fixture)
from tests.gemini_fake import VALID_KEY, SlowGemini
from tests.support import ROOT, chromium_path, streamlit_app

OUTPUT = ROOT / "test-output" / "browser"
ROWS = 6

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def slow_gemini() -> Iterator[SlowGemini]:
    fake = SlowGemini(delay_s=0.5).start()
    yield fake
    fake.stop()


@pytest.fixture
def app_url(tmp_path: Path, slow_gemini: SlowGemini) -> Iterator[str]:
    """The app on a free port, with Gemini (the stand-in) keyed on the server, one row a second."""
    chromium_path()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VCHAT_") and "GEMINI" not in k}
    env.update(
        VCHAT_DATA_DIR=str(tmp_path / "data"),
        VCHAT_MEDIA_DIR=str(tmp_path / "videos"),
        VCHAT_ADAPTERS_DIR=str(tmp_path / "adapters"),
        VCHAT_PRESEED_DIR=str(tmp_path / "no-preseed"),
        VCHAT_BATCH_CONCURRENCY="1",
        VCHAT_BATCH_PER_MINUTE="60",
        GEMINI_API_KEY=VALID_KEY,
        GOOGLE_GEMINI_BASE_URL=slow_gemini.base_url,
        PYTHONUNBUFFERED="1",
    )
    with streamlit_app(env, tmp_path / "streamlit.log") as url:
        yield url


def rows_done(data_dir: Path) -> int:
    try:
        with sqlite3.connect(data_dir / "jobs.sqlite") as db:
            return db.execute("SELECT COUNT(*) FROM items WHERE state = 'done'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_batch_journey_with_a_reload_mid_run(app_url: str, tmp_path: Path, batch_clips):  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    names = put_clips(batch_clips, tmp_path / "videos", ROWS)
    csv_path = tmp_path / "clips.csv"
    csv_path.write_text("url,note\n" + "".join(f"{name},=row {n}\n" for n, name in enumerate(names)))
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        context = browser.new_context(viewport={"width": 1440, "height": 2200}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(120_000)
        expect.set_options(timeout=60_000)
        try:
            page.goto(f"{app_url}/batch")
            expect(page.get_by_role("heading", name="Batch", exact=True)).to_be_visible()
            sidebar = page.get_by_test_id("stSidebar")
            sidebar.get_by_test_id("stSelectbox").first.click()
            page.get_by_role("option", name=re.compile("Gemini")).first.click()
            expect(page.get_by_text(re.compile(r"Model: Google Gemini"))).to_be_visible()
            page.locator("input[type='file']").set_input_files(str(csv_path))
            expect(page.get_by_text("The CSV is ready: no problem found.")).to_be_visible()
            question = page.get_by_role("textbox", name="Question")
            question.fill("What is shown?")
            question.press("Control+Enter")
            page.wait_for_timeout(500)
            page.get_by_role("button", name="Start the batch").click()
            expect(page.get_by_text(re.compile(r"closing this tab does not stop it"))).to_be_visible()
            # watch it move, then reload while rows are still open
            deadline = time.monotonic() + 60
            while rows_done(tmp_path / "data") < 1 and time.monotonic() < deadline:
                time.sleep(0.2)
            seen = rows_done(tmp_path / "data")
            assert 1 <= seen < ROWS, seen
            expect(page.get_by_text(re.compile(r"\d of 6 rows finished"))).to_be_visible()
            page.reload()
            expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
            expect(page.get_by_text(re.compile(r"6 of 6 rows finished · finished"))).to_be_visible()
            page.screenshot(path=str(OUTPUT / "batch.png"), full_page=True)
            with page.expect_download() as download_info:
                page.get_by_role("button", name="Results (CSV)").click()
            download = download_info.value
            assert download.suggested_filename == "clips-results.csv"
            frame = pd.read_csv(download.path(), dtype=str, keep_default_na=False)
        except BaseException:
            page.screenshot(path=str(OUTPUT / "batch-failure.png"), full_page=True)
            raise
        finally:
            expect.set_options(timeout=5_000)
            context.close()
            browser.close()
    assert frame["url"].tolist() == names
    assert frame["status"].tolist() == ["done"] * ROWS
    assert frame["note"].tolist() == [f"'=row {n}" for n in range(ROWS)]
