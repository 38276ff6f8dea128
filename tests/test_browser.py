"""The main journey in real headless Chromium (Debian's `chromium`), against `streamlit run Home.py`.

Open the app with a Gemini key in the URL, see the key leave the address bar (and the page: the
sidebar only says a key is set), upload a clip, ask a question of the tiny model, see the answer
and the timeline, download the result JSON, and keep a screenshot in test-output/browser/.
Then outside text: a server's reason phrase, a model name from the address bar and an upload's
file name, each carrying markdown links and images to a local server that counts requests, are
shown literally; no link or image comes of them and the server sees no request for them.

`make test` installs chromium (as root, with apt-get) when it is missing; a missing browser
fails the test (it is not a skip).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.media_factory import make_clip
from tests.support import ROOT, LocalServer, answer_with_reason, chromium_path, streamlit_app

OUTPUT = ROOT / "test-output" / "browser"
TIMEOUT_MS = 120_000

pytestmark = pytest.mark.timeout(420)


@pytest.fixture
def app_url(tmp_path: Path, tiny_model: Path) -> Iterator[str]:
    """`streamlit run Home.py` on a free port, with a temporary data dir and the tiny model."""
    chromium_path()
    tiny = tiny_model
    media = tmp_path / "videos"
    media.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VCHAT_") and "GEMINI" not in k}
    env.update(
        VCHAT_DATA_DIR=str(tmp_path / "data"),
        VCHAT_MEDIA_DIR=str(media),
        VCHAT_ADAPTERS_DIR=str(tmp_path / "adapters"),
        VCHAT_PRESEED_DIR=str(tmp_path / "no-preseed"),
        VCHAT_MODEL_PATH=str(tiny),
        VCHAT_URL_ALLOWLIST="127.0.0.1",  # the outside-text test downloads from a local server
        PYTHONUNBUFFERED="1",
    )
    log = tmp_path / "streamlit.log"
    try:
        with streamlit_app(env, log) as url:
            yield url
    finally:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, OUTPUT / "streamlit.log")


def test_analyse_an_uploaded_clip_in_chromium(app_url: str, tmp_path: Path):
    from playwright.sync_api import expect, sync_playwright

    # 12 s of 4:4:4 video: sanitize re-encodes it, for long enough to report how far it is
    clip = make_clip(tmp_path / "phone-clip.mp4", duration=12, size="640x360", pix_fmt="yuv444p")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        context = browser.new_context(viewport={"width": 1440, "height": 2200}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        expect.set_options(timeout=60_000)  # assertions too: the plotly bundle loads lazily, on a busy CPU
        try:
            journey(page, app_url, clip, expect)
            factcheck_journey(page, app_url, clip, expect)
        except BaseException:
            page.screenshot(path=str(OUTPUT / "failure.png"), full_page=True)
            raise
        finally:
            expect.set_options(timeout=5_000)  # Playwright's default, for any later test
            context.close()
            browser.close()


def first_paint(page, app_url: str) -> float:  # type: ignore[no-untyped-def]
    """Seconds from opening / on a fresh server to the Analyze form's question field being visible."""
    started = time.monotonic()
    page.goto(f"{app_url}/")
    page.get_by_label("Question").wait_for(state="visible", timeout=60_000)
    return time.monotonic() - started


