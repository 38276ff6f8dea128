"""The app shell (Home.py): navigation, the shared sidebar, the Gemini key from the address bar."""

from __future__ import annotations

import json
import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.models.local.host import HOST
from core.models.status import loaded_model_status
from tests.support import app_env, new_app, shown, shown_text
from ui.text import escape_markdown

ROOT = Path(__file__).resolve().parents[1]
HOME = str(ROOT / "Home.py")


def test_every_page_renders_without_a_model_loaded(monkeypatch, tmp_path):
    HOST.unload()
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
    app.switch_page("app_pages/models.py").run()
    assert not app.exception
    assert [t.value for t in app.main.title] == ["Models"]
    assert "No local model is loaded" in app.info[0].value
    # the sidebar is drawn on every page, with the same settings
    assert app.sidebar.selectbox(key="model_choice").value == "local"
    app.switch_page("app_pages/analyze.py").run()
    assert not app.exception and app.main.title[0].value == "Analyze a video"
    assert loaded_model_status() is None  # opening pages loaded nothing


def test_gemini_key_moves_from_the_address_bar_into_session_state(monkeypatch, tmp_path):
    app_env(monkeypatch, tmp_path)
    app = new_app()
    app.query_params["gemini_api_key"] = "Qk7w-query-key-123"
    app.query_params["gemini_model_name"] = "gemini-test-model"
    app.query_params["other"] = "kept"
    app.run()
    assert not app.exception
    assert "gemini_api_key" not in app.query_params and "gemini_model_name" not in app.query_params
    assert app.query_params["other"] == "kept"
    assert app.session_state["gemini_api_key"] == "Qk7w-query-key-123"
    assert_key_set(app, "Qk7w-query-key-123")
    assert app.sidebar.text_input(key="gemini_model_name").value == "gemini-test-model"
    app.run()  # the next run keeps it in the session, still not in the URL
    assert app.session_state["gemini_api_key"] == "Qk7w-query-key-123"
    assert "gemini_api_key" not in app.query_params
    app.switch_page("app_pages/models.py").run()
    assert "a key typed in this session" in shown_text(app)
    assert_key_set(app, "Qk7w-query-key-123")


def sidebar_says(app: AppTest) -> str:
    return "\n".join(shown(e.value) for kind in ("success", "caption") for e in getattr(app.sidebar, kind))


def assert_key_set(app: AppTest, key: str) -> None:
    """The sidebar says a key is set and offers Change; the key itself is in no widget and no text."""
    assert "Gemini key set for this session" in sidebar_says(app)
    assert [b.label for b in app.sidebar.button if b.key == "gemini_key_change"] == ["Change"]
    assert not [t for t in app.text_input if t.key == "gemini_api_key_input"]  # no password field
    assert key not in [t.value for t in app.text_input]
    assert key not in shown_text(app) and key[:6] not in shown_text(app)


def test_a_typed_key_moves_into_the_session_and_change_brings_the_empty_field_back(monkeypatch, tmp_path):
    app_env(monkeypatch, tmp_path)
    app = new_app().run()
    field = app.sidebar.text_input(key="gemini_api_key_input")
    assert field.label == "Gemini API key" and field.value == ""
    assert "No server-side GEMINI_API_KEY: type a key to use Gemini." in sidebar_says(app)

    field.input("Tz3v-typed-key-456").run()  # Enter
    assert not app.exception
    assert app.session_state["gemini_api_key"] == "Tz3v-typed-key-456"
    assert_key_set(app, "Tz3v-typed-key-456")
    assert "Gemini calls use this key." in sidebar_says(app)
    app.run()  # still set on the next run
    assert_key_set(app, "Tz3v-typed-key-456")
    app.switch_page("app_pages/models.py").run()
    assert "Key: a key typed in this session" in shown_text(app)
    assert_key_set(app, "Tz3v-typed-key-456")

    app.sidebar.button(key="gemini_key_change").click().run()
    assert not app.exception
    assert app.session_state["gemini_api_key"] == ""
    assert app.sidebar.text_input(key="gemini_api_key_input").value == ""
    assert "Gemini key set for this session" not in sidebar_says(app)
    assert "Key: none" in shown_text(app)
    assert "Tz3v-typed-key-456" not in [t.value for t in app.text_input]


def test_a_server_side_key_needs_no_query_param(monkeypatch, tmp_path):
    app_env(monkeypatch, tmp_path, GEMINI_API_KEY="server-key")
    app = new_app().run()
    assert "The server has a GEMINI_API_KEY: Gemini calls use it." in sidebar_says(app)
    app.switch_page("app_pages/models.py").run()
    assert "the server's GEMINI_API_KEY" in shown_text(app)
    assert "server-key" not in shown_text(app)
    app.sidebar.text_input(key="gemini_api_key_input").input("Sx9p-session-key").run()  # replaces it here
    assert "Gemini calls use this key instead of the server's GEMINI_API_KEY." in sidebar_says(app)
    assert "Key: a key typed in this session" in shown_text(app)
    assert_key_set(app, "Sx9p-session-key")


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
    assert "fine-tuned adapter" in shown(app.sidebar.caption[1].value)
    app.switch_page("app_pages/models.py").run()
    table = app.dataframe[-1].value
    assert list(table["name"]) == ["news-run"] and list(table["rank"]) == [8]


def test_a_bad_setting_is_one_line_not_a_traceback(monkeypatch, tmp_path):
    app_env(monkeypatch, tmp_path, VCHAT_MAX_DOWNLOAD_MB="-5")
    app = new_app().run()
    assert not app.exception
    assert shown(app.error[0].value).startswith("Setting max_download_mb:")
    assert "\n" not in app.error[0].value


def test_model_text_is_escaped_for_markdown():
    escaped = escape_markdown('<img src=x onerror="alert(1)"> [link](javascript:x) **bold** :red[x]\nline two')
    assert re.search(r"(?<!\\)[<>\[\]*:]", escaped) is None  # every special character escaped
    assert "\\<img" in escaped
    assert "\\[link\\]\\(javascript\\:x\\)" in escaped
    assert "\\*\\*bold\\*\\*" in escaped and "\\:red\\[x\\]" in escaped
    assert escaped.endswith("  \nline two")
    assert shown(escaped) == '<img src=x onerror="alert(1)"> [link](javascript:x) **bold** :red[x]\nline two'


def test_bare_urls_and_addresses_are_not_linked():
    """GFM links a bare URL or e-mail address even when each character is escaped: an invisible
    word joiner after http(s), www and @ breaks the pattern; the text reads the same."""
    text = "See https://evil.example/x, HTTP://a.example, www.b.example or me@c.example."
    escaped = escape_markdown(text)
    for literal in ("https://", "HTTP://", "www.", "@c"):
        assert literal not in escaped.replace("\\", "")
    assert "https\u2060\\:\\/\\/evil" in escaped and "me\\@\u2060c" in escaped
    assert shown(escaped) == text
