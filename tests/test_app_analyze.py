"""The Analyze page through AppTest: a whole analysis with the tiny model, the stored result,
uploads, URLs, one-line errors, the queued note and escaped model text."""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.config import get_settings
from core.models.local.host import HOST
from tests.gemini_fake import VALID_KEY
from tests.support import AppPaths, all_text, app_env, new_app, shown, status_lines
from ui.text import escape_markdown

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(autouse=True)
def _fresh_settings():  # type: ignore[no-untyped-def]
    """The app reads settings from the environment set by `app_env`; later tests must not see them."""
    yield
    get_settings.cache_clear()


@pytest.fixture
def clip(clips: dict[str, Path]) -> Path:
    return clips["h264"]


@pytest.fixture
def paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: Path, clip: Path) -> AppPaths:
    paths = app_env(monkeypatch, tmp_path, model_path=tiny_model)
    shutil.copyfile(clip, paths.media_dir / "clip.mp4")
    return paths


def button(app: AppTest, label: str):  # type: ignore[no-untyped-def]
    return next(b for b in app.button if b.label == label)


def small_settings(app: AppTest) -> None:
    frames = app.sidebar.number_input(key="frames")
    if not frames.disabled:  # a model that samples frames (Gemini watches the video itself)
        frames.set_value(6)
    app.sidebar.number_input(key="max_new_tokens").set_value(16)


def ask_about_media_file(app: AppTest, question: str = "What is shown?") -> AppTest:
    app.run()
    app.radio(key="source_kind").set_value("Media folder").run()
    app.selectbox(key="source_file").select("clip.mp4")
    app.text_area(key="question").input(question)
    small_settings(app)
    return button(app, "Analyze").click().run()


def provenance_facts(app: AppTest) -> dict[str, str]:
    """The "All media facts" list (`- **fact:** value` lines), as fact -> value."""
    [facts] = [shown(m.value) for m in app.markdown if m.value.startswith("- **source")]
    return dict(line[4:].split(":** ", 1) for line in facts.splitlines())


def stored_results(paths: AppPaths) -> list[Path]:
    return sorted((paths.data_dir / "results").rglob("*.json"))


def test_a_whole_analysis_with_the_tiny_model(paths: AppPaths):
    app = ask_about_media_file(new_app())
    assert not app.exception
    assert not app.error
    status = app.status[0]
    assert status.state == "complete"
    # the whole wait, not only the model's part of it
    assert re.fullmatch(r"Answered \(the model took [\d.]+ s\) · [\d.]+ s in all", shown(status.label))
    lines = status_lines(status)
    stages = [line.split(":")[0] for line in lines]
    assert stages == [
        "Getting the video",
        "Checking the video",
        "Reading metadata and C2PA",
        "Making a clean copy to analyse",
        "Video ready",
        "Reading frames",
        "Preparing the model",
        "Looking at the video",
        "Saving the result",
        "Done",
    ]
    assert all(re.search(r" · took [\d.]+ s$", line) for line in lines[:-1]), lines  # each stage's time
    looking = lines[stages.index("Looking at the video")]
    assert re.search(r"round 3 of 3: \d+ tokens? generated", looking), looking

    [path] = stored_results(paths)
    stored = json.loads(path.read_text())["result"]
    assert stored["question"] == "What is shown?"
    assert [r["round"] for r in stored["rounds"]] == [1, 2, 3]
    assert stored["request"]["frames"] == 6 and stored["request"]["generation"]["max_new_tokens"] == 16

    text = all_text(app)
    assert "**Question:** What is shown\\?" in text
    assert escape_markdown(f"local: {stored['model']['name']} · cpu float32 · 3 rounds") in text  # the model line
    # the timeline: one row per round, a tick per frame the round saw
    [chart] = app.get("plotly_chart")
    figure = json.loads(chart.proto.spec)
    frames = [trace for trace in figure["data"] if trace["name"] == "frame seen"]
    assert [trace["y"][0] for trace in frames] == ["Round 1", "Round 2", "Round 3"]
    assert [trace["x"] for trace in frames] == [r["frame_timestamps"] for r in stored["rounds"]]
    # the frame strip of the last round, with timestamps
    strip = app.image[0]
    assert strip.captions == [f"{t:.1f} s" for t in stored["rounds"][-1]["frame_timestamps"]]
    assert len(app.get("video")) == 1
    labels = [e.label for e in app.expander]
    assert [label.split(":")[0] for label in labels if label.startswith("Round")] == [
        "Round 1 of 3",
        "Round 2 of 3",
        "Round 3 of 3",
    ]
    assert "All media facts" in labels
    assert provenance_facts(app)["file name"] == "clip.mp4"
    download = app.get("download_button")[0]
    assert download.label == "Download the full result (JSON)"
    assert app.session_state["last_run"].data == stored  # what the button serves is the stored result


