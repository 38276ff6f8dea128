"""The Fine-tune page through AppTest: the dataset report, options refused in one line, uploads
kept without overwriting, and real training runs on the tiny model started from the page (the
trainer is `python -m finetune` as a subprocess, as in the app), watched until they finish or
are cancelled and resumed. Nothing of the trainer is mocked."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.config import get_settings
from core.models.local.host import HOST
from finetune.runs import list_runs
from tests.finetune_support import BLUE, RED, make_colour_clip, text_line, write_jsonl
from tests.support import AppPaths, all_text, app_env, new_app, shown_text
from tests.support import shown as as_read
from ui import finetune_start

pytestmark = pytest.mark.timeout(240)

SMALL = {"max_steps": 20, "lr": 1e-2, "grad_accum": 1, "frames": 4, "patches": 4, "eval_split": 0.25}


@pytest.fixture(autouse=True)
def _fresh_settings():  # type: ignore[no-untyped-def]
    """The app reads settings from the environment set by `app_env`; later tests must not see them."""
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def tiny(learnable_tiny_model: Path) -> Path:
    """The tiny checkpoint with a head that can learn (see tests/finetune_support.py)."""
    return learnable_tiny_model


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ft-page-clips")
    return {
        name: make_colour_clip(root / f"{name}.mp4", RED if name.startswith("red") else BLUE, seed=i)
        for i, name in enumerate(("red0", "blue1", "red2", "blue3"))
    }


@pytest.fixture
def paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny: Path) -> Iterator[AppPaths]:
    """The app's folders, with the tiny model as the local model; no trainer outlives the test."""
    paths = app_env(monkeypatch, tmp_path, model_path=tiny)
    yield paths
    _stop_trainers(paths)


