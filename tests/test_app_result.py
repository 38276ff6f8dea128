"""The result page as a fact-checker reads it, top to bottom (AppTest, offline): the source and its
provenance first (origin, dates, C2PA in words), then the answer, the evidence, Gemini's digest,
the two linked answers side by side under their models' names, and the rounds; every value shown
whole (no table cuts a cell off); words that fit the engine (no "0 frames" for Gemini, "1 round");
a timeline that covers what a YouTube answer cites when the video's length is unknown."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from core.config import get_settings
from tests.gemini_fake import VALID_KEY
from tests.support import AppPaths, app_env, button, new_app, shown

pytestmark = pytest.mark.timeout(300)

TEXT_TYPES = {"subheader", "markdown", "caption", "warning", "info", "success", "error"}


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    yield
    get_settings.cache_clear()


def walk(node: Any) -> Iterator[Any]:
    """The page's elements in the order they are shown."""
    yield node
    children = getattr(node, "children", None) or {}
    for key in sorted(children):
        yield from walk(children[key])


def read(markdown: str) -> str:
    """Markdown as the reader sees it: no escapes, no bold markers."""
    return shown(markdown).replace("**", "")


def reading_order(block: Any) -> list[str]:
    """Every heading, text, caption, alert and detail-view label of `block` (an app: its main area),
    top to bottom, as read."""
    found = []
    for node in walk(block.main if isinstance(block, AppTest) else block):
        if node.type in TEXT_TYPES:
            found.append(read(str(node.value)))
        elif node.type == "expander":
            found.append(read(node.label))
    return found


def first(order: list[str], text: str) -> int:
    """Where the first element containing `text` is in the reading order."""
    return next(i for i, value in enumerate(order) if text in value)


def ask(app: AppTest, file: str, question: str = "What is shown?", rounds: int | None = 1) -> AppTest:
    app.run()
    app.radio(key="source_kind").set_value("Media folder").run()
    app.selectbox(key="source_file").select(file)
    app.text_area(key="question").input(question)
    if rounds is not None:  # frame models only: Gemini watches the whole video itself
        app.sidebar.number_input(key="frames").set_value(4)
        app.sidebar.number_input(key="rounds").set_value(rounds)
        app.sidebar.number_input(key="max_new_tokens").set_value(16)
    button(app, "Analyze").click().run()
    assert not app.exception and not app.error, [e.value for e in app.exception or app.error]
    return app


def timeline(app: AppTest) -> dict[str, Any]:
    [chart] = app.get("plotly_chart")
    return json.loads(chart.proto.spec)


@pytest.fixture
def local_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: Path, fixtures_dir: Path) -> AppPaths:
    paths = app_env(monkeypatch, tmp_path, model_path=tiny_model)
    shutil.copyfile(fixtures_dir / "video1.mp4", paths.media_dir / "video1.mp4")  # C2PA-signed, with a date
    return paths


def test_the_source_and_its_provenance_come_first_and_every_value_is_shown_whole(local_app: AppPaths):
    app = ask(new_app(), "video1.mp4")
    order = reading_order(app)
    # top-down: source, answer, evidence, rounds
    assert order.index("Source") < order.index("Answer") < order.index("Evidence") < order.index("Rounds")
    source = order[first(order, "- Origin:")]
    assert "- Origin: video1.mp4 (from the media folder)" in source
    assert "- Created (says the file's metadata): 2022-08-08T21:49:00.000000Z" in source
    c2pa = next(line for line in source.splitlines() if line.startswith("- Content credentials (C2PA):"))
    assert "valid: signed by" in c2pa and "the signer is not on a trust list" in c2pa
    assert first(order, "- Origin:") < order.index("Answer")
    # the model line: one round, in the singular
    run = app.session_state["last_run"]
    assert f"local: {run.result.model.name} · cpu float32 · 1 round · " in "\n".join(order)
    assert "1 rounds" not in "\n".join(order)
    # no table with narrow columns: long values are wrapped text, shown whole
    assert not app.dataframe
    text = "\n".join(order)
    assert f"- sha256: {run.asset.sha256}" in text
    frames_at = ", ".join(f"{t:.2f}" for t in run.result.rounds[0].frame_timestamps)
    assert f"- frames at (s): {frames_at}" in text
    assert "- periods these frames favour: none (uniform)" in text


def test_a_gemini_answer_says_it_watched_the_video_itself(monkeypatch, tmp_path, clips, gemini):  # type: ignore[no-untyped-def]
    paths = app_env(monkeypatch, tmp_path, GEMINI_API_KEY=VALID_KEY)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", gemini.base_url)
    shutil.copyfile(clips["h264"], paths.media_dir / "clip.mp4")
    app = new_app().run()
    app.sidebar.selectbox(key="model_choice").select("gemini").run()
    app = ask(app, "clip.mp4", rounds=None)
    order = reading_order(app)
    text = "\n".join(order)
    assert "Round 1 of 1" not in text and "0 frames" not in text and "1 round" not in text
    assert "Gemini's answer (it watched the video itself): cites 0.5-1.5 s" in order
    assert "gemini: gemini-flash-latest · one answer; it watched the video itself · " in text
    assert order.index("Source") < order.index("Answer") < order.index("Evidence") < order.index("How Gemini answered")
    assert [trace["y"][0] for trace in timeline(app)["data"] if trace["name"] == "segment cited"] == ["Gemini"]
    assert "- 0.5-1.5 s: the pattern moves" in text  # the evidence Gemini gave, as a list
    assert not app.dataframe  # Gemini's usage is a list too


