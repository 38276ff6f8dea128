"""The Fact-check page (AppTest): a file from the media folder checked with the Gemini stand-in, the
report's cards and evidence, a person's rating saved beside the report, the downloads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.gemini_fake import VALID_KEY, FakeGemini, json_reply
from tests.media_factory import ffmpeg
from tests.support import app_env, button, new_app, shown, shown_text

ANSWERS = {
    "was edited or synthesised. Look": "BAND: strong\nRATIONALE: The picture is replaced at 3.0 s.",
    "List the factual claims": (
        "BAND: weak\nRATIONALE: Little to check.\nCLAIM: 1 | a voice | It is live | yes | a clock | live clock"
    ),
    "sound was edited": "BAND: no\nRATIONALE: A steady tone.",
}


class CheckingGemini(FakeGemini):
    def default_reply(self, body):  # type: ignore[no-untyped-def]
        asked = json.dumps(body)
        for marker, answer in ANSWERS.items():
            if marker in asked:
                evidence = [{"start_s": 2.5, "end_s": 3.5, "what": "the picture changes"}]
                return json_reply({"reasoning": "watched", "answer": answer, "evidence": evidence})
        return super().default_reply(body)


@pytest.fixture
def page(monkeypatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    fake = CheckingGemini().start()
    paths = app_env(monkeypatch, tmp_path, GEMINI_API_KEY=VALID_KEY, GOOGLE_GEMINI_BASE_URL=fake.base_url)
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=3", "-f", "lavfi", "-i", "smptebars=s=320x240:r=25:d=3",
        "-f", "lavfi", "-i", "sine=frequency=440:duration=6", "-filter_complex", "[0:v][1:v]concat=n=2:v=1:a=0[v]",
        "-map", "[v]", "-map", "2:a", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
        str(paths.media_dir / "clip.mp4"),
    )  # fmt: skip
    yield paths
    fake.stop()


def factcheck_media_file(app: AppTest) -> AppTest:
    app.switch_page("app_pages/factcheck.py").run()
    app.sidebar.selectbox(key="model_choice").select("gemini").run()
    app.radio(key="source_kind").set_value("Media folder").run()
    app.selectbox(key="source_file").select("clip.mp4")
    return button(app, "Fact-check").click().run()


def test_a_report_on_the_page_and_a_persons_rating_beside_it(page):  # type: ignore[no-untyped-def]
    app = factcheck_media_file(new_app().run())
    assert not app.exception and not app.error
    assert shown(app.status[0].label).startswith("Reported")
    text = shown_text(app)
    for title in ("Visual artifacts", "Content credibility", "Audio anomalies", "Evidence measured without a model"):
        assert title in [s.value for s in app.subheader], title
    assert "Google Gemini" in text and "strong evidence" in text
    assert "Suggested: Edited or cropped" in text
    assert "Shots: 2 shots; cuts at 3.0 s" in text
    figure = json.loads(app.get("plotly_chart")[0].proto.spec)
    rows = {trace["y"][0] for trace in figure["data"]}
    assert {"Shots", "Visual artifacts: Google Gemini"} <= rows
    labels = [b.proto.label for b in app.get("download_button")]
    assert "Report (JSON)" in labels and "Report (HTML, opens offline)" in labels
    assert "Download all keyframes (zip)" in labels
    [report_file] = list((page.data_dir / "factchecks").rglob("report.json"))
    before = report_file.read_bytes()
    app.selectbox(key="rating_choice").select("Edited or cropped")
    app.text_input(key="rating_name").input("A. Checker")
    app.text_area(key="rating_note").input("Spliced at 3 s.")
    app = button(app, "Save the rating").click().run()
    assert not app.exception and not app.error
    assert "Rating saved." in shown_text(app)
    assert report_file.read_bytes() == before
    assert json.loads((report_file.parent / "rating.json").read_text())["name"] == "A. Checker"
    labels = [b.proto.label for b in app.get("download_button")]
    assert "ClaimReview / MediaReview (JSON-LD)" in labels
    app = app.run()  # a rerun still shows the person's rating (read back from the store)
    assert "A person's rating: Edited or cropped, by A. Checker" in shown_text(app)


def test_measure_only_shows_the_evidence_without_any_model(monkeypatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    paths = app_env(monkeypatch, tmp_path, VCHAT_MODEL_ID="nobody/not-a-model")  # no weights, no key
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           str(paths.media_dir / "clip.mp4"))  # fmt: skip
    app = new_app().run()
    app.switch_page("app_pages/factcheck.py").run()
    app.radio(key="source_kind").set_value("Media folder").run()
    app.selectbox(key="source_file").select("clip.mp4")
    app = button(app, "Measure only (no model)").click().run()
    assert not app.exception and not app.error
    assert shown(app.status[0].label).startswith("Measured (no model was used)")
    text = shown_text(app)
    assert "Evidence measured without a model" in [s.value for s in app.subheader]
    assert "Audio" in text or "no audio" in text.lower()
    assert "Download all keyframes (zip)" in [b.proto.label for b in app.get("download_button")]
    assert not (paths.data_dir / "factchecks").exists()