def test_the_same_analysis_is_served_from_the_store_and_can_be_rerun(paths: AppPaths):
    app = ask_about_media_file(new_app())
    [path] = stored_results(paths)
    first = json.loads(path.read_text())
    button(app, "Analyze").click().run()
    assert not app.exception
    assert shown(app.status[0].label).startswith("Served from the stored result · ")
    assert any("Served from the stored result of" in i.value for i in app.info)
    assert app.session_state["last_run"].data == first["result"]

    button(app, "Re-run").click().run()
    assert not app.exception and not app.error
    assert shown(app.status[0].label).startswith("Answered (the model took")
    assert not any("Served from the stored result" in i.value for i in app.info)
    assert stored_results(paths) == [path]


def test_an_uploaded_file_is_analysed(paths: AppPaths, clip: Path):
    app = new_app().run()
    app.radio(key="source_kind").set_value("Upload").run()
    uploader = app.file_uploader(key="source_upload")
    assert ".mp4" in uploader.allowed_type
    uploader.upload("holiday.mp4", clip.read_bytes(), "video/mp4")
    app.text_area(key="question").input("Where was this filmed?")
    small_settings(app)
    app.sidebar.number_input(key="rounds").set_value(1)
    button(app, "Analyze").click().run()
    assert not app.exception and not app.error
    assert shown(app.status[0].label).startswith("Answered (the model took")
    facts = provenance_facts(app)
    assert facts["source"] == "upload" and facts["file name"] == "holiday.mp4"
    originals = list((paths.data_dir / "media" / "objects").rglob("original.mp4"))
    assert len(originals) == 1 and originals[0].read_bytes() == clip.read_bytes()


def test_a_url_is_downloaded_and_analysed(paths: AppPaths, clip: Path, server):  # type: ignore[no-untyped-def]
    url = server.serve_file("/clips/news.mp4", clip)
    app = new_app().run()
    app.text_input(key="source_url").input(url)
    app.text_area(key="question").input("What is shown?")
    small_settings(app)
    app.sidebar.number_input(key="rounds").set_value(1)
    button(app, "Analyze").click().run()
    assert not app.exception and not app.error
    assert shown(app.status[0].label).startswith("Answered (the model took")
    facts = provenance_facts(app)
    assert facts["source"] == "url" and facts["URL"] == url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ftp://example.org/clip.mp4", "http"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("not a url at all", "'not a url at all' is not a URL"),
    ],
)
def test_a_bad_url_is_one_line_not_a_traceback(paths: AppPaths, url: str, expected: str):
    app = new_app().run()
    app.text_input(key="source_url").input(url)
    app.text_area(key="question").input("What is shown?")
    button(app, "Analyze").click().run()
    assert not app.exception
    [error] = app.error
    assert expected in shown(error.value) and "\n" not in error.value and "Traceback" not in error.value
    assert [s.state for s in app.status] in ([], ["error"])  # refused before or while it started
    assert not stored_results(paths)