def journey(page, app_url: str, clip: Path, expect) -> None:  # type: ignore[no-untyped-def]
    # A newcomer opens the app: the form comes at once (the goal is 2 s on a warm server; reported,
    # not asserted), with no other menu or blank page first.
    cold = first_paint(page, app_url)
    page.screenshot(path=str(OUTPUT / "first-paint.png"))
    warm = first_paint(page, app_url)
    print(f"\nfirst paint: form visible {cold:.2f} s after opening / on a fresh server, {warm:.2f} s warm")
    (OUTPUT / "first-paint.txt").write_text(f"fresh server: {cold:.2f} s\nwarm server: {warm:.2f} s\n")
    assert page.get_by_role("link", name="analyze", exact=True).count() == 0  # no legacy pages/ menu
    # readiness before Analyze: where the weights are, whether a key is set
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_text("Ready?")).to_be_visible()
    expect(sidebar.get_by_text(re.compile(r"Weights: .+ \(VCHAT_MODEL_PATH\)"))).to_be_visible()

    # A bookmarked deep link: the page comes inside the shell, with no "Page not found" dialog.
    page.goto(f"{app_url}/models?gemini_api_key=test-key")
    expect(page.get_by_role("heading", name="Models", exact=True)).to_be_visible()
    expect(page.get_by_text("Perception rounds")).to_be_visible()  # the shared sidebar is there
    page.wait_for_function("() => !window.location.search.includes('gemini_api_key')", timeout=30_000)
    page.wait_for_timeout(1500)  # a late dialog would show by now
    assert page.get_by_text("Page not found").count() == 0
    assert "test-key" not in page.url

    page.goto(f"{app_url}/?gemini_api_key=test-key")
    expect(page.get_by_role("heading", name="Analyze a video")).to_be_visible()
    # the key leaves the address bar at once; the sidebar says a key is set, and shows it nowhere
    page.wait_for_function("() => !window.location.search.includes('gemini_api_key')", timeout=30_000)
    assert "test-key" not in page.url and "gemini_api_key" not in page.url
    page.get_by_test_id("stSidebar").get_by_text("Gemini", exact=True).click()
    expect(page.get_by_text("Gemini key set for this session")).to_be_visible()
    expect(page.get_by_role("button", name="Change")).to_be_visible()
    assert_key_nowhere(page, "test-key")

    # smaller settings, so the tiny model answers in a few seconds on a CPU
    set_number(page, "Frames per round", "8")
    page.get_by_text("Generation", exact=True).click()
    set_number(page, "Max new tokens per round", "24")

    page.get_by_text("Upload", exact=True).click()
    page.locator("input[type='file']").set_input_files(str(clip))
    expect(page.get_by_text(clip.name).first).to_be_visible()
    question = page.get_by_label("Question")
    question.fill("What is shown in this clip?")
    question.press("Control+Enter")
    page.wait_for_timeout(500)
    page.get_by_role("button", name="Analyze").click()

    # progress that moves: the status label names the stage and the time waited, and changes
    labels = watch_status(page)
    print("status labels seen:", *labels, sep="\n  ")
    assert len({label.split(":")[0] for label in labels}) >= 3, labels  # the stages went by, in words
    assert len([label for label in labels if label.startswith("Looking at the video:")]) >= 2, labels
    assert re.match(r"Answered \(the model took [\d.]+ s\) · [\d.]+ s in all", labels[-1]), labels
    status = page.get_by_test_id("stExpander").filter(has_text="Answered").first
    status.get_by_text("Answered", exact=False).first.click()  # open the finished status: every stage's line
    expect(status.get_by_text(re.compile(r"Making a clean copy to analyse: 12 of 12 s written"))).to_be_visible()
    expect(status.get_by_text(re.compile(r"round 3 of 3: \d+ tokens? generated · took"))).to_be_visible()

    # the result, top-down: the source and its provenance, then the answer, then the evidence
    source, answer = page.get_by_role("heading", name="Source"), page.get_by_role("heading", name="Answer")
    expect(source).to_be_visible()
    expect(answer).to_be_visible()
    assert source.bounding_box()["y"] < answer.bounding_box()["y"]
    expect(page.get_by_text("Content credentials (C2PA)")).to_be_visible()
    shown_question = page.locator("p").filter(has_text="Question:").filter(has_text="What is shown in this clip?")
    expect(shown_question).to_be_visible()
    timeline = page.locator("[data-testid='stPlotlyChart'] .js-plotly-plot")
    expect(timeline).to_be_visible()
    expect(timeline.get_by_text("Round 3")).to_be_visible()
    expect(timeline.get_by_text("video time (s)")).to_be_visible()
    expect(page.get_by_text("Frames the last round saw")).to_be_visible()

    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download the full result (JSON)").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".json")
    data = json.loads(Path(download.path()).read_text())
    assert data["question"] == "What is shown in this clip?" and isinstance(data["answer"], str)
    # a record that stands on its own: the source and what the bytes are, beside the answer
    assert data["source"]["kind"] == "upload" and data["source"]["filename"] == clip.name
    assert data["media"]["sha256"] == data["media"]["provenance"]["sha256"]
    assert data["media"]["provenance"]["c2pa"]["state"] == "none"
    assert data["media"]["probe"]["duration_s"] > 0 and data["media"]["sanitize"]["path_taken"]
    result = data["result"]
    assert [r["round"] for r in result["rounds"]] == [1, 2, 3]
    assert all(len(r["frame_timestamps"]) == 8 for r in result["rounds"])
    assert result["request"]["generation"]["max_new_tokens"] == 24
    assert result["model"]["backend"] == "local"
    assert "test-key" not in json.dumps(data)
    (OUTPUT / "result.json").write_text(json.dumps(data, indent=2))

    source.scroll_into_view_if_needed()
    page.screenshot(path=str(OUTPUT / "result.png"), full_page=True)