def _stop_trainers(paths: AppPaths) -> None:
    settings = get_settings().model_copy(update={"adapters_dir": paths.adapters_dir})
    for run in list_runs(settings):
        if run.active and run.pid:
            os.kill(run.pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while any(run.active for run in list_runs(settings)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for run in list_runs(settings):
        if run.active and run.pid:
            os.kill(run.pid, signal.SIGKILL)


def colour_dataset(folder: Path, clips: dict[str, Path]) -> Path:
    """Four clean lines whose answer is the clip's colour, the clips beside the file."""
    for name, clip in clips.items():
        (folder / "clips").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(clip, folder / "clips" / f"{name}.mp4")
    colour = {"red0": "red", "blue1": "blue", "red2": "red", "blue3": "blue"}
    return write_jsonl(folder / "colour.jsonl", [text_line(f"clips/{n}.mp4", f"It is {c}.") for n, c in colour.items()])


def finetune_page(app: AppTest) -> AppTest:
    app.run()
    return app.switch_page("app_pages/finetune.py").run()


def button(app: AppTest, label: str):  # type: ignore[no-untyped-def]
    return next(b for b in app.button if b.label == label)


def shown(app: AppTest, kind: str) -> list[str]:
    """The texts of one kind of element (success, warning, info...) as the reader sees them: the
    page escapes run names and paths for markdown, the reader sees no backslashes."""
    return [as_read(str(e.value)) for e in getattr(app, kind)]


def buttons(app: AppTest) -> list[str]:
    return [b.label for b in app.button]


def set_options(app: AppTest, name: str, **values: object) -> None:
    small = {**SMALL, **values}
    keys = {
        "max_steps": "ft_max_steps",
        "lr": "ft_lr",
        "grad_accum": "ft_grad_accum",
        "frames": "ft_frames",
        "patches": "ft_max_patches",
        "eval_split": "ft_eval_split",
    }
    for option, key in keys.items():
        app.number_input(key=key).set_value(small[option])
    app.text_input(key="ft_run_name").input(name)


def progress_text(app: AppTest) -> str | None:
    bars = app.get("progress")
    return bars[-1].proto.text if bars else None


def poll(app: AppTest, done: Callable[[AppTest], bool], timeout: float, what: str) -> list[str]:
    """Rerun the page (as the fragment does every few seconds) until `done`; the progress texts seen."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        app.run()
        assert not app.exception, app.exception
        text = progress_text(app)
        if text and (not seen or seen[-1] != text):
            seen.append(text)
        if done(app):
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; page said:\n{all_text(app)}")
        time.sleep(0.2)


def table(app: AppTest, column: str):  # type: ignore[no-untyped-def]
    """The first table on the page with this column (a pandas DataFrame)."""
    return next(d.value for d in app.dataframe if column in d.value.columns)


def run_table(app: AppTest) -> dict[str, str]:
    table_ = table(app, "run")
    return dict(zip(table_["run"], table_["state"], strict=True))


# --- the page without training -----------------------------------------------------------------------


def test_the_page_renders_with_no_runs_and_the_24gb_defaults(monkeypatch, tmp_path):
    app_env(monkeypatch, tmp_path, VCHAT_MODEL_ID="nobody/not-a-model")
    app = finetune_page(new_app())
    assert not app.exception
    assert app.main.title[0].value == "Fine-tune"
    text = shown_text(app)
    assert "No .jsonl datasets in the data folder" in text
    assert "No runs yet in" in text and "None yet in" in text
    assert any(w.startswith("No base model to train: The model nobody/not-a-model") for w in shown(app, "warning"))
    assert button(app, "Start training").disabled
    values = {n.label: n.value for n in app.number_input}
    assert values["Epochs"] == 3.0 and values["Max steps (0 = by epochs)"] == 0
    assert values["Learning rate"] == pytest.approx(1e-4)
    assert values["LoRA rank"] == 8 and values["LoRA alpha"] == 16.0
    assert values["Frames per video"] == 16 and values["Max pixels per frame (28x28 patches)"] == 256
    assert values["Gradient accumulation (examples per step)"] == 8
    assert values["Held-out share (eval split)"] == pytest.approx(0.1)
    assert "No GPU here" in text  # this machine: training would share the CPU with the app


def test_a_dataset_with_bad_lines_shows_every_error_by_line(paths: AppPaths, clips: dict[str, Path]):
    shutil.copyfile(clips["red0"], paths.media_dir / "red0.mp4")
    write_jsonl(
        paths.media_dir / "claims.jsonl",
        [
            text_line("red0.mp4", "It is red."),  # 1 ok
            '{"video_path": "red0.mp4", "text": "USER: hi',  # 2 bad JSON
            text_line("missing.mp4", "It is red."),  # 3 missing video
            {"video_path": "red0.mp4", "text": "USER: What colour is it?"},  # 4 no assistant turn
            text_line("../red0.mp4", "It is red."),  # 5 path escape
        ],
    )
    app = finetune_page(new_app())
    assert not app.exception
    assert app.selectbox(key="ft_dataset").value.endswith("claims.jsonl")
    assert "claims.jsonl (media folder)" in app.selectbox(key="ft_dataset").options
    warning = next(w for w in shown(app, "warning") if "with errors" in w)
    assert warning.startswith("5 lines, 1 valid, 4 with errors, 3 videos checked.")
    errors = table(app, "problem")
    assert list(errors["line"]) == [2, 3, 4, 5]
    problems = dict(zip(errors["line"], errors["problem"], strict=True))
    assert "not valid JSON" in problems[2]
    assert "video not found" in problems[3] and "missing.mp4" in problems[3]
    assert "no assistant turn" in problems[4]
    assert "path escape" in problems[5]

    # the report is kept for this file and sampling: other options do not check it again
    app.number_input(key="ft_rank").set_value(4).run()
    assert len(app.session_state["ft_reports"]) == 1
    app.number_input(key="ft_frames").set_value(4).run()  # frames are decoded by the check: a new report
    assert len(app.session_state["ft_reports"]) == 2

    # Start refuses the file, and bad options, each in one line; nothing is started
    button(app, "Start training").click().run()
    assert shown(app, "error") == [
        "The dataset has 4 lines with errors (listed above). Fix them, or tick 'Skip bad lines' to train "
        "on the 1 valid lines."
    ]
    app.checkbox(key="ft_skip_bad_lines").check()
    app.number_input(key="ft_lr").set_value(0.0).run()
    button(app, "Start training").click().run()
    assert shown(app, "error") == ["lr: Input should be greater than 0"]
    app.number_input(key="ft_lr").set_value(1e-3)
    app.text_input(key="ft_run_name").input("two words").run()
    button(app, "Start training").click().run()
    assert shown(app, "error") == ["'two words' cannot be a run name: use letters, digits, '.', '_' and '-'."]
    (paths.adapters_dir / "taken").mkdir(parents=True)
    (paths.adapters_dir / "taken" / "notes.txt").write_text("mine")
    app.text_input(key="ft_run_name").input("taken").run()
    button(app, "Start training").click().run()
    assert len(app.error) == 1 and shown(app, "error")[0].startswith("A run called taken already exists")
    assert "\n" not in app.error[0].value and "Traceback" not in all_text(app)
    assert [p.name for p in (paths.adapters_dir / "taken").iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in paths.adapters_dir.iterdir()) == ["taken"]


def test_an_upload_is_kept_without_overwriting_and_checked(paths: AppPaths, clips: dict[str, Path]):
    shutil.copyfile(clips["blue1"], paths.media_dir / "blue1.mp4")
    good = (json.dumps(text_line("blue1.mp4", "It is blue.")) + "\n").encode()
    other = (json.dumps(text_line("blue1.mp4", "Blue.")) + "\n").encode()
    app = finetune_page(new_app())
    app.radio(key="ft_source").set_value("Upload").run()
    app.file_uploader(key="ft_upload").upload("my claims.jsonl", good, "application/jsonl").run()
    assert not app.exception and not app.error
    saved = paths.data_dir / "datasets" / "my_claims.jsonl"
    assert saved.read_bytes() == good
    assert any(s.startswith("Ready to train: 1 lines, 1 valid, 0 with errors") for s in shown(app, "success"))
    app.run()  # the same upload on the next rerun: the same file, no copy
    app.file_uploader(key="ft_upload").set_value(("my claims.jsonl", other, "application/jsonl")).run()
    assert saved.read_bytes() == good, "an existing dataset is never overwritten"
    assert (paths.data_dir / "datasets" / "my_claims-2.jsonl").read_bytes() == other
    assert sorted(p.name for p in (paths.data_dir / "datasets").iterdir()) == ["my_claims-2.jsonl", "my_claims.jsonl"]
    app.radio(key="ft_source").set_value("From a folder").run()
    assert app.selectbox(key="ft_dataset").options == [
        "datasets/my_claims-2.jsonl (data folder)",
        "datasets/my_claims.jsonl (data folder)",
    ]


def test_a_run_whose_trainer_died_is_shown_failed_with_its_console(paths: AppPaths):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = paths.adapters_dir / "crashed"
    run.mkdir(parents=True)
    state = {"state": "running", "phase": "training", "pid": dead.pid, "step": 7, "total_steps": 20}
    (run / "state.json").write_text(json.dumps(state))
    (run / "run_config.json").write_text(json.dumps({"options": {"data": "/nowhere.jsonl"}}))
    console = "loading the model\nTraceback (most recent call last):\n  File x.py\nRuntimeError: out of memory <b>"
    (run / "console.log").write_text(console + "\n")
    app = finetune_page(new_app())
    assert not app.exception
    assert run_table(app) == {"crashed": "failed"}
    assert shown(app, "error") == ["crashed: failed: RuntimeError: out of memory <b>"]
    assert progress_text(app) == "Step 7 of 20"
    assert app.code[-1].value == console  # the last lines of the console, as they are
    assert "Resume" in buttons(app) and "Cancel" not in buttons(app)


def test_with_the_model_held_and_a_gpu_start_waits_for_an_unload(
    paths: AppPaths, clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
):
    """The GPU probe is told yes (on a CUDA machine it is anyway); the held model is the real tiny one."""
    monkeypatch.setattr(finetune_start, "trains_on_gpu", lambda: True)
    colour_dataset(paths.data_dir / "datasets", clips)
    HOST.load(get_settings())
    try:
        app = finetune_page(new_app())
        assert any(w.startswith("The app holds the local model") for w in shown(app, "warning"))
        assert "No GPU here" not in all_text(app)
        assert button(app, "Start training").disabled
        app.checkbox(key="ft_beside_loaded_model").check().run()
        assert not button(app, "Start training").disabled
        app.checkbox(key="ft_beside_loaded_model").uncheck().run()
        button(app, "Unload the local model").click().run()
        assert HOST.loaded is None
        assert "The local model was unloaded: the GPU is free for training." in shown(app, "success")
        assert not any(w.startswith("The app holds") for w in shown(app, "warning"))
        assert not button(app, "Start training").disabled
    finally:
        HOST.unload()


# --- training from the page ------------------------------------------------------------------------------


def test_a_run_started_on_the_page_shows_progress_and_its_adapter_joins_the_model_list(
    paths: AppPaths, clips: dict[str, Path]
):
    colour_dataset(paths.data_dir / "datasets", clips)
    app = finetune_page(new_app())
    assert any(s.startswith("Ready to train: 4 lines, 4 valid") for s in shown(app, "success"))
    set_options(app, "page-run")
    button(app, "Start training").click().run()
    assert not app.exception and not app.error, all_text(app)
    assert any(s.startswith("Started page-run") for s in shown(app, "success")), all_text(app)
    assert app.selectbox(key="ft_selected_run").value == "page-run"
    assert run_table(app)["page-run"] in ("starting", "running: validating", "running: loading model")
    assert "Cancel" in buttons(app)
    assert "VideoChat-R1.5 + LoRA page-run" not in app.sidebar.selectbox(key="model_choice").options

    seen = poll(app, lambda a: run_table(a)["page-run"] == "finished", 120, "the run to finish")
    assert seen and seen[-1] == "Step 20 of 20", seen
    finished = next(s for s in shown(app, "success") if "page-run" in s)
    assert finished.startswith("page-run: finished after 20 steps.")
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Step"] == "20 / 20" and metrics["ETA"] == "-"
    assert float(metrics["Eval loss after"]) < float(metrics["Eval loss before"])
    figure = json.loads(app.get("plotly_chart")[0].proto.spec)
    training, held_out = figure["data"]
    assert training["name"] == "training loss" and training["x"] == list(range(1, 21))
    assert held_out["x"] == [0, 20] and held_out["y"][1] < held_out["y"][0]
    assert "Cancel" not in buttons(app) and "Resume" not in buttons(app)
    assert app.query_params["run"] == "page-run"

    # the adapter is offered in the sidebar of this same session, no restart
    assert "VideoChat-R1.5 + LoRA page-run" in app.sidebar.selectbox(key="model_choice").options
    assert list(table(app, "config sha256")["name"]) == ["page-run"]

    # a reload (a new session with the address bar's ?run=) shows the same run from its folder
    again = new_app()
    again.query_params["run"] = "page-run"
    again = finetune_page(again)
    assert again.selectbox(key="ft_selected_run").value == "page-run"
    assert progress_text(again) == "Step 20 of 20"
    assert "VideoChat-R1.5 + LoRA page-run" in again.sidebar.selectbox(key="model_choice").options


def test_cancel_a_running_run_then_resume_it(paths: AppPaths, clips: dict[str, Path]):
    colour_dataset(paths.data_dir / "datasets", clips)
    app = finetune_page(new_app())
    set_options(app, "long-run", max_steps=5000)
    button(app, "Start training").click().run()
    assert not app.error, all_text(app)

    def training(a: AppTest) -> bool:
        text = progress_text(a) or ""
        return (
            run_table(a)["long-run"] == "running: training" and text.startswith("Step ") and int(text.split()[1]) >= 2
        )

    seen = poll(app, training, 90, "training steps")
    assert seen[-1].endswith(" of 5000")
    assert any(c.label == "Training loss" and c.value != "-" for c in app.metric)
    assert app.get("plotly_chart"), "the loss chart is drawn while the run trains"
    button(app, "Cancel").click().run()
    assert any("Cancel sent" in i for i in shown(app, "info"))

    poll(app, lambda a: run_table(a)["long-run"] == "cancelled", 60, "the run to stop")
    cancelled = next(w for w in shown(app, "warning") if w.startswith("long-run: cancelled"))
    stopped_at = int(cancelled.split("at step ")[1].split()[0])
    assert 2 <= stopped_at < 5000
    assert cancelled.endswith("of 5000. Resume continues from its last checkpoint.")
    assert "Resume" in buttons(app) and "Cancel" not in buttons(app)
    assert "VideoChat-R1.5 + LoRA long-run" not in app.sidebar.selectbox(key="model_choice").options

    button(app, "Resume").click().run()
    assert not app.exception and not app.error, all_text(app)
    assert any(s.startswith("Resumed long-run") for s in shown(app, "success"))
    assert run_table(app)["long-run"] in ("starting", "running: validating", "running: loading model")

    def continued(a: AppTest) -> bool:
        text = progress_text(a) or ""
        return run_table(a)["long-run"] == "running: training" and int(text.split()[1]) > stopped_at

    poll(app, continued, 90, "the resumed run to train past the checkpoint")
    button(app, "Cancel").click().run()
    poll(app, lambda a: run_table(a)["long-run"] == "cancelled", 60, "the resumed run to stop")
    assert "Resume" in buttons(app)