def test_a_missing_page_on_the_server_is_one_line(paths: AppPaths, server):  # type: ignore[no-untyped-def]
    app = new_app().run()
    app.text_input(key="source_url").input(server.url("/gone.mp4"))
    app.text_area(key="question").input("What is shown?")
    button(app, "Analyze").click().run()
    assert not app.exception
    [error] = app.error
    assert "404" in error.value or "not found" in shown(error.value).lower()
    assert "\n" not in error.value


def test_missing_inputs_are_named(paths: AppPaths):
    app = new_app().run()
    button(app, "Analyze").click().run()
    assert shown(app.error[0].value).startswith("No video given.")
    app.text_input(key="source_url").input("https://example.org/clip.mp4")
    button(app, "Analyze").click().run()
    assert shown(app.error[0].value).startswith("The question is empty.")
    assert not app.exception


def test_a_second_session_is_queued_while_the_model_is_busy(paths: AppPaths):
    holding, release = threading.Event(), threading.Event()

    def other_session() -> None:
        with HOST.turn():
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=other_session)
    holder.start()
    holding.wait(5)

    def release_once_queued() -> None:  # the analysis below must find the model busy, then get it
        while HOST.waiting < 1 and not release.is_set():
            time.sleep(0.05)
        time.sleep(0.6)
        release.set()

    threading.Thread(target=release_once_queued, daemon=True).start()
    try:
        app = ask_about_media_file(new_app())
    finally:
        release.set()
        holder.join()
    assert not app.exception and not app.error
    lines = status_lines(app.status[0])
    waited = [line for line in lines if line.startswith("Waiting for the local model: ")]
    assert waited and "another analysis is using the local model" in waited[0], lines
    assert re.search(r" · took [\d.]+ s$", waited[0])
    assert shown(app.status[0].label).startswith("Answered (the model took")


def test_model_text_and_video_titles_cannot_inject_markup(paths: AppPaths):
    app = ask_about_media_file(new_app())
    [path] = stored_results(paths)
    stored = json.loads(path.read_text())
    stored["result"]["answer"] = '<img src=x onerror="alert(1)"> ![pixel](http://tracker.example/p.png)'
    stored["result"]["rounds"][0]["reasoning"] = "<script>alert(2)</script> [click](javascript:alert(3))"
    path.write_text(json.dumps(stored))
    button(app, "Analyze").click().run()
    assert shown(app.status[0].label).startswith("Served from the stored result · ")
    markdown = [m.value for m in app.markdown]
    expected = (
        '\\<img src\\=x onerror\\=\\"alert\\(1\\)\\"\\> '
        "\\!\\[pixel\\]\\(http\u2060\\:\\/\\/tracker\\.example\\/p\\.png\\)"
    )
    assert expected in markdown
    assert "\\<script\\>alert\\(2\\)\\<\\/script\\> \\[click\\]\\(javascript\\:alert\\(3\\)\\)" in markdown
    assert not any("<img" in m.replace("\\<img", "") or "<script" in m.replace("\\<script", "") for m in markdown)
    assert not app.get("html")


def test_gemini_with_the_key_from_the_address_bar(monkeypatch, tmp_path, clip: Path, gemini):  # type: ignore[no-untyped-def]
    paths = app_env(monkeypatch, tmp_path)
    shutil.copyfile(clip, paths.media_dir / "clip.mp4")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", gemini.base_url)  # the local Gemini fake (tests/gemini_fake.py)
    app = new_app()
    app.query_params["gemini_api_key"] = VALID_KEY
    app.run()
    app.sidebar.selectbox(key="model_choice").select("gemini")
    app = ask_about_media_file(app)
    assert not app.exception and not app.error
    assert shown(app.status[0].label).startswith("Answered (the model took")
    assert "A test pattern" in [m.value for m in app.markdown]
    assert [e.label for e in app.expander if e.label == "Gemini"] == ["Gemini", "Gemini"]  # sidebar, usage
    [generate] = gemini.generate_requests()
    assert generate["path"] == "/v1beta/models/gemini-flash-latest:generateContent"
    figure = json.loads(app.get("plotly_chart")[0].proto.spec)
    bars = [trace for trace in figure["data"] if trace["name"] == "segment cited"]
    assert bars and bars[0]["base"] == [0.5]  # the span Gemini's answer rests on
    [path] = stored_results(paths)
    stored = path.read_text()
    assert VALID_KEY not in stored and VALID_KEY not in app.session_state["last_run"].result_json
    assert json.loads(stored)["result"]["gemini"]["path_taken"] == "inline"


