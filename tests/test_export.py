"""The JSON download (`AnalysisRun.result_json`, built by core/analysis/export.py) stands on its own:
beside the answer it carries where the video came from (file name, URL, uploader, when it was
fetched), the provenance read from the original bytes (C2PA included), the probe and what
sanitizing did; a video Gemini read from its URL says that nothing was downloaded; linked mode's
digest is in it; no Gemini key and no path on this server ever is."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from core.analysis.runner import AnalysisRun, run_analysis
from core.config import Settings
from core.models.base import AnalysisRequest, GenerationSettings
from tests.gemini_fake import VALID_KEY

pytestmark = pytest.mark.timeout(300)

REQUEST = AnalysisRequest(
    question="What is shown?",
    rounds=1,
    frames=4,
    max_pixels=112 * 112,
    generation=GenerationSettings(max_new_tokens=16),
)


def exported(run: AnalysisRun) -> dict[str, Any]:
    """What the download button serves, read back."""
    return json.loads(run.result_json)


def test_a_local_files_export_carries_source_provenance_probe_and_sanitize(
    settings: Settings, tiny_model: Path, fixtures_dir: Path
):
    shutil.copyfile(fixtures_dir / "video1.mp4", settings.media_dir / "video1.mp4")  # C2PA-signed
    run = run_analysis("video1.mp4", settings, "local", REQUEST, model_path=tiny_model)
    record = exported(run)

    assert record["question"] == "What is shown?" and record["answer"] == run.result.answer
    assert record["result"] == run.data  # the whole stored result, unchanged
    source = record["source"]
    assert (source["kind"], source["filename"], source["downloaded"]) == ("local", "video1.mp4", True)
    assert source["fetched_at"] == run.asset.source.fetched_at and source["fetched_at"]
    media = record["media"]
    assert media["sha256"] == run.asset.sha256 == record["result"]["media_sha256"]
    c2pa = media["provenance"]["c2pa"]
    assert c2pa["state"] == "valid" and "not on a trust list" in c2pa["summary"]
    assert media["provenance"]["creation_time"] == "2022-08-08T21:49:00.000000Z"
    assert media["probe"]["duration_s"] == pytest.approx(2.0, abs=0.2)
    assert (media["probe"]["video_codec"], media["probe"]["width"], media["probe"]["height"]) == ("h264", 720, 1280)
    assert media["sanitize"]["path_taken"] == "remux" and media["sanitize"]["plan"]["video"] == "copy"
    assert str(settings.data_dir) not in run.result_json and str(settings.media_dir) not in run.result_json


def test_a_downloaded_urls_export_names_the_url_and_when_it_was_fetched(
    settings: Settings, tiny_model: Path, clips: dict[str, Path], server
):  # type: ignore[no-untyped-def]
    url = server.serve_file("/news/clip.mp4", clips["h264"])
    run = run_analysis(url, settings, "local", REQUEST, model_path=tiny_model)
    source = exported(run)["source"]
    assert source["kind"] == "url" and source["url"] == url and source["downloaded"] is True
    assert "uploader" in source and "upload_date" in source and source["fetched_at"]
    again = run_analysis(url, settings, "local", REQUEST, model_path=tiny_model)  # served from the store
    assert again.from_store and exported(again)["media"]["sha256"] == exported(run)["media"]["sha256"]
    assert exported(again)["source"]["reused_download"] is True


def test_a_youtube_video_gemini_read_itself_says_nothing_was_downloaded(gemini, gemini_settings: Settings):
    url = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
    run = run_analysis(url, gemini_settings, "gemini", REQUEST, gemini_api_key=VALID_KEY, gemini_reads_url=True)
    record = exported(run)
    assert record["source"]["url"] == url and record["source"]["downloaded"] is False
    assert "no copy was downloaded" in record["source"]["note"] and record["media"] is None
    assert record["answer"] == "A test pattern" and record["result"]["gemini"]["path_taken"] == "youtube"
    assert VALID_KEY not in run.result_json


def test_a_linked_export_carries_the_digest_and_never_the_key(
    gemini, gemini_settings: Settings, tiny_model: Path, clips: dict[str, Path]
):
    shutil.copyfile(clips["h264"], gemini_settings.media_dir / "clip.mp4")
    run = run_analysis("clip.mp4", gemini_settings, "linked", REQUEST, model_path=tiny_model, gemini_api_key=VALID_KEY)
    record = exported(run)
    digest = record["result"]["digest"]
    assert digest["model"] == "gemini-flash-latest"
    assert digest["digest"]["summary"] == "A person waves at the camera, then a title card appears."
    assert digest["digest"]["claims"][0]["claim"] == "This was filmed today."
    assert record["source"]["filename"] == "clip.mp4" and record["media"]["provenance"]["c2pa"]["state"] == "none"
    assert VALID_KEY not in run.result_json
