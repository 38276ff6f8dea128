"""The app shell (Home.py): navigation, the shared sidebar, the Gemini key from the address bar.

The helpers here (`app_env`, `new_app`) are shared by the other app tests.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.config import get_settings
from core.models.local.loading import unload_local_model
from core.models.local.tiny import write_tiny_model
from core.models.status import loaded_model_status
from tests.media_factory import make_clip
from ui.text import escape_markdown

ROOT = Path(__file__).resolve().parents[1]
HOME = str(ROOT / "Home.py")


@dataclass
class AppPaths:
    data_dir: Path
    media_dir: Path
    adapters_dir: Path


def app_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model_path: Path | None = None, **extra: str) -> AppPaths:
    """Point the app's settings (read from the environment) at a temporary data and media dir."""
    media = tmp_path / "videos"
    media.mkdir(exist_ok=True)
    env = {
        "VCHAT_DATA_DIR": str(tmp_path / "data"),
        "VCHAT_MEDIA_DIR": str(media),
        "VCHAT_ADAPTERS_DIR": str(tmp_path / "adapters"),
        "VCHAT_PRESEED_DIR": str(tmp_path / "no-preseed"),
        "VCHAT_URL_ALLOWLIST": "127.0.0.1",
        "VCHAT_SOCKET_TIMEOUT_S": "2",
        **extra,
    }
    if model_path is not None:
        env["VCHAT_MODEL_PATH"] = str(model_path)
    else:
        monkeypatch.delenv("VCHAT_MODEL_PATH", raising=False)
    for name in ("GEMINI_API_KEY", "VCHAT_GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    return AppPaths(tmp_path / "data", media, tmp_path / "adapters")


@pytest.fixture(autouse=True)
def _fresh_settings():
    yield
    get_settings.cache_clear()


_shared: dict[str, Path] = {}


def shared_tiny_model(factory: pytest.TempPathFactory) -> Path:
    """One tiny checkpoint for all the app and runner tests of a session (so it loads once)."""
    if "tiny" not in _shared:
        _shared["tiny"] = write_tiny_model(factory.mktemp("tiny-app"))
    return _shared["tiny"]


def shared_clip(factory: pytest.TempPathFactory) -> Path:
    """A 3 s 320x240 clip with sound, made once a session."""
    if "clip" not in _shared:
        _shared["clip"] = make_clip(factory.mktemp("app-clip") / "clip.mp4", duration=3)
    return _shared["clip"]


def new_app() -> AppTest:
    return AppTest.from_file(HOME, default_timeout=120)


def all_text(app: AppTest) -> str:
    """Every markdown, caption, alert and title string the page shows."""
    parts = [
        e.value
        for kind in ("markdown", "caption", "info", "warning", "error", "success", "title")
        for e in getattr(app, kind)
    ]
    return "\n".join(str(p) for p in parts)


def test_every_page_renders_without_a_model_loaded(monkeypatch, tmp_path):
    unload_local_model()
    app_env(monkeypatch, tmp_path)
    app = new_app().run()
    assert not app.exception
    assert [t.value for t in app.main.title] == ["Analyze a video"]  # the default page
    assert app.sidebar.title[0].value == "vChat"
    model = app.sidebar.selectbox(key="model_choice")
    assert model.options == ["VideoChat-R1.5 (local)", "Google Gemini", "Linked: Gemini + VideoChat-R1.5"]
    assert [n.label for n in app.sidebar.number_input][:3] == [
        "Perception rounds",
        "Frames per round",
        "Sample by fps (0 = the fixed frame count)",
    ]
    app.switch_page("pages/models.py").run()
    assert not app.exception
    assert [t.value for t in app.main.title] == ["Models"]
    assert "No local model is loaded" in app.info[0].value
    # the sidebar is drawn on every page, with the same settings
    assert app.sidebar.selectbox(key="model_choice").value == "local"
    app.switch_page("pages/analyze.py").run()
    assert not app.exception and app.main.title[0].value == "Analyze a video"
    assert loaded_model_status() is None  # opening pages loaded nothing


def test_gemini_key_moves_from_the_address_bar_into_session_state(monkeypatch, tmp_path):
    app_env(monkeypatch, tmp_path)
    app = new_app()
    app.query_params["gemini_api_key"] = "test-key-123"
    app.query_params["gemini_model_name"] = "gemini-test-model"
    app.query_params["other"] = "kept"
    app.run()
    assert not app.exception
    assert "gemini_api_key" not in app.query_params and "gemini_model_name" not in app.query_params
    assert app.query_params["other"] == "kept"
    assert app.session_state["gemini_api_key"] == "test-key-123"
    assert app.sidebar.text_input(key="gemini_api_key").value == "test-key-123"
    assert app.sidebar.text_input(key="gemini_model_name").value == "gemini-test-model"
    assert "test-key-123" not in all_text(app)
    app.run()  # the next run keeps it in the session, still not in the URL
    assert app.session_state["gemini_api_key"] == "test-key-123"
    assert "gemini_api_key" not in app.query_params
    app.switch_page("pages/models.py").run()
    assert "a key typed in this session" in all_text(app)
    assert "test-key-123" not in all_text(app)


def test_a_server_side_key_needs_no_query_param(monkeypatch, tmp_path):
    app_env(monkeypatch, tmp_path, GEMINI_API_KEY="server-key")
    app = new_app().run()
    assert "The server has a GEMINI_API_KEY" in all_text(app)
    app.switch_page("pages/models.py").run()
    assert "the server's GEMINI_API_KEY" in all_text(app)
    assert "server-key" not in all_text(app)


def test_finished_adapters_are_offered_as_models(monkeypatch, tmp_path):
    settings = app_env(monkeypatch, tmp_path)
    checkpoint = settings.adapters_dir / "news-run" / "final_checkpoint"
    checkpoint.mkdir(parents=True)
    (checkpoint / "adapter_config.json").write_text(json.dumps({"r": 8, "base_model_name_or_path": "tiny"}))
    (settings.adapters_dir / "unfinished" / "checkpoint-10").mkdir(parents=True)
    app = new_app().run()
    model = app.sidebar.selectbox(key="model_choice")
    assert model.options == [
        "VideoChat-R1.5 (local)",
        "VideoChat-R1.5 + LoRA news-run",
        "Google Gemini",
        "Linked: Gemini + VideoChat-R1.5",
    ]
    model.select("adapter:news-run").run()
    assert "fine-tuned adapter" in app.sidebar.caption[1].value
    app.switch_page("pages/models.py").run()
    table = app.dataframe[-1].value
    assert list(table["name"]) == ["news-run"] and list(table["rank"]) == [8]


def test_a_bad_setting_is_one_line_not_a_traceback(monkeypatch, tmp_path):
    app_env(monkeypatch, tmp_path, VCHAT_MAX_DOWNLOAD_MB="-5")
    app = new_app().run()
    assert not app.exception
    assert app.error[0].value.startswith("Setting max_download_mb:")
    assert "\n" not in app.error[0].value


def test_model_text_is_escaped_for_markdown():
    escaped = escape_markdown('<img src=x onerror="alert(1)"> [link](javascript:x) **bold** :red[x]\nline two')
    assert re.search(r"(?<!\\)[<>\[\]*:]", escaped) is None  # every special character escaped
    assert "\\<img" in escaped
    assert "\\[link\\]\\(javascript\\:x\\)" in escaped
    assert "\\*\\*bold\\*\\*" in escaped and "\\:red\\[x\\]" in escaped
    assert escaped.endswith("  \nline two")