def test_missing_weights_are_said_before_analyze_and_stop_before_slow_work(monkeypatch, tmp_path, clip: Path):  # type: ignore[no-untyped-def]
    paths = app_env(monkeypatch, tmp_path, VCHAT_MODEL_ID="nobody/not-a-model")
    shutil.copyfile(clip, paths.media_dir / "clip.mp4")
    app = new_app().run()
    missing = "The model nobody/not-a-model is not on this machine. Put the weights in"
    assert any(shown(w.value).startswith(missing) for w in app.warning)  # on the page, before Analyze
    assert any(shown(c.value).endswith(missing.split(".")[0] + ".") for c in app.sidebar.caption)
    app = ask_about_media_file(app)
    assert not app.exception
    [error] = app.error
    assert shown(error.value).startswith(missing)
    assert not list((paths.data_dir / "media").rglob("sanitized"))  # the file was checked, not converted


def test_gemini_reads_a_youtube_url_itself_when_the_user_allows_it(monkeypatch, tmp_path, gemini):  # type: ignore[no-untyped-def]
    paths = app_env(monkeypatch, tmp_path, GEMINI_API_KEY=VALID_KEY)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", gemini.base_url)
    url = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
    app = new_app().run()
    app.text_input(key="source_url").input(url).run()
    assert not app.checkbox  # the local model cannot read a URL: no such choice offered
    app.sidebar.selectbox(key="model_choice").select("gemini").run()
    app.checkbox(key="gemini_reads_url").check()
    app.text_area(key="question").input("What is shown?")
    button(app, "Analyze").click().run()
    assert not app.exception and not app.error
    assert "A test pattern" in [m.value for m in app.markdown]
    assert any("no copy was downloaded" in c.value for c in app.caption)
    [part] = [p for p in gemini.generate_requests()[0]["json"]["contents"][0]["parts"] if "fileData" in p]
    assert part["fileData"]["file_uri"] == url
    assert not (paths.data_dir / "media").exists()  # nothing was downloaded
    [stored] = list((paths.data_dir / "results" / "by-url").glob("*.json"))
    assert json.loads(stored.read_text())["result"]["gemini"]["path_taken"] == "youtube"
    button(app, "Analyze").click().run()  # the same question again: from the store
    assert shown(app.status[0].label).startswith("Served from the stored result")
    assert len(gemini.generate_requests()) == 1


def test_a_round_cut_off_by_the_token_budget_says_so_beside_the_answer(paths: AppPaths):
    """The tiny model never closes its tags within 4 tokens: each round is cut off, and the page says
    how to fix it right under the answer; the sidebar's budget starts at the official 2048."""
    app = new_app()
    app.run()
    assert app.sidebar.number_input(key="max_new_tokens").value == 2048
    app.radio(key="source_kind").set_value("Media folder").run()
    app.selectbox(key="source_file").select("clip.mp4")
    app.text_area(key="question").input("What is shown?")
    app.sidebar.number_input(key="frames").set_value(4)
    app.sidebar.number_input(key="rounds").set_value(1)
    app.sidebar.number_input(key="max_new_tokens").set_value(4)
    app = button(app, "Analyze").click().run()
    assert not app.exception and not app.error
    warnings = [shown(w.value) for w in app.warning]
    assert "Round 1 was cut off at 4 tokens before its answer was complete: raise Max new tokens." in warnings
    assert any(e.label.endswith("(cut off)") for e in app.expander)
