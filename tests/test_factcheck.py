"""Fact-check reports end to end: the flow with the Gemini stand-in (through the real SDK), the vLLM
stand-in (the R1.5 loop, glue as cited moments) and the tiny local model; the person's rating beside
the report; the HTML export in Chromium with the network blocked; the CLI."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.analysis.factcheck.flow import run_factcheck
from core.analysis.factcheck.html import write_html
from core.analysis.factcheck.store import FactCheckStore
from core.config import Settings
from core.models.base import AnalysisRequest, GenerationSettings
from tests.gemini_fake import VALID_KEY, FakeGemini, Reply, json_reply
from tests.media_factory import ffmpeg
from tests.support import chromium_path, run_cli
from tests.vllm_fake import FakeVllm, Received

CLIP = "spliced.mp4"
# Text a hostile title, model or server could bring: it must stay text in every export.
INJECTED = "<img src=x onerror=\"document.title='pwned'\"><script>document.title='pwned'</script>"

VISUAL_ANSWER = (
    "BAND: strong\nRATIONALE: The scene changes completely at 3.0 s: the test pattern is replaced by colour "
    "bars with no transition."
)
CREDIBILITY_ANSWER = (
    "BAND: weak\nRATIONALE: The on-screen counter supports the claim made at 1 s.\n"
    "CLAIM: 1.0 | the narrator | The counter shows the time of recording | yes | a running counter | "
    "test pattern counter recording time"
)
AUDIO_ANSWER = "BAND: no\nRATIONALE: A steady tone throughout; no cut in the sound."


@pytest.fixture(scope="module")
def spliced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 s: 3 s of one source, then 3 s of another (a cut at 3.0 s), over a steady tone."""
    path = tmp_path_factory.mktemp("factcheck") / CLIP
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=3",
        "-f", "lavfi", "-i", "smptebars=s=320x240:r=25:d=3",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=6",
        "-filter_complex", "[0:v][1:v]concat=n=2:v=1:a=0[v]",
        "-map", "[v]", "-map", "2:a", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "25",
        "-c:a", "aac", "-shortest", str(path),
    )  # fmt: skip
    return path


@pytest.fixture
def clip(settings: Settings, spliced: Path) -> str:
    shutil.copyfile(spliced, settings.media_dir / CLIP)
    return CLIP


class CheckingGemini(FakeGemini):
    """The Gemini stand-in, answering each check's question with its own scripted answer."""

    def __init__(self, answers: dict[str, str]) -> None:
        super().__init__()
        self.answers = answers

    def default_reply(self, body: dict[str, Any]) -> Reply:
        asked = json.dumps(body)
        for marker, answer in self.answers.items():
            if marker in asked:
                evidence = [{"start_s": 2.5, "end_s": 3.5, "what": "the picture changes"}]
                return json_reply({"reasoning": "I watched it.", "answer": answer, "evidence": evidence})
        return super().default_reply(body)


ANSWERS = {
    "was edited or synthesised. Look": VISUAL_ANSWER,
    "List the factual claims": CREDIBILITY_ANSWER,
    "sound was edited": AUDIO_ANSWER,
}


def start_gemini(monkeypatch: pytest.MonkeyPatch, answers: dict[str, str]) -> CheckingGemini:
    fake = CheckingGemini(answers)
    fake.start()
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.base_url)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    return fake


@pytest.fixture
def checking_gemini(monkeypatch: pytest.MonkeyPatch) -> Iterator[CheckingGemini]:
    fake = start_gemini(monkeypatch, ANSWERS)
    yield fake
    fake.stop()


def small_request() -> AnalysisRequest:
    return AnalysisRequest(question="fact-check", rounds=2, frames=8, generation=GenerationSettings(max_new_tokens=48))


def judgement(report: Any, check: str) -> Any:
    found = next(c for c in report.checks if c.name == check)
    assert len(found.judgements) == 1
    return found.judgements[0]


