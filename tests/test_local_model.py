"""The local engine and the perception flow through the real loading code, on a tiny random
Qwen2.5-VL checkpoint."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

from core.config import Settings
from core.errors import InputError
from core.media.pipeline import MediaAsset, prepare_media
from core.models.base import AnalysisRequest, GenerationSettings
from core.models.local.engine import clip_to_budget, visual_tokens
from core.models.local.host import HOST
from core.models.local.loading import ModelMissing, resolve_source
from tests.support import ask, run_cli

SHORT = GenerationSettings(max_new_tokens=24)


@pytest.fixture
def asset(settings: Settings, clips) -> MediaAsset:
    shutil.copyfile(clips["numbered"], settings.media_dir / "numbered.mp4")
    return prepare_media("numbered.mp4", settings)


def test_three_round_analysis_with_the_tiny_model(settings: Settings, tiny_model: Path, asset: MediaAsset):
    request = AnalysisRequest(question="What number is shown?", rounds=3, frames=8, generation=SHORT)
    result = ask("local", settings, asset, request, tiny_model)
    assert [r.round for r in result.rounds] == [1, 2, 3]
    assert result.model.backend == "local" and result.model.device == "cpu" and result.model.dtype == "float32"
    assert result.model.load_seconds is not None and result.model.source.startswith("path:")
    assert result.media_sha256 == asset.sha256
    for record in result.rounds:
        assert record.tokens_out > 0 and record.tokens_in > 0
        assert len(record.frame_timestamps) == 8
        # the processor was given the true sampling rate: 2 frames per temporal patch / sampled fps
        assert record.second_per_grid_t == pytest.approx(2 / record.sampled_fps, rel=1e-6)
        assert record.sampled_fps == pytest.approx(8 / 10.0)
    assert "<glue>" in result.rounds[0].prompt and "<glue>" not in result.rounds[2].prompt
    assert result.answer == (result.rounds[2].answer or "")


def test_the_video_is_decoded_once_for_three_rounds(settings: Settings, tiny_model: Path, asset: MediaAsset):
    result = ask("local", settings, asset, AnalysisRequest(question="Q?", frames=8, generation=SHORT), tiny_model)
    assert result.rounds[0].decoded_frames > 0
    assert [r.decoded_frames for r in result.rounds[1:]] == [0, 0]


def test_the_model_is_loaded_once_per_process(settings: Settings, tiny_model: Path):
    source = resolve_source(settings, tiny_model)
    with HOST.turn():
        assert HOST.model(settings, source) is HOST.model(settings, source)


def test_streamed_text_ends_as_the_final_answer(settings: Settings, tiny_model: Path, asset: MediaAsset):
    request = AnalysisRequest(question="Describe it.", rounds=1, frames=8, generation=SHORT)
    partials: list[tuple[int, str]] = []
    streamed = ask("local", settings, asset, request, tiny_model, on_text=lambda n, text: partials.append((n, text)))
    plain = ask("local", settings, asset, request, tiny_model)
    assert streamed.rounds[0].raw_output == plain.rounds[0].raw_output
    assert partials and partials[-1][1] == streamed.rounds[0].raw_output


def test_a_stopped_stream_stops_generation_before_the_model_is_free(
    settings: Settings, tiny_model: Path, asset: MediaAsset
):
    """A Streamlit script stopped mid-answer raises inside on_text: the generation must end with it."""

    class ScriptStopped(Exception):
        pass

    def stop_at_once(number: int, text: str) -> None:
        raise ScriptStopped

    long = AnalysisRequest(
        question="Describe it.", rounds=1, frames=8, generation=GenerationSettings(max_new_tokens=4000)
    )
    threads_before = threading.active_count()
    with pytest.raises(ScriptStopped):
        ask("local", settings, asset, long, tiny_model, on_text=stop_at_once)
    assert threading.active_count() == threads_before  # the generate worker has ended
    assert not HOST.busy and not HOST.loaded.lock.locked()
    request = AnalysisRequest(question="Describe it.", rounds=1, frames=8, generation=SHORT)
    assert ask("local", settings, asset, request, tiny_model).rounds[0].tokens_out > 0


def test_two_threads_at_once_both_get_correct_results(settings: Settings, tiny_model: Path, asset: MediaAsset):
    request = AnalysisRequest(question="Who?", rounds=2, frames=8, generation=SHORT)
    expected = ask("local", settings, asset, request, tiny_model)
    results: list = []
    errors: list = []

    def work() -> None:
        try:
            results.append(ask("local", settings, asset, request, tiny_model))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == [] and len(results) == 2
    for result in results:
        assert [r.raw_output for r in result.rounds] == [r.raw_output for r in expected.rounds]


def test_a_request_over_the_token_budget_is_clipped_with_a_note(asset: MediaAsset, settings: Settings):
    index = asset.frames(settings).index
    request = AnalysisRequest(question="Q?", frames=64)
    clipped, notes = clip_to_budget(request, index, budget=512)
    assert visual_tokens(index, clipped.frames, clipped.max_pixels) <= 512
    assert notes and "clipped to" in notes[0]
    same, none = clip_to_budget(request, index, budget=10**6)
    assert same == request and none == []


def test_a_config_of_another_architecture_is_refused(tmp_path: Path, settings: Settings):
    other = tmp_path / "qwen3"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "qwen3_vl"}))
    with pytest.raises(InputError, match="holds a 'qwen3_vl' checkpoint"):
        resolve_source(settings, other)


def test_a_folder_that_is_not_a_model_is_refused(tmp_path: Path, settings: Settings):
    with pytest.raises(InputError, match=r"has no config\.json"):
        resolve_source(settings, tmp_path)


def test_missing_weights_say_how_to_preseed(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    settings = Settings(data_dir=tmp_path / "data", media_dir=tmp_path, preseed_dir=tmp_path / "VideoChat-R1")
    with pytest.raises(ModelMissing, match="is not on this machine") as caught:
        resolve_source(settings)
    assert "VideoChat-R1" in str(caught.value) and "VCHAT_MODEL_PATH" in str(caught.value)


def test_a_preseeded_folder_is_found(tmp_path: Path, tiny_model: Path):
    shutil.copytree(tiny_model, tmp_path / "VideoChat-R1")
    settings = Settings(data_dir=tmp_path / "data", media_dir=tmp_path, preseed_dir=tmp_path / "VideoChat-R1")
    assert resolve_source(settings).origin == "preseeded"


def test_cli_tiny_model_then_analyze_json(tmp_path: Path, clips):
    proc = run_cli(["tiny-model", str(tmp_path / "tiny")], tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    shutil.copyfile(clips["numbered"], tmp_path / "videos" / "n.mp4")
    args = ["analyze", "n.mp4", "-Q", "What is shown?", "--model-path", str(tmp_path / "tiny")]
    proc = run_cli([*args, "--frames", "8", "--max-new-tokens", "16", "--json", "-q"], tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    result = json.loads(proc.stdout)
    assert len(result["rounds"]) == 3 and result["request"]["frames"] == 8
    assert "Traceback" not in proc.stderr.decode()
    proc = run_cli(["tiny-model", str(tmp_path / "tiny")], tmp_path)
    assert proc.returncode == 2 and "not empty" in proc.stderr.decode()


def test_cli_serves_a_stored_result_like_the_app_and_reruns_on_request(tmp_path: Path, clips, tiny_model: Path):
    (tmp_path / "videos").mkdir()
    shutil.copyfile(clips["numbered"], tmp_path / "videos" / "n.mp4")
    args = ["analyze", "n.mp4", "-Q", "What is shown?", "--model-path", str(tiny_model), "--frames", "4"]
    args += ["--rounds", "1", "--max-new-tokens", "8"]
    first = run_cli(args, tmp_path)
    second = run_cli(args, tmp_path)
    again = run_cli([*args, "--rerun"], tmp_path)
    assert first.returncode == second.returncode == again.returncode == 0, first.stderr.decode()
    assert "[model]" in first.stderr.decode() and "served from the result stored" not in first.stderr.decode()
    assert "served from the result stored" in second.stderr.decode() and "[model]" not in second.stderr.decode()
    assert second.stdout == first.stdout == again.stdout  # greedy: the re-run gives the same answer
    assert "served from the result stored" not in again.stderr.decode()
    assert len(list((tmp_path / "data" / "results").rglob("*.json"))) == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-Q", "  "], "The question is empty"),
        (["-Q", "x" * 10_000], "characters long"),
        (["-Q", "ok?", "--frames", "0"], "Frames must be between 1 and 256"),
        (["-Q", "ok?", "--frames", "10000"], "Frames must be between 1 and 256"),
        (["-Q", "ok?", "--rounds", "0"], "Rounds must be between 1 and 5"),
        (["-Q", "ok?", "--model-path", "/tmp"], "is not a model folder"),
        (["-Q", "ok?", "--max-new-tokens", "0"], "max_new_tokens"),
        (["-Q", "ok?", "--adapter", "nope", "--model-path", "TINY"], "No finished adapter called 'nope'"),
        (["-Q", "ok?", "--adapter", "../x", "--model-path", "TINY"], "'../x' is not an adapter name"),
    ],
)
def test_cli_bad_analyze_input_exits_2_before_any_work(
    tmp_path: Path, tiny_model: Path, clips: dict[str, Path], extra: list[str], message: str
):
    extra = [str(tiny_model) if arg == "TINY" else arg for arg in extra]
    (tmp_path / "videos").mkdir()
    shutil.copy(clips["h264_b"], tmp_path / "videos" / "clip.mp4")
    proc = run_cli(["analyze", "clip.mp4", *extra], tmp_path)
    assert proc.returncode == 2, proc.stderr.decode()
    err = proc.stderr.decode()
    assert message in err and "Traceback" not in err
    assert "[sanitize]" not in err and "[model]" not in err, "the request and engine come before slow work"
