"""Text from outside is shown as text: a server's reason phrase in a download error, a Gemini
model name from the address bar, an upload's file name. Their markdown and HTML come out
escaped (no link, no image, no markup), and read as they were written.

The last test checks the code itself: no page or view calls st.error / st.warning / st.info /
st.success / st.toast / st.status / st.spinner around ui/feedback.py, and st.markdown / st.caption
get only literal strings or text made safe by `md` / `plain`.
"""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.config import get_settings
from tests.gemini_fake import VALID_KEY
from tests.support import ROOT, AppPaths, LocalServer, answer_with_reason, app_env, button, new_app, shown

pytestmark = pytest.mark.timeout(300)

# Markdown that would load an image from, and link to, a host of the attacker's choosing.
REASON = "![pixel]({base}/pixel.png) [Fix: click here]({base}/phish)"
MODEL_NAME = "![pixel](http://127.0.0.1:9/pixel2.png) [Fix: click here](http://127.0.0.1:9/phish2)"
# An upload's name keeps no folder, so no slash: relative links, and HTML.
UPLOAD_NAME = '[click](phish3)![i](pixel3.png)<img src="x" onerror="alert(1)">.mp4'


@pytest.fixture(autouse=True)
def _fresh_settings():  # type: ignore[no-untyped-def]
    yield
    get_settings.cache_clear()


@pytest.fixture
def paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: Path, clips: dict[str, Path]) -> AppPaths:
    paths = app_env(monkeypatch, tmp_path, model_path=tiny_model)
    shutil.copyfile(clips["h264"], paths.media_dir / "clip.mp4")
    return paths


def texts(app: AppTest) -> list[str]:
    """Every markdown string on the page: texts, captions, alerts, status labels."""
    kinds = ("markdown", "caption", "info", "warning", "error", "success")
    return [str(e.value) for kind in kinds for e in getattr(app, kind)] + [s.label for s in app.status]


def assert_shown_as_text(value: str, payload: str) -> None:
    """`value` (markdown) reads as `payload` literally, with all of the payload's markup escaped."""
    assert payload in shown(value), value
    assert re.search(r"(?<!\\)[\[\]()!<>\"=]", value) is None, value  # every special character escaped


def assert_no_markup(app: AppTest) -> None:
    """No text on the page opens a link, an image or an HTML tag."""
    for value in texts(app):
        assert re.search(r"(?<!\\)(\]\(|!\[|<[a-zA-Z/])", value) is None, value


def test_a_servers_reason_phrase_in_a_download_error_is_text(paths: AppPaths, server: LocalServer):
    reason = REASON.format(base=server.url(""))
    url = answer_with_reason(server, "/clip.mp4", 418, reason)
    app = new_app().run()
    app.text_input(key="source_url").input(url)
    app.text_area(key="question").input("What is shown?")
    button(app, "Analyze").click().run()
    assert not app.exception
    [error] = app.error
    assert "HTTP Error 418" in shown(error.value)
    assert_shown_as_text(error.value, reason)
    assert "\\!\\[pixel\\]" in error.value and "\\[Fix\\: click here\\]" in error.value
    assert app.status[0].state == "error"
    assert_no_markup(app)
    assert "/pixel.png" not in server.hits and "/phish" not in server.hits


def test_a_gemini_model_name_from_the_address_bar_is_text(monkeypatch, tmp_path, clips, gemini):  # type: ignore[no-untyped-def]
    paths = app_env(monkeypatch, tmp_path)
    shutil.copyfile(clips["h264"], paths.media_dir / "clip.mp4")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", gemini.base_url)  # nothing should reach it
    app = new_app()
    app.query_params["gemini_api_key"] = VALID_KEY
    app.query_params["gemini_model_name"] = MODEL_NAME
    app.run()
    app.sidebar.selectbox(key="model_choice").select("gemini")
    app.radio(key="source_kind").set_value("Media folder").run()
    app.selectbox(key="source_file").select("clip.mp4")
    app.text_area(key="question").input("What is shown?")
    button(app, "Analyze").click().run()
    assert not app.exception
    [error] = app.error
    assert "is not a Gemini model name" in shown(error.value)
    assert_shown_as_text(error.value, MODEL_NAME)
    assert "\\!\\[pixel\\]" in error.value and "\\[Fix\\: click here\\]" in error.value
    assert_no_markup(app)

    app.switch_page("app_pages/models.py").run()  # the Gemini section names the model, and checks it
    [described] = [m.value for m in app.markdown if m.value.startswith("Key:")]
    assert_shown_as_text(described, MODEL_NAME)
    button(app, "Check Gemini").click().run()
    [error] = app.main.error
    assert_shown_as_text(error.value, MODEL_NAME)
    assert_no_markup(app)
    assert not gemini.requests