def test_a_gemini_report_has_bands_cited_frames_claims_and_evidence(
    gemini_settings: Settings, clip: str, checking_gemini: CheckingGemini
):
    run = run_factcheck(clip, gemini_settings, "gemini", small_request())
    report = run.report
    visual = judgement(report, "visual")
    assert (visual.state, visual.band) == ("judged", "strong")
    assert "3.0 s" in visual.rationale
    assert [(m.start_s, m.end_s, m.what) for m in visual.moments] == [(2.5, 3.5, "the picture changes")]
    frame = run.stored.folder / visual.moments[0].frame_file
    assert frame.read_bytes()[:3] == b"\xff\xd8\xff" and abs(visual.moments[0].frame_s - 3.0) <= 0.04
    credibility = judgement(report, "credibility")
    assert credibility.band == "weak"
    [claim] = credibility.claims
    assert (claim.start_s, claim.who, claim.checkable) == (1.0, "the narrator", True)
    assert claim.search == "test pattern counter recording time"
    audio = judgement(report, "audio")
    assert (audio.state, audio.band) == ("judged", "no")  # Gemini hears the soundtrack
    # the evidence measured without a model stands beside the judgements
    cuts = [shot.start_s for shot in report.evidence.shots.shots[1:]]
    assert len(cuts) == 1 and abs(cuts[0] - 3.0) <= 0.1
    assert any("Shots: 2 shots; cuts at 3.0 s" in line for line in report.checks[0].signals)
    assert report.overall.suggested == "Edited or cropped" and report.overall.is_suggestion
    # the claims' words came from Gemini's digest, made once
    assert report.digest_summary
    # served from the store the second time, without asking Gemini again
    asked = len(checking_gemini.generate_requests())
    again = run_factcheck(clip, gemini_settings, "gemini", small_request())
    assert again.from_store and again.report == report
    assert len(checking_gemini.generate_requests()) == asked
    assert VALID_KEY not in (run.stored.folder / "report.json").read_text()


def test_an_answer_that_cannot_be_read_leaves_that_check_and_the_rest_stands(
    gemini_settings: Settings, clip: str, monkeypatch: pytest.MonkeyPatch
):
    prose = "Honestly it looks fine to me, nothing weird."
    fake = start_gemini(monkeypatch, {**ANSWERS, "was edited or synthesised. Look": prose})
    try:
        report = run_factcheck(clip, gemini_settings, "gemini", small_request()).report
    finally:
        fake.stop()
    visual = judgement(report, "visual")
    assert visual.state == "could not be read" and visual.band is None
    assert visual.raw_answer == prose
    assert judgement(report, "credibility").band == "weak"
    assert judgement(report, "audio").band == "no"
    assert report.overall.suggested == "Insufficient evidence"


def test_a_failing_engine_fails_one_check_not_the_report(
    gemini_settings: Settings, clip: str, checking_gemini: CheckingGemini
):
    from tests.gemini_fake import error_body

    # the digest, then the visual check answered 400 (not retried); the other checks answer
    checking_gemini.script(
        json_reply({"summary": "s", "language": "en", "scenes": [], "transcript": [], "on_screen_text": [],
                    "claims": [], "audio_notes": []}),
        Reply(error_body(400, "INVALID_ARGUMENT", "the video could not be processed"), status=400),
    )  # fmt: skip
    report = run_factcheck(clip, gemini_settings, "gemini", small_request()).report
    visual = judgement(report, "visual")
    assert visual.state == "failed" and "could not be processed" in visual.reason
    assert judgement(report, "credibility").state == "judged"


def r15_answers(request: Received) -> str:
    """vLLM stand-in: R1.5-shaped answers in the checks' form, glue while the loop asks for it."""
    glue = "<glue>[(2.6, 3.4)]</glue>" if "<glue>" in request.prompt else ""
    if "sound was edited" in request.prompt:
        answer = AUDIO_ANSWER
    elif "List the factual claims" in request.prompt:
        answer = CREDIBILITY_ANSWER
    else:
        answer = VISUAL_ANSWER
    return f"<think>Round by round.</think><answer>{answer}</answer>{glue}"


