"""The Gemini-only install (`make run GEMINI_ONLY=1`): without torch, transformers, peft and
accelerate the app starts, offers Gemini only with one line on what the local model needs, and a
Gemini analysis runs against the stand-in; the CLI says what to install for the local model.

The environment is this one with those packages made unfindable (tests/without_torch/sitecustomize.py),
so what runs is the real app in a fresh interpreter that cannot import them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gemini_fake import VALID_KEY, FakeGemini

ROOT = Path(__file__).resolve().parents[1]
WITHOUT_TORCH = Path(__file__).resolve().parent / "without_torch"

pytestmark = pytest.mark.timeout(300)

SESSION = r"""
import json, sys
from streamlit.testing.v1 import AppTest

app = AppTest.from_file("Home.py", default_timeout=120).run()
choice = app.sidebar.selectbox(key="model_choice")
out = {
    "exceptions": [e.value for e in app.exception],
    "options": list(choice.options),
    "sidebar": [c.value for c in app.sidebar.caption],
}
app.radio(key="source_kind").set_value("Media folder").run()
app.selectbox(key="source_file").select("clip.mp4")
app.text_area(key="question").input("What is shown?")
next(b for b in app.button if b.label == "Analyze").click().run()
out["errors"] = [e.value for e in app.error]
out["markdown"] = [m.value for m in app.markdown]
out["status"] = app.status[0].label if app.status else None
for page in ("models", "finetune", "factcheck"):
    other = AppTest.from_file("Home.py", default_timeout=120).run()
    other.switch_page(f"app_pages/{page}.py").run()
    out[page] = {"exceptions": [e.value for e in other.exception], "info": [i.value for i in other.info]}
out["loaded"] = sorted(m for m in ("torch", "transformers", "peft", "accelerate") if m in sys.modules)
print("RESULT " + json.dumps(out))
"""


def light_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VCHAT_", "GEMINI", "GOOGLE_"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(WITHOUT_TORCH), str(ROOT)]),
        VCHAT_DATA_DIR=str(tmp_path / "data"),
        VCHAT_MEDIA_DIR=str(tmp_path / "videos"),
        VCHAT_ADAPTERS_DIR=str(tmp_path / "adapters"),
        **extra,
    )
    (tmp_path / "videos").mkdir(exist_ok=True)
    return env


def test_the_blocker_really_hides_torch(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-c", "import torch"], env=light_env(tmp_path), capture_output=True, text=True
    )
    assert proc.returncode == 1 and "No module named 'torch'" in proc.stderr


def test_app_offers_gemini_only_and_answers_without_torch(tmp_path: Path, clips: dict[str, Path]):
    (tmp_path / "videos").mkdir()
    shutil.copyfile(clips["h264_b"], tmp_path / "videos" / "clip.mp4")
    gemini = FakeGemini().start()
    try:
        env = light_env(tmp_path, GEMINI_API_KEY=VALID_KEY, GOOGLE_GEMINI_BASE_URL=gemini.base_url)
        proc = subprocess.run(
            [sys.executable, "-c", SESSION], env=env, cwd=ROOT, capture_output=True, text=True, timeout=240
        )
    finally:
        gemini.stop()
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    out = json.loads(lines[0][len("RESULT ") :])
    assert out["exceptions"] == []
    assert out["options"] == ["Google Gemini"]  # the local model, adapters and linked mode are not offered
    note = [c for c in out["sidebar"] if c.startswith("Gemini only")]
    assert len(note) == 1 and "torch" in note[0] and "make install" in note[0]
    assert out["errors"] == []
    assert "A test pattern" in "\n".join(out["markdown"])  # the stand-in's answer, shown
    assert out["status"].startswith("Answered")
    for page in ("models", "finetune"):  # say what is missing instead of failing
        assert out[page]["exceptions"] == []
        assert any(i.startswith("Gemini only") for i in out[page]["info"]), out[page]
    assert out["factcheck"]["exceptions"] == []
    assert out["loaded"] == []


def test_the_evidence_is_measured_without_torch(tmp_path: Path, clips: dict[str, Path]):
    (tmp_path / "videos").mkdir()
    shutil.copyfile(clips["h264_b"], tmp_path / "videos" / "clip.mp4")
    args = ["factcheck", "clip.mp4", "--measure-only", "--json"]
    proc = subprocess.run(
        [sys.executable, "-m", "core", *args], env=light_env(tmp_path), cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    evidence = json.loads(proc.stdout)
    assert evidence["shots"]["shots"] and evidence["shots"]["shots"][0]["keyframe"]["path"].endswith(".jpg")


@pytest.mark.parametrize(
    "args",
    [
        ["analyze", "clip.mp4", "-Q", "What is shown?", "--model", "local"],
        ["analyze", "clip.mp4", "-Q", "What is shown?", "--model", "linked"],
        ["tiny-model", "tiny"],
    ],
)
def test_cli_says_what_the_local_model_needs(tmp_path: Path, clips: dict[str, Path], args: list[str]):
    (tmp_path / "videos").mkdir()
    shutil.copyfile(clips["h264_b"], tmp_path / "videos" / "clip.mp4")
    proc = subprocess.run(
        [sys.executable, "-m", "core", *args], env=light_env(tmp_path), cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 2, proc.stderr
    assert "not installed here: it needs torch, torchvision, transformers, accelerate, peft" in proc.stderr
    assert "make install" in proc.stderr and "Traceback" not in proc.stderr