def test_an_uploads_file_name_is_text(paths: AppPaths):
    app = new_app().run()
    app.radio(key="source_kind").set_value("Upload").run()
    app.file_uploader(key="source_upload").upload(UPLOAD_NAME, b"just some text, not a video\n" * 64, "video/mp4")
    app.text_area(key="question").input("What is shown?")
    button(app, "Analyze").click().run()
    assert not app.exception
    [error] = app.error
    assert "not a video" in shown(error.value)
    assert_shown_as_text(error.value, f"'{UPLOAD_NAME}'")
    assert "\\[click\\]\\(phish3\\)\\!\\[i\\]" in error.value and "\\<img src\\=" in error.value
    assert app.status[0].state == "error"
    assert_no_markup(app)


# --- no call site around ui/feedback.py --------------------------------------------------------------

ALERTS = {"error", "warning", "info", "success", "toast", "exception", "status", "spinner"}
MARKDOWN = {"markdown", "caption"}
LABELS = {"update": "label", "progress": "text"}  # status.update(label=...), st.progress(text=...)
SAFE = {"md", "plain"}
LOGGERS = {"log", "logger", "logging"}


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else None


def _safe(node: ast.expr) -> bool:
    """A literal string, text made safe by md/plain, or a choice between such."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.Call):
        return _name(node.func) in SAFE
    if isinstance(node, ast.BoolOp):
        return all(_safe(value) for value in node.values)
    if isinstance(node, ast.IfExp):
        return _safe(node.body) and _safe(node.orelse)
    return False


def _logger(node: ast.expr) -> bool:
    if isinstance(node, ast.Call):
        return _name(node.func) == "getLogger"
    return _name(node) in LOGGERS


def unsafe_calls(source: str, name: str) -> list[str]:
    """Calls in `source` that would show text without ui/feedback.py's escaping."""
    found = []
    for node in ast.walk(ast.parse(source, name)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        attr, where = node.func.attr, f"{name}:{node.lineno}"
        if attr in ALERTS and not _logger(node.func.value):
            found.append(f"{where}: .{attr}( outside ui/feedback.py")
        elif attr in MARKDOWN and not (node.args and _safe(node.args[0])):
            found.append(f"{where}: .{attr}( of text not made safe by md() or plain()")
        elif any(k.arg == LABELS.get(attr) and not _safe(k.value) for k in node.keywords):
            found.append(f"{where}: .{attr}({LABELS[attr]}=...) not made safe by md() or plain()")
    return found


def test_every_message_goes_through_the_feedback_helpers():
    files = [ROOT / "Home.py", *sorted((ROOT / "app_pages").glob("*.py")), *sorted((ROOT / "ui").glob("*.py"))]
    checked = [path for path in files if path.name != "feedback.py"]
    assert len(checked) > 10
    found = [line for path in checked for line in unsafe_calls(path.read_text(), str(path.relative_to(ROOT)))]
    assert found == []
    # the checker finds what it is for
    sample = (
        "st.error(message)\nslot.info(f'{x}')\nst.caption(f'{name}')\nst.markdown(text)\n"
        "status.update(label=message)\nst.status(label)\nst.progress(0.5, text=name)\n"
        "log.info('fine')\nlogging.getLogger(__name__).exception('fine')\nst.caption('fine')\n"
        "st.markdown(md('**{}**', x))\nst.caption(plain(x) or 'none')\nst.progress(0.5, text=plain(name))\n"
    )
    assert [line.split(":")[1] for line in unsafe_calls(sample, "sample")] == ["1", "2", "3", "4", "5", "6", "7"]