def test_the_r15_loop_cites_its_glue_and_cannot_hear(settings: Settings, clip: str):
    fake = FakeVllm(reply=r15_answers).start()
    try:
        vllm = settings.model_copy(update={"vllm_url": [fake.base_url], "vllm_backoff_s": 0.02})
        report = run_factcheck(clip, vllm, "vllm", small_request()).report
    finally:
        fake.stop()
    visual = judgement(report, "visual")
    assert (visual.state, visual.band) == ("judged", "strong")
    assert [(m.start_s, m.end_s) for m in visual.moments] == [(2.6, 3.4)]
    audio = judgement(report, "audio")
    assert audio.state == "not applicable" and "no audio input" in audio.reason
    assert not any("sound was edited" in r.prompt for r in fake.received)  # never asked
    assert any("Silences" in line for line in next(c for c in report.checks if c.name == "audio").signals)
    assert any("can" in note and "hear" in note for note in report.notes)


def test_the_tiny_local_model_leaves_unreadable_checks_and_the_report_stands(
    settings: Settings, clip: str, tiny_model: Path
):
    request = AnalysisRequest(question="x", rounds=1, frames=4, generation=GenerationSettings(max_new_tokens=8))
    run = run_factcheck(clip, settings, "local", request, model_path=tiny_model)
    report = run.report
    for check in ("visual", "credibility"):
        found = judgement(report, check)
        assert found.state in ("judged", "could not be read")  # random weights write what they write
        if found.state == "could not be read":
            assert found.raw_answer is not None
    audio = judgement(report, "audio")
    assert audio.state == "not applicable" and "no audio input" in audio.reason
    assert report.evidence.shots.shots and report.overall.suggested


def test_a_persons_rating_sits_beside_the_report_which_stays_byte_for_byte(
    gemini_settings: Settings, clip: str, checking_gemini: CheckingGemini
):
    run = run_factcheck(clip, gemini_settings, "gemini", small_request())
    report_file = run.stored.folder / "report.json"
    before = report_file.read_bytes()
    store = FactCheckStore(gemini_settings)
    rated = store.rate(run.stored, "Edited or cropped", "A. Checker", note="Spliced at 3 s.", claim="Filmed live.")
    assert report_file.read_bytes() == before
    again = run_factcheck(clip, gemini_settings, "gemini", small_request())
    assert again.from_store and again.stored.rating == rated.rating
    assert again.stored.rating.name == "A. Checker" and again.report.overall.suggested == "Edited or cropped"


def test_the_cli_prints_a_report_and_writes_the_html(tmp_path: Path, spliced: Path, monkeypatch):
    fake = start_gemini(monkeypatch, ANSWERS)
    try:
        media = tmp_path / "videos"
        media.mkdir()
        shutil.copyfile(spliced, media / CLIP)
        html = tmp_path / "report.html"
        env = {"GEMINI_API_KEY": VALID_KEY, "GOOGLE_GEMINI_BASE_URL": fake.base_url}
        done = run_cli(["factcheck", CLIP, "--model", "gemini", "--html", str(html)], tmp_path, **env)
        out, err = done.stdout.decode(), done.stderr.decode()
        assert done.returncode == 0, err
        assert "Visual artifacts:" in out and "strong evidence" in out
        assert "Suggested rating (a suggestion for a person, not a verdict): Edited or cropped" in out
        assert "Keyframes (one per shot" in out and re.search(r"shot 2 at [3-5]\.\d\d s: /.+\.jpg", out)
        assert html.read_text().startswith("<!doctype html>")
        as_json = run_cli(["factcheck", CLIP, "--model", "gemini", "--json"], tmp_path, **env)
        assert as_json.returncode == 0 and "note: the report stored" in as_json.stderr.decode()
        assert json.loads(as_json.stdout)["checks"][0]["judgements"][0]["band"] == "strong"
        missing = run_cli(["factcheck", "nope.mp4", "--model", "gemini"], tmp_path, **env)
        errors = [line for line in missing.stderr.decode().splitlines() if not line.startswith("[")]  # not progress
        assert missing.returncode == 2
        assert errors == [f"error: No such file in the media folder {media}: 'nope.mp4'."]
    finally:
        fake.stop()


