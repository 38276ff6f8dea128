"""The app's entry page renders (the full app arrives with its own issue)."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]


def test_home_renders_without_exception():
    app = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=60)
    app.run()
    assert not app.exception
    assert app.title[0].value == "vChat"
    assert "python -m core fetch" in app.info[0].value
