"""The analysis runner: stages, the result store, re-runs, the model host's queue; model choices."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from core.analysis.choices import choice_by_key, model_choices
from core.analysis.flows import flow_for
from core.analysis.runner import round_frames, run_analysis
from core.analysis.store import ResultStore
from core.config import Settings
from core.errors import InputError, UrlRefused
from core.models.base import AnalysisRequest, GenerationSettings, Segment
from core.models.local.host import HOST, ModelHost, QueueState
from ui.timeline import timeline_figure

SHORT = GenerationSettings(max_new_tokens=16)


@pytest.fixture
def local_settings(settings: Settings, tiny_model: Path, clips: dict[str, Path]) -> Settings:
    shutil.copyfile(clips["h264"], settings.media_dir / "clip.mp4")
    return settings.model_copy(update={"model_path": tiny_model, "adapters_dir": settings.data_dir / "adapters"})


def request(**changes: object) -> AnalysisRequest:
    fields: dict[str, object] = {"question": "What is shown?", "rounds": 2, "frames": 6, "generation": SHORT}
    return AnalysisRequest(**{**fields, **changes})


def test_one_analysis_reports_every_stage_then_is_served_from_the_store(local_settings: Settings):
    stages: list[tuple[str, str]] = []
    texts: list[tuple[int, str]] = []
    run = run_analysis(
        "clip.mp4",
        local_settings,
        "local",
        request(),
        on_stage=lambda stage, message, fraction: stages.append((stage, message)),
        on_text=lambda number, text: texts.append((number, text)),
    )
    seen = [stage for stage, _ in stages]
    for stage in ("fetch", "probe", "sanitize", "ready", "frames", "model", "analyze", "round", "store", "done"):
        assert stage in seen, stage
    order = ("sanitize", "frames", "model", "round", "store")
    assert [seen.index(stage) for stage in order] == sorted(seen.index(stage) for stage in order)
    assert any(stage == "round" and message.startswith("round 2 of 2: ") for stage, message in stages)
    assert {number for number, _ in texts} == {1, 2}
    assert not run.from_store and [r.round for r in run.result.rounds] == [1, 2]
    assert run.path == local_settings.data_dir / "results" / run.asset.sha256 / f"{run.key}.json"
    stored = json.loads(run.path.read_text())
    assert stored["result"]["question"] == "What is shown?" and stored["result"]["answer"] == run.result.answer
    assert stored["model_identity"]["model_path"] == str(local_settings.model_path)

    texts.clear()
    again = run_analysis("clip.mp4", local_settings, "local", request(), on_text=lambda n, t: texts.append((n, t)))
    assert again.from_store and again.key == run.key and texts == []  # the model was not asked again
    assert again.result == run.result and again.data == run.data

    rerun = run_analysis("clip.mp4", local_settings, "local", request(), rerun=True)
    assert not rerun.from_store and rerun.key == run.key
    assert json.loads(run.path.read_text())["stored_at"] == rerun.stored_at


def test_the_key_follows_everything_the_answer_depends_on(local_settings: Settings):
    run = run_analysis("clip.mp4", local_settings, "local", request())
    asset = run.asset

    def key(req: AnalysisRequest, settings: Settings = local_settings, model: str = "local") -> str:
        return ResultStore.media_ref(asset, flow_for(model, settings).identity(req), req).key

    assert key(request()) == run.key
    assert key(request(frames=8)) != run.key
    assert key(AnalysisRequest(question="Something else?", rounds=2, frames=6, generation=SHORT)) != run.key
    assert key(request(generation=GenerationSettings(max_new_tokens=17))) != run.key
    assert key(request(), local_settings.model_copy(update={"max_visual_tokens": 128})) != run.key
    assert key(request(gemini_model="a"), model="gemini") != key(request(gemini_model="b"), model="gemini")
    assert key(request(), local_settings.model_copy(update={"glue_time": "model-axis"})) != run.key
    with pytest.raises(InputError, match="No finished adapter"):
        flow_for("local", local_settings).identity(request(adapter="missing"))


def test_the_gemini_key_never_reaches_a_stored_result(local_settings: Settings):
    run = run_analysis("clip.mp4", local_settings, "local", request(), gemini_api_key="sekrit-key-value")
    assert "sekrit-key-value" not in run.path.read_text()
    assert "sekrit-key-value" not in run.result_json


def test_bad_input_raises_before_any_model_work(local_settings: Settings):
    with pytest.raises(UrlRefused):
        run_analysis("http://169.254.169.254/latest/meta-data", local_settings, "local", request())
    with pytest.raises(InputError, match="Unknown model"):
        run_analysis("clip.mp4", local_settings, "no-such-backend", request())
    assert not (local_settings.data_dir / "results").exists()


def test_round_frames_are_the_frames_the_round_saw(local_settings: Settings):
    run = run_analysis("clip.mp4", local_settings, "local", request())
    record = run.result.rounds[-1]
    sample = round_frames(run.asset, local_settings, record, run.result.request.max_pixels)
    assert sample.indices == record.frame_indices
    assert sample.timestamps == pytest.approx(record.frame_timestamps)


def test_a_second_analysis_waits_its_turn_and_is_told_so(local_settings: Settings):
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with HOST.turn():
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(5)
    queued: list[QueueState] = []
    stages: list[str] = []
    threading.Timer(1.2, release.set).start()
    started = time.monotonic()
    run = run_analysis(
        "clip.mp4",
        local_settings,
        "local",
        request(rounds=1),
        on_queued=queued.append,
        on_stage=lambda stage, message, fraction: stages.append(stage),
    )
    holder.join()
    assert time.monotonic() - started >= 1.0
    assert queued and queued[0].waiting == 1 and queued[-1].waited_s >= 0.5
    assert stages.index("queue") < stages.index("model")
    assert run.result.answer is not None and not HOST.busy


def test_the_queue_counts_who_waits():
    host = ModelHost(poll_s=0.05)
    order: list[str] = []
    states: list[QueueState] = []
    with host.turn():
        workers = [threading.Thread(target=lambda name=name: _take(host, name, order, states)) for name in ("a", "b")]
        for worker in workers:
            worker.start()
        _wait_for(lambda: host.waiting == 2)
        assert host.waiting == 2 and host.busy
    for worker in workers:
        worker.join(5)
    assert sorted(order) == ["a", "b"] and host.waiting == 0 and not host.busy
    assert max(state.waiting for state in states) == 2


def test_interactive_turns_go_before_batch_turns_and_each_in_order_of_arrival():
    host = ModelHost(poll_s=0.05)
    order: list[str] = []
    arrivals = [("batch-1", "batch"), ("batch-2", "batch"), ("ui-1", "interactive"), ("ui-2", "interactive")]
    with host.turn():
        workers = []
        for count, (name, priority) in enumerate(arrivals, start=1):
            worker = threading.Thread(target=lambda n=name, p=priority: _take(host, n, order, [], p))
            worker.start()
            workers.append(worker)
            _wait_for(lambda count=count: host.waiting == count)
    for worker in workers:
        worker.join(5)
    assert order == ["ui-1", "ui-2", "batch-1", "batch-2"]


def _take(
    host: ModelHost, name: str, order: list[str], states: list[QueueState], priority: str = "interactive"
) -> None:
    with host.turn(priority, states.append):  # type: ignore[arg-type]
        order.append(name)


def _wait_for(condition, timeout_s: float = 5) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert condition()


def test_an_unload_waits_for_the_running_analysis_and_the_next_analysis_loads_again(local_settings: Settings):
    """Two sessions and an Unload click at once: the unload takes its turn after the analysis that
    holds the model, and the next analysis loads the model again."""
    run_analysis("clip.mp4", local_settings, "local", request(rounds=1))  # the model is loaded
    assert HOST.loaded is not None
    generating = threading.Event()
    unloaded = threading.Event()
    seen_model_during_analysis: list[bool] = []

    def on_text(number: int, text: str) -> None:
        generating.set()
        seen_model_during_analysis.append(HOST.loaded is not None)
        time.sleep(0.05)

    def analysis() -> None:
        run_analysis("clip.mp4", local_settings, "local", request(rounds=2), rerun=True, on_text=on_text)

    def unload() -> None:
        generating.wait(30)
        HOST.unload()
        unloaded.set()

    first = threading.Thread(target=analysis)
    clicker = threading.Thread(target=unload)
    first.start()
    clicker.start()
    first.join(120)
    clicker.join(60)
    assert unloaded.is_set() and seen_model_during_analysis and all(seen_model_during_analysis)
    assert HOST.loaded is None, "the unload ran after the analysis"
    messages: list[str] = []
    run_analysis("clip.mp4", local_settings, "local", request(rounds=1), rerun=True,
                 on_stage=lambda stage, message, fraction: messages.append(message))  # fmt: skip
    assert any(m.startswith("loading the local model") for m in messages) and HOST.loaded is not None


def test_model_choices_list_local_adapters_gemini_and_linked(settings: Settings, tmp_path: Path):
    settings = settings.model_copy(update={"adapters_dir": tmp_path / "adapters"})
    run_dir = settings.adapters_dir / "my-run" / "final_checkpoint"
    run_dir.mkdir(parents=True)
    (run_dir / "adapter_config.json").write_text('{"r": 8}')
    choices = model_choices(settings)
    assert [(c.key, c.model, c.adapter) for c in choices] == [
        ("local", "local", None),
        ("adapter:my-run", "local", "my-run"),
        ("gemini", "gemini", None),
        ("linked", "linked", None),
    ]
    assert choice_by_key(settings, "adapter:gone").key == "local"
    assert choices[3].uses_local_model and choices[3].uses_gemini and not choices[2].uses_local_model


def test_timeline_has_a_row_per_round_with_its_frames_and_segments(local_settings: Settings):
    run = run_analysis("clip.mp4", local_settings, "local", request())
    result = run.result.model_copy(deep=True)
    result.rounds[0].segments = [Segment(start_s=0.5, end_s=1.5)]
    figure = timeline_figure(result, 3.0)
    frames = [t for t in figure.data if t.name == "frame seen"]
    bars = [t for t in figure.data if t.name == "segment cited"]
    assert [list(t.x) for t in frames] == [r.frame_timestamps for r in result.rounds]
    assert [set(t.y) for t in frames] == [{"Round 1"}, {"Round 2"}]
    assert list(bars[0].base) == [0.5] and list(bars[0].x) == [1.0]
    assert list(figure.layout.xaxis.range) == [0, 3.0]


def test_loading_the_model_is_a_stage_only_when_it_is_not_loaded(local_settings: Settings):
    HOST.unload()
    messages: list[str] = []
    run_analysis("clip.mp4", local_settings, "local", request(rounds=1), on_stage=lambda s, m, f: messages.append(m))
    assert any(m.startswith("loading the local model") for m in messages)
    messages.clear()
    run_analysis(
        "clip.mp4", local_settings, "local", request(rounds=1), rerun=True, on_stage=lambda s, m, f: messages.append(m)
    )
    assert not any(m.startswith("loading the local model") for m in messages)
    assert any(m.endswith("ready on cpu (float32)") for m in messages)