def factcheck_journey(page, app_url: str, clip: Path, expect) -> None:  # type: ignore[no-untyped-def]
    """The same clip fact-checked with the tiny model (settings from the journey before): the report's
    cards, the evidence timeline and keyframes, and the HTML report downloaded and opened offline."""
    page.goto(f"{app_url}/factcheck")
    expect(page.get_by_role("heading", name="Fact-check a video")).to_be_visible()
    page.get_by_text("Upload", exact=True).click()
    page.locator("input[type='file']").set_input_files(str(clip))
    expect(page.get_by_text(clip.name).first).to_be_visible()
    page.get_by_role("button", name="Fact-check").click()
    labels = watch_status(page, done=("Reported", "The fact-check"))
    print("fact-check status labels:", *labels, sep="\n  ")
    assert labels[-1].startswith("Reported"), labels
    for title in ("Visual artifacts", "Content credibility", "Audio anomalies", "Evidence measured without a model"):
        expect(page.get_by_role("heading", name=title)).to_be_visible()
    expect(page.get_by_text("not applicable").first).to_be_visible()  # the local model cannot hear
    expect(page.locator("[data-testid='stPlotlyChart'] .js-plotly-plot").get_by_text("Shots")).to_be_visible()
    expect(page.get_by_role("button", name="Download all keyframes (zip)")).to_be_visible()
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Report (HTML, opens offline)").click()
    html = Path(download_info.value.path()).read_text()
    assert html.startswith("<!doctype html>") and "Fact-check report" in html
    assert "<script" not in html and "http://" not in html.split("<h2>Public thumbnails</h2>")[0]
    (OUTPUT / "factcheck-report.html").write_text(html)
    page.screenshot(path=str(OUTPUT / "factcheck.png"), full_page=True)


def watch_status(page, timeout_s: float = 110, done: tuple[str, ...] = ("Answered",)) -> list[str]:  # type: ignore[no-untyped-def]
    """Every distinct label the status shows, polled until it starts with one of `done`."""
    labels: list[str] = []
    deadline = time.monotonic() + timeout_s
    summary = page.get_by_test_id("stExpander").locator("summary")
    while time.monotonic() < deadline:
        try:
            texts = summary.all_inner_texts()
        except Exception:  # the page re-rendered between the query and the read
            texts = []
        for text in texts:
            label = " ".join(text.split()).removeprefix("check").strip()  # the done icon's ligature
            if label and label not in labels and ("so far" in label or label.startswith(done)):
                labels.append(label)
        if labels and labels[-1].startswith(done):
            return labels
        time.sleep(0.05)
    raise AssertionError(f"the analysis did not finish in {timeout_s:.0f} s; the status said: {labels}")


def set_number(page, label: str, value: str) -> None:  # type: ignore[no-untyped-def]
    field = page.get_by_label(label)
    field.fill(value)
    field.press("Enter")
    page.wait_for_timeout(300)


def assert_key_nowhere(page, key: str) -> None:  # type: ignore[no-untyped-def]
    """No input holds the key as its value, and neither the page's text nor its HTML contains it."""
    values = page.evaluate("() => [...document.querySelectorAll('input')].map(i => i.value)")
    assert values and key not in values
    assert key not in page.inner_text("body") and key not in page.content()


