"""Preflight: the input is checked before the engine, the engine's readiness is said before Analyze,
and a video can be inspected (source, provenance, probe) with no model at all."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from core.analysis.readiness import readiness
from core.config import Settings
from core.media.fetch import url_from_field
from core.models.base import AnalysisRequest
from core.models.local.engine import LocalEngine
from core.models.local.host import HOST
from tests.gemini_fake import VALID_KEY
from tests.support import LocalServer, app_env, button, new_app, run_cli, shown

MISSING = "nobody/not-a-model"


def request(**changes: object) -> AnalysisRequest:
    return AnalysisRequest(**{"question": "What is shown?", "frames": 8, **changes})


# --- the input before the engine ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "said"),
    [
        ("notes.txt", "is not a video"),
        ("absent.mp4", "No such file in the media folder"),
        ("http://127.0.0.1:9/clip.mp4", "Refused to fetch from '127.0.0.1': it is a loopback address"),
    ],
)
def test_a_bad_input_is_reported_before_missing_weights(tmp_path: Path, source: str, said: str):
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "notes.txt").write_text("Minutes of the meeting, not a video at all.\n" * 20)
    proc = run_cli(["analyze", source, "-Q", "What is shown?"], tmp_path, VCHAT_MODEL_ID=MISSING)
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert said in err and "not on this machine" not in err


def test_missing_weights_are_reported_before_sanitizing_a_good_video(tmp_path: Path, clips: dict[str, Path]):
    (tmp_path / "videos").mkdir()
    shutil.copyfile(clips["h264_b"], tmp_path / "videos" / "clip.mp4")
    proc = run_cli(["analyze", "clip.mp4", "-Q", "What is shown?"], tmp_path, VCHAT_MODEL_ID=MISSING)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and f"The model {MISSING} is not on this machine" in err
    assert "[probe]" in err and "[sanitize]" not in err
    assert not list((tmp_path / "data").rglob("sanitized"))


# --- readiness ----------------------------------------------------------------------------------


def test_local_readiness_says_where_the_weights_are_and_whether_loaded(settings: Settings, tiny_model: Path):
    local = settings.model_copy(update={"model_path": tiny_model})
    HOST.unload()
    ready = readiness("local", local, request())
    assert [line.state for line in ready] == ["ready", "ready"]
    assert ready[0].text == f"Weights: {tiny_model} (VCHAT_MODEL_PATH)"
    assert ready[1].text.startswith("Not loaded yet: the first analysis loads it")
    HOST.load(local)
    assert readiness("local", local, request())[1].text == "Loaded in memory"


def test_missing_weights_block_with_how_to_get_them(settings: Settings):
    missing = settings.model_copy(update={"model_id": MISSING, "preseed_dir": settings.data_dir / "none"})
    [line] = readiness("local", missing, request())
    assert line.state == "blocked" and line.text == f"The model {MISSING} is not on this machine."
    assert "hf download" in line.hint


def test_readiness_never_downloads(settings: Settings, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    allowed = settings.model_copy(
        update={"model_id": MISSING, "preseed_dir": settings.data_dir / "none", "model_download": True}
    )
    [line] = readiness("local", allowed, request())
    assert line.state == "note" and "the first analysis downloads them" in line.text


def test_gemini_readiness_names_whose_key_never_the_key(settings: Settings):
    [none] = readiness("gemini", settings.model_copy(update={"gemini_api_key": None}), request())
    assert none.state == "blocked" and none.text == "No Gemini API key." and "sidebar" in none.hint
    [typed] = readiness("gemini", settings, request(), gemini_api_key=VALID_KEY)
    assert typed.state == "ready" and "this session's key" in typed.text and VALID_KEY not in typed.text


def test_linked_readiness_names_each_engine(settings: Settings, tiny_model: Path):
    lines = readiness("linked", settings.model_copy(update={"model_path": tiny_model}), request())
    engines = [line.text.split(":")[0] for line in lines]
    assert engines == ["Google Gemini", "VideoChat-R1.5 (local)", "VideoChat-R1.5 (local)"]
    assert lines[0].state == "blocked"  # no key in these settings


def write_adapter(adapters_dir: Path, name: str, frames: int) -> None:
    """An adapter folder as `vchat-finetune` leaves it (config and run config; weights are not read here)."""
    run = adapters_dir / name
    (run / "final_checkpoint").mkdir(parents=True)
    (run / "final_checkpoint" / "adapter_config.json").write_text(json.dumps({"r": 8, "base_model_name_or_path": "x"}))
    sampling = {"frames": frames, "fps": None, "max_pixels": 200704}
    (run / "run_config.json").write_text(json.dumps({"sampling": sampling}))


def test_an_adapter_used_with_other_sampling_is_said_before_and_in_the_result(
    settings: Settings, tiny_model: Path, clips: dict[str, Path]
):
    local = settings.model_copy(update={"model_path": tiny_model, "adapters_dir": settings.data_dir / "adapters"})
    write_adapter(local.adapters_dir, "four-frames", frames=4)
    lines = readiness("local", local, request(adapter="four-frames", frames=32))
    [note] = [line for line in lines if line.state == "note"]
    assert note.text.startswith("The adapter four-frames was trained with 4 frames per video (this request: 32)")
    same = readiness("local", local, request(adapter="four-frames", frames=4))
    assert same[-1].state == "ready" and "as in its training" in same[-1].text
    # and in the analysis's notes: the engine fits the request to the video, and says it
    from core.media.frames import frame_source

    index = frame_source(clips["h264"]).index
    fitted, notes = LocalEngine(local, tiny_model).fit(request(adapter="four-frames", frames=32), index)
    assert any(n.startswith("The adapter four-frames was trained with 4 frames") for n in notes)
    assert fitted.frames == 32  # said, not silently changed


# --- the app: readiness before Analyze, Gemini's settings, the URL field --------------------------


def test_sidebar_shows_readiness_and_gemini_disables_frame_settings(monkeypatch, tmp_path, tiny_model: Path):  # type: ignore[no-untyped-def]
    app_env(monkeypatch, tmp_path, tiny_model)
    app = new_app().run()
    sidebar = [shown(c.value) for c in app.sidebar.caption]
    assert f"Weights: {tiny_model} (VCHAT_MODEL_PATH)" in " ".join(sidebar)
    for key in ("rounds", "frames"):
        assert not app.sidebar.number_input(key=key).disabled
    app.sidebar.selectbox(key="model_choice").select("gemini").run()
    for key in ("rounds", "frames"):
        assert app.sidebar.number_input(key=key).disabled  # Gemini watches the whole video itself
    assert app.sidebar.select_slider(key="max_pixels").disabled
    assert any(shown(w.value).startswith("No Gemini API key.") for w in app.warning)  # said before Analyze


@pytest.mark.parametrize("typed", ["what happens in this video", "clip.mp4", "videos/clip.mp4"])
def test_free_text_in_the_url_field_is_not_taken_for_a_file(monkeypatch, tmp_path, tiny_model: Path, clips, typed):  # type: ignore[no-untyped-def]
    paths = app_env(monkeypatch, tmp_path, tiny_model)
    shutil.copyfile(clips["h264_b"], paths.media_dir / "clip.mp4")
    app = new_app().run()
    app.text_input(key="source_url").input(typed)
    app.text_area(key="question").input("What is shown?")
    button(app, "Analyze").click().run()
    [error] = app.error
    assert shown(error.value).startswith(f"'{typed}' is not a URL. Paste an address that starts with https://")
    assert not (paths.data_dir / "media").exists()  # nothing was read


def test_a_bare_address_gets_https():
    assert url_from_field(" www.example.org/v.mp4 ") == "https://www.example.org/v.mp4"
    assert url_from_field("http://127.0.0.1:8000/a.mp4") == "http://127.0.0.1:8000/a.mp4"
    assert url_from_field("file:///etc/passwd") == "file:///etc/passwd"  # a scheme: the URL guard decides


# --- inspect: no model needed ------------------------------------------------------------------


def test_cli_inspect_reads_provenance_without_any_model(tmp_path: Path, clips: dict[str, Path]):
    (tmp_path / "videos").mkdir()
    shutil.copyfile(clips["tagged"], tmp_path / "videos" / "tagged.mov")
    proc = run_cli(["inspect", "tagged.mov"], tmp_path, VCHAT_MODEL_ID=MISSING, GEMINI_API_KEY="")
    assert proc.returncode == 0, proc.stderr.decode()
    facts = json.loads(proc.stdout)
    assert facts["source"]["filename"] == "tagged.mov"
    assert facts["provenance"]["creation_time"].startswith("2024-05-06T07:08:09")
    assert facts["probe"]["duration_s"] == pytest.approx(2.0, abs=0.1)
    assert "sanitized" not in facts and not list((tmp_path / "data").rglob("sanitized"))


def test_cli_inspect_refuses_what_is_not_a_video(tmp_path: Path, server: LocalServer):
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "page.mp4").write_text("<html><body>not a video</body></html>")
    proc = run_cli(["inspect", "page.mp4"], tmp_path)
    assert proc.returncode == 2 and "not a video" in proc.stderr.decode()
    assert re.search(r"Traceback", proc.stderr.decode()) is None


def test_inspect_in_the_app_needs_no_model(monkeypatch, tmp_path, clips):  # type: ignore[no-untyped-def]
    paths = app_env(monkeypatch, tmp_path, VCHAT_MODEL_ID=MISSING)
    shutil.copyfile(clips["tagged"], paths.media_dir / "tagged.mov")
    app = new_app().run()
    app.radio(key="source_kind").set_value("Media folder").run()
    app.selectbox(key="source_file").select("tagged.mov")
    button(app, "Inspect the file (no model)").click().run()
    assert not app.exception and not app.error
    assert shown(app.status[0].label).startswith("Inspected (no model was used)")
    text = "\n".join(shown(m.value) for m in app.markdown)
    assert "Origin: tagged.mov (from the media folder)" in text.replace("**", "")
    assert "2024-05-06T07:08:09" in text  # the creation time the file's metadata gives
    assert not list((paths.data_dir / "media").rglob("sanitized"))
