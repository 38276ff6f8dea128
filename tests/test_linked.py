"""Linked mode end to end: Gemini's digest (fake server, real SDK) + the tiny local model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core.analysis.linked import compare_answers
from core.analysis.spans import shared_seconds, short_answer
from core.config import Settings
from core.media.pipeline import MediaAsset, prepare_media
from core.models.base import AnalysisRequest, GeminiUsage, Segment
from core.models.gemini.engine import GeminiEngine
from tests.gemini_fake import VALID_KEY, text_reply
from tests.support import FlowDriver, run_cli

REQUEST = AnalysisRequest(question="What is shown?", rounds=2, frames=4, max_pixels=112 * 112)


@pytest.fixture
def tiny(tiny_model: Path) -> Path:
    return tiny_model


@pytest.fixture
def asset(gemini_settings: Settings, clips) -> MediaAsset:
    shutil.copyfile(clips["h264"], gemini_settings.media_dir / "clip.mp4")
    return prepare_media("clip.mp4", gemini_settings)


def test_linked_gives_both_answers_the_digest_as_context_and_a_verdict(gemini, gemini_settings, asset, tiny):
    result = FlowDriver("linked", gemini_settings, tiny).analyze(asset, REQUEST)
    assert result.model.backend == "linked" and result.model.name.endswith("+ gemini-flash-latest")
    # the local loop ran both rounds with the digest in its prompt
    assert len(result.rounds) == 2
    assert all("A person waves at the camera" in record.prompt for record in result.rounds)
    assert "0.2 s, speaker 1: Hello there." in result.request.context
    linked = result.linked
    assert linked.gemini_answer == "A test pattern" and linked.local_answer == result.rounds[-1].answer
    assert [(s.start_s, s.end_s) for s in linked.gemini_segments] == [(0.5, 1.5)]
    # the tiny model's nonsense is not a short answer, so Gemini judged; the fake says they disagree
    assert linked.agreement == "disagree" and linked.method.startswith("Gemini as judge")
    assert "They DISAGREE" in result.answer and "Gemini (gemini-flash-latest): A test pattern" in result.answer
    assert [r["path"].endswith(":generateContent") for r in gemini.generate_requests()] == [True] * 3
    assert [call.what for call in result.gemini.calls] == ["for the digest", "to the question", "judging agreement"]
    # a second question on the same video reuses the stored digest
    again = FlowDriver("linked", gemini_settings, tiny).analyze(asset, REQUEST.model_copy(update={"question": "Who?"}))
    assert len(gemini.generate_requests()) == 5 and "Digest by gemini-flash-latest (from the cache)" in again.notes


def test_the_gemini_half_runs_before_the_local_models_turn(gemini, gemini_settings, asset, tiny):
    from core.analysis.runner import run_analysis

    stages: list[str] = []
    run = run_analysis(
        "clip.mp4", gemini_settings, "linked", REQUEST, model_path=tiny, on_stage=lambda s, m, f: stages.append(s)
    )
    assert stages.index("remote") < stages.index("queue" if "queue" in stages else "model")
    assert run.result.linked is not None and run.result.linked.gemini_answer == "A test pattern"
    assert len(gemini.generate_requests()) == 3  # digest, answer, judge: preparing first asks nothing twice


@pytest.mark.parametrize(
    "local, remote, verdict",
    [("Yes.", "yes, clearly", "agree"), ("(b)", "A", "disagree"), ("3", "3.0 people", "agree")],
)
def test_short_answers_are_compared_without_asking_gemini(gemini, gemini_settings, local, remote, verdict):
    usage = GeminiUsage(model="gemini-flash-latest")
    engine = GeminiEngine(gemini_settings)
    found = compare_answers(engine, engine.client(), "Q?", local, remote, usage)
    assert found[:2] == (verdict, "short answers compared exactly")
    assert not gemini.requests and not usage.calls


def test_a_failed_judge_call_leaves_agreement_unclear(gemini, gemini_settings):
    gemini.script(text_reply("no json here"))
    usage = GeminiUsage(model="gemini-flash-latest")
    engine = GeminiEngine(gemini_settings)
    agreement, method, explanation = compare_answers(engine, engine.client(), "Q?", "a red ball", "a blue cube", usage)
    assert (agreement, method) == ("unclear", "Gemini as judge (failed)") and "not valid JSON" in explanation


@pytest.mark.parametrize(
    "text, expected",
    [
        ("B", "option b"),
        ("(c) a cat", "option c"),
        ("Yes, it is.", "yes"),
        ("The answer is: no", "no"),
        ("3 people", "3.0"),
        ("A dog runs across a field.", None),
        ("", None),
    ],
)
def test_short_answer_forms(text, expected):
    assert short_answer(text) == expected


def test_shared_seconds_counts_overlap_once():
    a = [Segment(start_s=0, end_s=4), Segment(start_s=2, end_s=6)]
    b = [Segment(start_s=5, end_s=8), Segment(start_s=1, end_s=2)]
    assert shared_seconds(a, b) == 2.0


def test_cli_analyze_linked(gemini, tmp_path, clips, tiny):
    (tmp_path / "videos").mkdir()
    shutil.copyfile(clips["h264"], tmp_path / "videos" / "clip.mp4")
    args = [
        "analyze",
        "clip.mp4",
        "-Q",
        "What is shown?",
        "--model",
        "linked",
        "--model-path",
        str(tiny),
        "--rounds",
        "2",
        "--frames",
        "4",
        "--max-pixels",
        str(112 * 112),
        "--json",
        "-q",
    ]
    proc = run_cli(args, tmp_path, GOOGLE_GEMINI_BASE_URL=gemini.base_url, GEMINI_API_KEY=VALID_KEY)
    assert proc.returncode == 0, proc.stderr.decode()
    result = json.loads(proc.stdout)
    assert result["linked"]["agreement"] == "disagree" and result["gemini"]["path_taken"] == "inline"
    assert len(result["rounds"]) == 2 and result["gemini_rounds"][0]["answer"] == "A test pattern"
    assert VALID_KEY not in proc.stdout.decode()
    stored = "".join(p.read_text(errors="ignore") for p in (tmp_path / "data").rglob("*.json"))
    assert stored and VALID_KEY not in stored


def test_cli_linked_without_a_key_fails_before_loading_anything(tmp_path, tiny, gemini, clips):  # type: ignore[no-untyped-def]
    (tmp_path / "videos").mkdir()
    shutil.copyfile(clips["h264_b"], tmp_path / "videos" / "x.mp4")
    args = ["analyze", "x.mp4", "-Q", "What?", "--model", "linked", "--model-path", str(tiny)]
    proc = run_cli(args, tmp_path, GOOGLE_GEMINI_BASE_URL=gemini.base_url, GEMINI_API_KEY="")
    err = proc.stderr.decode()
    assert proc.returncode == 2 and err.splitlines()[-1].startswith("error: No Gemini API key.")
    assert "[sanitize]" not in err and "[model]" not in err  # the video was checked, nothing slow was done