def test_outside_text_is_shown_as_text_in_chromium(app_url: str, server: LocalServer):
    """(a) a download error quoting the server's reason phrase, (b) a Gemini model name from the
    address bar in the Models page's check, (c) an upload's file name in "not a video": each is
    on the page literally, and none makes a link or an image (nor a request for one)."""
    from playwright.sync_api import expect, sync_playwright

    base = server.url("")
    reason = f"![pixel]({base}/pixel.png) [Fix: click here]({base}/phish)"
    url = answer_with_reason(server, "/news.mp4", 418, reason)
    model = f"![pixel]({base}/pixel2.png) [Fix: click here]({base}/phish2)"
    # A file name keeps no slash, so links and images in it would point at the app's own host (a
    # browser reads `http:\host` relative to the page): the check is that none is in the DOM.
    host = base.removeprefix("http://")
    upload = f"[click](http:\\{host}\\phish3)![i](http:\\{host}\\pixel3.png).mp4"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        page = browser.new_page(viewport={"width": 1440, "height": 1400})
        page.set_default_timeout(60_000)
        try:
            # (b) the model name (and a key) from the address bar; the Models page checks it
            query = urllib.parse.urlencode({"gemini_api_key": "test-key", "gemini_model_name": model})
            page.goto(f"{app_url}/models?{query}")
            expect(page.get_by_role("heading", name="Models", exact=True)).to_be_visible()
            page.wait_for_function("() => !window.location.search.includes('gemini_')", timeout=30_000)
            page.get_by_role("button", name="Check Gemini").click()
            error = page.get_by_test_id("stAlert").filter(has_text="is not a Gemini model name")
            assert f"'{model}' is not a Gemini model name." in text_of(error, expect)
            assert f"Model: {model}" in text_of(page.locator("p").filter(has_text="Model:"), expect)
            assert_no_link_or_image(page, server)
            assert_key_nowhere(page, "test-key")

            # (a) a download error quoting the server's reason phrase
            page.goto(f"{app_url}/")
            expect(page.get_by_role("heading", name="Analyze a video")).to_be_visible()
            page.get_by_label("Video URL").fill(url)
            page.get_by_label("Video URL").press("Enter")
            page.get_by_label("Question").fill("What is shown?")
            page.get_by_label("Question").press("Control+Enter")
            page.get_by_role("button", name="Analyze").click()
            error = page.get_by_test_id("stAlert").filter(has_text="HTTP Error 418")
            assert f"HTTP Error 418: {reason}" in text_of(error, expect)
            assert_no_link_or_image(page, server)

            # (c) an upload named with markdown, that is no video
            page.get_by_text("Upload", exact=True).click()
            page.locator("input[type='file']").set_input_files(
                {"name": upload, "mimeType": "video/mp4", "buffer": b"just some text, not a video\n" * 64}
            )
            expect(page.get_by_role("button", name=re.compile("^Remove "))).to_be_visible()  # uploaded
            page.get_by_role("button", name="Analyze").click()
            error = page.get_by_test_id("stAlert").filter(has_text="not a video")
            assert f"'{upload}' is not a video" in text_of(error, expect)
            assert_no_link_or_image(page, server)
            OUTPUT.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(OUTPUT / "outside-text.png"), full_page=True)
        except BaseException:
            OUTPUT.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(OUTPUT / "outside-text-failure.png"), full_page=True)
            raise
        finally:
            browser.close()
    assert not [hit for hit in server.hits if hit != "/news.mp4"], server.hits


def text_of(locator, expect) -> str:  # type: ignore[no-untyped-def]
    """The text the reader sees in the one element `locator` finds, once it is visible (without the
    invisible word joiners that keep the browser from making links of URLs in it)."""
    expect(locator).to_be_visible(timeout=30_000)
    return locator.inner_text().replace("\u2060", "")


def assert_no_link_or_image(page, server: LocalServer) -> None:  # type: ignore[no-untyped-def]
    """No <a> and no <img> in the page points at the counting server or a payload's path, and the
    server got no request but the download's."""
    page.wait_for_timeout(500)  # an image, had one been made, would have been asked for by now
    hrefs = page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)")
    sources = page.evaluate("() => [...document.querySelectorAll('img, source')].map(i => i.src || i.srcset)")
    marks = (f":{server.port}", "pixel", "phish")
    assert not [h for h in hrefs if any(mark in h for mark in marks)], hrefs
    assert not [s for s in sources if any(mark in s for mark in marks)], sources
    assert not [hit for hit in server.hits if hit != "/news.mp4"], server.hits