def test_a_youtube_answers_timeline_covers_what_it_cites_and_says_the_length_is_unknown(monkeypatch, tmp_path, gemini):  # type: ignore[no-untyped-def]
    app_env(monkeypatch, tmp_path, GEMINI_API_KEY=VALID_KEY)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", gemini.base_url)
    url = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
    app = new_app().run()
    app.text_input(key="source_url").input(url).run()
    app.sidebar.selectbox(key="model_choice").select("gemini").run()
    app.checkbox(key="gemini_reads_url").check()
    app.text_area(key="question").input("What is shown?")
    button(app, "Analyze").click().run()
    assert not app.exception and not app.error
    figure = timeline(app)
    [bar] = [trace for trace in figure["data"] if trace["name"] == "segment cited"]
    cited_end = bar["base"][0] + bar["x"][0]
    assert cited_end == pytest.approx(1.5)
    axis_end = figure["layout"]["xaxis"]["range"][1]
    assert cited_end + 1 <= axis_end <= cited_end + 2  # the cited span is not squeezed against the edge
    order = reading_order(app)
    note = order[first(order, "length is not known")]
    assert "nothing was downloaded" in note and "the last moment cited" in note
    # the source says what it is, first
    assert first(order, f"Origin: {url} (Gemini read the video from YouTube itself)") < order.index("Answer")
    assert first(order, "no copy was downloaded") < order.index("Answer")


def test_linked_mode_shows_the_digest_and_both_answers_under_their_models_names(
    monkeypatch, tmp_path, clips, gemini, tiny_model
):  # type: ignore[no-untyped-def]
    paths = app_env(monkeypatch, tmp_path, model_path=tiny_model, GEMINI_API_KEY=VALID_KEY)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", gemini.base_url)
    shutil.copyfile(clips["h264"], paths.media_dir / "clip.mp4")
    app = new_app().run()
    app.sidebar.selectbox(key="model_choice").select("linked").run()
    app = ask(app, "clip.mp4", rounds=2)

    # the two answers side by side, each under its model's name, with the moments it cites
    columns = {}
    for column in app.columns:
        texts = reading_order(column)
        if texts and texts[0] in ("VideoChat-R1.5", "Gemini (gemini-flash-latest)"):
            columns[texts[0]] = texts
    assert list(columns) == ["VideoChat-R1.5", "Gemini (gemini-flash-latest)"]
    assert columns["Gemini (gemini-flash-latest)"][1:] == ["A test pattern", "Cites 0.5-1.5 s"]
    local = app.session_state["last_run"].result.linked.local_answer
    assert columns["VideoChat-R1.5"][1] == local.strip() or local.strip() == ""
    # the judge's explanation says which model is which (it saw them as A and B)
    order = reading_order(app)
    text = "\n".join(order)
    assert (
        "How this was judged: Gemini as judge (a model's opinion, not a measurement), where A is VideoChat-R1.5 "
        "and B is Gemini (gemini-flash-latest): A names a colour, B says there is none."
    ) in text
    assert "They DISAGREE: check the cited segments yourself." in [shown(w.value) for w in app.warning]
    [judge] = [r for r in gemini.generate_requests() if "verdict" in json.dumps(r["json"]["generationConfig"])]
    prompt = judge["json"]["contents"][0]["parts"][0]["text"]
    assert "Answer A, by VideoChat-R1.5:" in prompt and "Answer B, by Gemini (gemini-flash-latest):" in prompt

    # Gemini's digest, after the evidence and before the rounds
    digest = order.index("What Gemini saw and heard (its digest)")
    assert order.index("Answer") < order.index("Evidence") < digest < order.index("Rounds")
    assert "Summary: A person waves at the camera, then a title card appears." in order
    for line in (
        "- 0.5 s, speaker 1: This was filmed today.",  # claims
        "- 0.2-1.2 s, speaker 1: Hello there.",  # the transcript, with times
        "- 1.5-3.0 s: THE END",  # on-screen text
        "- 0.0-3.0 s, music: soft piano",  # audio notes
    ):
        assert first(order, line) > digest, line
    assert "2 rounds" in text
    # served again from the store: the digest is part of the stored result
    button(app, "Analyze").click().run()
    assert app.status[0].label.startswith("Served from the stored result")
    assert "Summary: A person waves at the camera, then a title card appears." in reading_order(app)