def test_the_html_report_is_inert_and_offline_in_chromium(
    gemini_settings: Settings, clip: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    from playwright.sync_api import sync_playwright

    beacon = "http://127.0.0.1:9/beacon.png"  # any request at all is counted, then refused
    hostile = {marker: f"{answer}\n{INJECTED}<img src='{beacon}'>" for marker, answer in ANSWERS.items()}
    fake = start_gemini(monkeypatch, hostile)
    try:
        run = run_factcheck(clip, gemini_settings, "gemini", small_request())
    finally:
        fake.stop()
    rated = FactCheckStore(gemini_settings).rate(run.stored, "Edited or cropped", f"Checker {INJECTED}")
    html = tmp_path / "report.html"
    write_html(rated, html)
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        page = browser.new_page()
        page.on("request", lambda request: requests.append(request.url))
        page.route("http://**/*", lambda route: route.abort())
        page.route("https://**/*", lambda route: route.abort())
        page.goto(html.as_uri())
        page.wait_for_load_state("load")
        images = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.naturalWidth, i.src.slice(0, 22)])")
        title = page.title()
        body = page.inner_text("body")
        browser.close()
    kept = len(run.report.evidence.shots.keyframes) + sum(
        len(j.moments) for c in run.report.checks for j in c.judgements
    )
    assert len(images) == kept >= 3
    assert all(width > 0 and src == "data:image/jpeg;base64" for width, src in images)
    assert [url for url in requests if not url.startswith(("file:", "data:"))] == []
    assert title.startswith("vChat fact-check report") and "pwned" not in title
    assert INJECTED in body  # shown as text
    assert "Edited or cropped" in body and "Checker" in body


def test_the_cli_refuses_a_missing_html_folder(tmp_path: Path, spliced: Path):
    done = run_cli(["factcheck", "x.mp4", "--model", "gemini", "--html", str(tmp_path / "no" / "r.html")], tmp_path)
    assert done.returncode == 2 and "does not exist" in done.stderr.decode()


def test_the_evidence_alone_needs_no_model_weights_or_key(tmp_path: Path, spliced: Path):
    media = tmp_path / "videos"
    media.mkdir()
    shutil.copyfile(spliced, media / CLIP)
    nothing = {"VCHAT_MODEL_ID": "nobody/not-a-model", "VCHAT_PRESEED_DIR": str(tmp_path / "none")}
    nothing["GEMINI_API_KEY"] = ""
    done = run_cli(["factcheck", CLIP, "--measure-only"], tmp_path, **nothing)
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()
    assert "Shots: 2 shots; cuts at 3.0 s" in out and "Silences: No silence found." in out
    assert "No model was asked" in out and "Suggested rating" not in out
    assert re.search(r"shot 1 at \d\.\d\d s: /.+/shot-001_\d\.\d{3}s\.jpg", out)
    as_json = run_cli(["factcheck", CLIP, "--measure-only", "--json"], tmp_path, **nothing)
    evidence = json.loads(as_json.stdout)
    assert evidence["reused"] is True and len(evidence["shots"]["shots"]) == 2
    both = run_cli(["factcheck", CLIP, "--measure-only", "--html", str(tmp_path / "r.html")], tmp_path, **nothing)
    assert both.returncode == 2 and "--measure-only makes none" in both.stderr.decode()
    assert not (tmp_path / "data" / "factchecks").exists()  # no report was made
