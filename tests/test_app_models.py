"""The Models page through AppTest: nothing loads on opening, loading is a button, Gemini is
checked with one cheap call (against a local server that answers like the Gemini API)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.config import get_settings
from core.models.local.host import HOST
from core.models.status import loaded_model_status
from tests.gemini_fake import VALID_KEY
from tests.support import app_env, new_app, shown, shown_text


@pytest.fixture(autouse=True)
def _fresh_settings():  # type: ignore[no-untyped-def]
    """The app reads settings from the environment set by `app_env`; later tests must not see them."""
    yield
    get_settings.cache_clear()


@pytest.fixture
def tiny(tiny_model: Path) -> Path:
    return tiny_model


def models_page(app: AppTest) -> AppTest:
    app.run()
    return app.switch_page("app_pages/models.py").run()


def button(app: AppTest, label: str):  # type: ignore[no-untyped-def]
    return next(b for b in app.button if b.label == label)


def test_opening_the_page_loads_nothing_and_the_button_does(monkeypatch, tmp_path, tiny: Path):
    HOST.unload()
    app_env(monkeypatch, tmp_path, model_path=tiny)
    app = models_page(new_app())
    assert not app.exception
    assert "No local model is loaded" in app.info[0].value
    assert shown(app.success[0].value) == f"Found (path): {tiny}"
    assert loaded_model_status() is None

    button(app, "Load the local model").click().run()
    assert not app.exception and not app.error
    assert shown(app.success[-1].value).startswith(f"{tiny.name} is loaded on cpu (took ")
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Model"] == tiny.name and metrics["Device"] == "cpu (float32)"
    assert float(metrics["Parameters"].split()[0].replace(",", "")) > 0
    facts = app.dataframe[0].value
    assert dict(zip(facts["fact"], facts["value"], strict=True))["weights from"] == f"path: {tiny}"
    assert loaded_model_status() is not None
    assert button(app, "Load the local model").disabled  # already loaded: nothing to do

    button(app, "Unload the local model").click().run()
    assert "No local model is loaded" in app.info[0].value
    assert loaded_model_status() is None


def test_missing_weights_say_how_to_pre_seed(monkeypatch, tmp_path):
    HOST.unload()
    app_env(monkeypatch, tmp_path, VCHAT_MODEL_ID="nobody/not-a-model")
    app = models_page(new_app())
    assert not app.exception
    [warning] = [shown(w.value) for w in app.main.warning]
    assert warning == "The model nobody/not-a-model is not on this machine. See how to get them below."
    assert button(app, "Load the local model").disabled
    [command] = [c.value for c in app.code if "nobody/not-a-model" in c.value]  # said once, in the open expander
    assert command == f"hf download nobody/not-a-model --local-dir {tmp_path / 'no-preseed'}"
    [how] = [e for e in app.expander if e.label.startswith("Where the local weights come from")]
    assert how.proto.expanded


def test_gemini_reachability_with_the_key_from_the_address_bar(monkeypatch, tmp_path, gemini):
    app_env(monkeypatch, tmp_path)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", gemini.base_url)  # the local Gemini fake (tests/gemini_fake.py)
    app = new_app()
    app.query_params["gemini_api_key"] = VALID_KEY
    app = models_page(app)
    assert not app.exception
    button(app, "Check Gemini").click().run()
    assert not app.error
    assert shown(app.main.success[-1].value).startswith(
        "Gemini answers with this key: Fake gemini-flash-latest (gemini-flash-latest)."
    )
    assert [r["path"] for r in gemini.requests] == ["/v1beta/models/gemini-flash-latest"]

    app.sidebar.text_input(key="gemini_model_name").input("gemini-0-nonexistent").run()
    button(app, "Check Gemini").click().run()
    assert shown(app.main.error[-1].value).startswith("Gemini has no model 'gemini-0-nonexistent'")

    app.sidebar.text_input(key="gemini_model_name").input("gemini-flash-latest")
    app.sidebar.button(key="gemini_key_change").click().run()  # another key for this session
    app.sidebar.text_input(key="gemini_api_key_input").input("a-wrong-key").run()
    button(app, "Check Gemini").click().run()
    assert shown(app.main.error[-1].value).startswith("Gemini refused the API key.")
    assert VALID_KEY not in shown_text(app) and "a-wrong-key" not in shown_text(app)


def test_gemini_check_needs_a_key(monkeypatch, tmp_path):
    app_env(monkeypatch, tmp_path)
    app = models_page(new_app())
    assert "none: type a key in the sidebar" in shown_text(app)  # no key typed, no GEMINI_API_KEY
    assert button(app, "Check Gemini").disabled
