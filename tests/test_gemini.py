"""The Gemini backend through the real google-genai SDK against a local server speaking its protocol."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil

import pytest

from core.analysis.digest import get_digest
from core.analysis.flows import flow_for
from core.config import Settings
from core.errors import InputError
from core.media.pipeline import MediaAsset, prepare_media
from core.models.base import AnalysisRequest
from core.models.gemini.client import GeminiClient, GeminiError, GeminiInputError
from tests.gemini_fake import (
    VALID_KEY,
    FakeGemini,
    Reply,
    blocked_reply,
    decode_b64,
    error_body,
    json_reply,
    rate_limited,
    text_reply,
)
from tests.support import FlowDriver, run_cli

QUESTION = AnalysisRequest(question="What is shown?")
PARTIAL = '{"reasoning": "The vid'  # an answer cut off by a safety stop


@pytest.fixture
def asset(gemini_settings: Settings, clips) -> MediaAsset:
    shutil.copyfile(clips["h264"], gemini_settings.media_dir / "clip.mp4")
    return prepare_media("clip.mp4", gemini_settings)


def _backend(settings: Settings, **changes: object) -> FlowDriver:
    return FlowDriver("gemini", settings.model_copy(update=changes))


def _video_parts(fake: FakeGemini) -> list[dict]:
    return [p for r in fake.generate_requests() for c in r["json"]["contents"] for p in c["parts"] if "text" not in p]


def test_a_small_video_goes_inline_and_the_answer_carries_its_evidence(gemini, gemini_settings, asset):
    result = _backend(gemini_settings).analyze(asset, QUESTION.model_copy(update={"fps": 2.0}))
    assert result.answer == "A test pattern"
    assert result.model.backend == "gemini" and result.model.name == "gemini-flash-latest"
    assert [(s.start_s, s.end_s) for s in result.rounds[0].segments] == [(0.5, 1.5)]
    assert result.gemini.path_taken == "inline" and result.gemini.attempts == 1
    assert result.gemini.total_tokens == 1240 and result.rounds[0].tokens_in == 1200
    (part,) = _video_parts(gemini)
    sent = decode_b64(part["inlineData"]["data"])
    assert hashlib.sha256(sent).digest() == hashlib.sha256(asset.sanitized_path.read_bytes()).digest()
    assert part["videoMetadata"] == {"fps": 2.0}
    request = gemini.generate_requests()[0]
    assert request["path"] == "/v1beta/models/gemini-flash-latest:generateContent"
    schema = request["json"]["generationConfig"]["responseSchema"]
    assert set(schema["properties"]) == {"reasoning", "answer", "evidence"}
    assert not gemini.files  # nothing left at "Google"


def test_a_large_video_is_uploaded_polled_until_active_and_deleted(gemini, gemini_settings, asset):
    gemini.processing_polls = 3
    result = _backend(gemini_settings, gemini_inline_max_mb=0.001).analyze(asset, QUESTION)
    assert result.answer == "A test pattern" and result.gemini.path_taken == "upload"
    (file,) = gemini.files.values()
    assert bytes(file.data) == asset.sanitized_path.read_bytes()
    polls = [r for r in gemini.requests if r["method"] == "GET"]
    assert len(polls) == 4  # three PROCESSING, then ACTIVE
    (part,) = _video_parts(gemini)
    assert part["fileData"]["file_uri"].endswith(file.name)
    assert file.deleted


def test_an_upload_kept_for_reuse_is_not_uploaded_twice(gemini, gemini_settings, asset):
    backend = _backend(gemini_settings, gemini_inline_max_mb=0.001, gemini_keep_uploads=True)
    first = backend.analyze(asset, QUESTION)
    second = backend.analyze(asset, QUESTION)
    assert len(gemini.files) == 1 and not next(iter(gemini.files.values())).deleted
    assert not first.gemini.reused_upload and second.gemini.reused_upload


def test_a_failed_upload_is_reported_and_deleted(gemini, gemini_settings, asset):
    gemini.final_state = "FAILED"
    with pytest.raises(GeminiError, match="could not process the uploaded video"):
        _backend(gemini_settings, gemini_inline_max_mb=0.001).analyze(asset, QUESTION)
    assert next(iter(gemini.files.values())).deleted
    assert not gemini.generate_requests()


def test_an_upload_still_processing_at_the_deadline_is_an_error(gemini, gemini_settings, asset):
    gemini.processing_polls = 10_000
    backend = _backend(gemini_settings, gemini_inline_max_mb=0.001, gemini_max_wait_s=0.5)
    with pytest.raises(GeminiError, match=r"still processing the upload after 0\.5 s"):
        backend.analyze(asset, QUESTION)


def test_a_rate_limit_is_retried_and_the_attempts_recorded(gemini, gemini_settings, asset):
    gemini.script(rate_limited(), Reply(error_body(503, "UNAVAILABLE", "overloaded"), status=503))
    result = _backend(gemini_settings).analyze(asset, QUESTION)
    assert result.answer == "A test pattern"
    assert result.gemini.attempts == 3 and len(gemini.generate_requests()) == 3
    assert any("3 attempt(s)" in note for note in result.notes)


def test_a_daily_quota_is_not_retried(gemini, gemini_settings, asset):
    gemini.script(rate_limited(daily=True))
    with pytest.raises(GeminiError, match="daily quota"):
        _backend(gemini_settings).analyze(asset, QUESTION)
    assert len(gemini.generate_requests()) == 1


def test_server_errors_stop_at_the_retry_budget(gemini, gemini_settings, asset):
    gemini.script(*[Reply(error_body(500, "INTERNAL", "boom"), status=500)] * 10)
    with pytest.raises(GeminiError, match="Gemini is unavailable"):
        _backend(gemini_settings, gemini_retries=2).analyze(asset, QUESTION)
    assert len(gemini.generate_requests()) == 3


def test_a_bad_key_is_a_clear_input_error_without_the_key(gemini, gemini_settings, asset):
    wrong = "AIzaWRONGwrongWRONGwrongWRONGwrong12345"
    with pytest.raises(GeminiInputError) as caught:
        FlowDriver("gemini", gemini_settings, api_key=wrong).analyze(asset, QUESTION)
    assert caught.value.one_line().startswith("Gemini refused the API key.")
    assert caught.value.exit_code == 2 and wrong not in str(caught.value)
    assert len(gemini.generate_requests()) == 1  # a 400 is not retried


def test_ping_checks_key_and_model_without_generating(gemini, gemini_settings):
    assert GeminiClient(gemini_settings).ping() == "Fake gemini-flash-latest"
    with pytest.raises(GeminiInputError, match="no model 'gemini-0'"):
        GeminiClient(gemini_settings, model="gemini-0").ping()
    with pytest.raises(GeminiInputError, match="refused the API key"):
        GeminiClient(gemini_settings, api_key="wrong").ping()
    assert not gemini.generate_requests()


def test_no_key_at_all_is_refused_before_any_request(gemini, settings, asset):
    with pytest.raises(GeminiInputError, match="No Gemini API key"):
        flow_for("gemini", settings).check(QUESTION)
    assert not gemini.requests


def test_an_unknown_model_says_so(gemini, gemini_settings, asset):
    with pytest.raises(GeminiInputError, match="no model 'gemini-nope'"):
        _backend(gemini_settings).analyze(asset, QUESTION.model_copy(update={"gemini_model": "gemini-nope"}))


def test_a_timeout_is_a_clear_error_and_not_retried(gemini, gemini_settings, asset):
    gemini.script(Reply({}, delay_s=1.6))
    with pytest.raises(GeminiError, match="did not answer to the question within 1 s"):
        _backend(gemini_settings, gemini_timeout_s=1).analyze(asset, QUESTION)
    assert len(gemini.generate_requests()) == 1


@pytest.mark.parametrize(
    "reply, reason",
    [
        (blocked_reply(), "blocked \\(SAFETY\\)"),
        (Reply({"candidates": [{"finishReason": "SAFETY", "index": 0}]}), "stopped \\(SAFETY\\)"),
        (Reply({"candidates": []}), "returned no answer"),
        (
            Reply({"candidates": [{"content": {"parts": [{"text": PARTIAL}]}, "finishReason": "SAFETY"}]}),
            "stopped \\(SAFETY\\)",
        ),
    ],
)
def test_a_blocked_answer_is_an_error_not_an_empty_success(gemini, gemini_settings, asset, reply, reason):
    gemini.script(reply)
    with pytest.raises(GeminiError, match=reason):
        _backend(gemini_settings).analyze(asset, QUESTION)


def test_malformed_json_is_a_clear_error_and_the_raw_text_is_kept(gemini, gemini_settings, asset):
    gemini.script(text_reply('{"reasoning": "cut off", "answer": '))
    with pytest.raises(GeminiError, match="was not valid JSON") as caught:
        _backend(gemini_settings).analyze(asset, QUESTION)
    assert caught.value.raw_text == '{"reasoning": "cut off", "answer": '
    (kept,) = (gemini_settings.data_dir / "gemini_raw").iterdir()
    assert str(kept) in caught.value.one_line() and kept.read_text() == caught.value.raw_text


def test_impossible_evidence_times_are_dropped_with_the_reason(gemini, gemini_settings, asset):
    evidence = [{"start_s": 1.0, "end_s": 0.5, "what": "x"}, {"start_s": 30, "end_s": 40, "what": "y"}]
    gemini.script(json_reply({"reasoning": "r", "answer": "a", "evidence": evidence}))
    record = _backend(gemini_settings).analyze(asset, QUESTION).rounds[0]
    assert not record.segments
    assert [d.reason for d in record.dropped_segments] == ["end is not after start", "outside the video (0-3.0 s)"]


def test_a_youtube_url_goes_to_gemini_without_a_download(gemini, gemini_settings):
    url = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
    result = _backend(gemini_settings).analyze_youtube(url, QUESTION)
    (part,) = _video_parts(gemini)
    assert part["fileData"]["file_uri"] == url and result.gemini.path_taken == "youtube"
    assert not (gemini_settings.data_dir / "media").exists()


def test_the_digest_is_schema_checked_cleaned_and_cached(gemini, gemini_settings, asset):
    digest = {
        "summary": "s",
        "language": "en",
        "scenes": [
            {"start_s": 0, "end_s": 5, "description": "runs past the end"},
            {"start_s": 9, "end_s": 12, "description": "after the end"},
        ],
        "transcript": [{"start_s": 0.1, "end_s": 0.9, "speaker": "narrator", "text": "Hi"}],
        "on_screen_text": [],
        "claims": [{"start_s": 0.5, "speaker": "narrator", "claim": "It is sunny."}],
        "audio_notes": [],
    }
    gemini.script(json_reply(digest))
    record = get_digest(asset, gemini_settings)
    assert [(s.start_s, s.end_s) for s in record.digest.scenes] == [(0, 3.0)]
    assert record.digest.claims[0].claim == "It is sunny." and record.notes
    again = get_digest(asset, gemini_settings)
    assert again.reused and again.digest == record.digest
    assert len(gemini.generate_requests()) == 1
    get_digest(asset, gemini_settings, model="gemini-2.5-flash")  # another model: another digest
    assert len(gemini.generate_requests()) == 2


def test_a_stored_digest_that_no_longer_parses_is_asked_again(gemini, gemini_settings, asset):
    first = get_digest(asset, gemini_settings)
    (stored,) = (gemini_settings.data_dir / "digests" / asset.sha256).iterdir()
    stored.write_text('{"digest": {"language": "en"}}')  # an older shape, or a damaged file
    again = get_digest(asset, gemini_settings)
    assert not again.reused and again.digest == first.digest
    assert len(gemini.generate_requests()) == 2


def test_the_key_reaches_no_file_no_log_and_no_error(gemini, gemini_settings, asset, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    backend = _backend(gemini_settings, gemini_inline_max_mb=0.001, gemini_keep_uploads=True)
    gemini.script(rate_limited())
    result = backend.analyze(asset, QUESTION)
    get_digest(asset, gemini_settings)
    gemini.script(text_reply("not json"), Reply(error_body(403, "PERMISSION_DENIED", f"key {VALID_KEY} denied"), 403))
    errors = []
    for _ in range(2):
        try:
            backend.analyze(asset, QUESTION)
        except GeminiError as exc:
            errors.append(exc)
        except GeminiInputError as exc:
            errors.append(exc)
    assert len(errors) == 2 and "[key]" in str(errors[1])
    assert VALID_KEY in gemini.everything_received()  # the key was really sent (to the server only)
    assert VALID_KEY not in result.model_dump_json()
    for error in errors:
        assert VALID_KEY not in str(error) and VALID_KEY not in repr(error.__dict__)
    assert VALID_KEY not in caplog.text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert VALID_KEY.encode() not in path.read_bytes(), path


def test_cli_analyze_and_digest_with_gemini(gemini, tmp_path, clips):
    (tmp_path / "videos").mkdir()
    shutil.copyfile(clips["h264"], tmp_path / "videos" / "clip.mp4")
    env = {"GOOGLE_GEMINI_BASE_URL": gemini.base_url, "GEMINI_API_KEY": VALID_KEY}
    proc = run_cli(["analyze", "clip.mp4", "-Q", "What is shown?", "--model", "gemini", "-q"], tmp_path, **env)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip() == "A test pattern"
    assert "gemini: gemini-flash-latest, video inline, 1 request(s), 1240 tokens" in proc.stderr.decode()
    proc = run_cli(["digest", "clip.mp4", "--json", "-q"], tmp_path, **env)
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(proc.stdout)["digest"]["claims"][0]["claim"] == "This was filmed today."
    proc = run_cli(["digest", "clip.mp4", "-q"], tmp_path, **env)
    assert "Claims:\n      0.5 s  speaker 1: This was filmed today." in proc.stdout.decode()
    for stream in (proc.stdout, proc.stderr):
        assert VALID_KEY.encode() not in stream


@pytest.mark.parametrize(
    "env, message",
    [
        ({"GEMINI_API_KEY": "AIzaWRONGwrongWRONGwrongWRONGwrong12345"}, "error: Gemini refused the API key."),
        ({"GEMINI_API_KEY": ""}, "error: No Gemini API key."),
    ],
)
def test_cli_gemini_key_problems_exit_2_with_one_line(gemini, tmp_path, clips, env, message):
    (tmp_path / "videos").mkdir()
    shutil.copyfile(clips["h264"], tmp_path / "videos" / "clip.mp4")
    args = ["analyze", "clip.mp4", "-Q", "What?", "--model", "gemini", "-q"]
    proc = run_cli(args, tmp_path, GOOGLE_GEMINI_BASE_URL=gemini.base_url, **env)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert line.startswith(message) and "WRONG" not in line


@pytest.mark.parametrize(
    ("backend", "url", "message"),
    [
        ("gemini", "https://example.org/clip.mp4", "only from a public YouTube URL"),
        ("local", "https://www.youtube.com/watch?v=dQw4w9WgXcQ", "Only Gemini can read a video from its URL"),
    ],
)
def test_reading_by_url_is_refused_where_it_cannot_work(gemini, gemini_settings, tiny_model, backend, url, message):
    from core.analysis.runner import run_analysis

    model_path = tiny_model if backend == "local" else None
    with pytest.raises(InputError, match=message):
        run_analysis(url, gemini_settings, backend, QUESTION, model_path=model_path, gemini_reads_url=True)
    assert not gemini.requests and not (gemini_settings.data_dir / "media").exists()
