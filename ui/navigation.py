"""The app's pages: the ones in app_pages/ that exist, in a fixed order (later issues add files)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES_DIR = Path(__file__).resolve().parents[1] / "app_pages"

# file stem -> (title, icon, URL path); known pages in this order, any other page file after them.
# The URL path is the file's stem: /analyze, /models... (bookmarkable).
KNOWN = {
    "analyze": ("Analyze", ":material/movie:", "analyze"),
    "factcheck": ("Fact-check", ":material/fact_check:", "factcheck"),
    "batch": ("Batch", ":material/table_view:", "batch"),
    "finetune": ("Fine-tune", ":material/model_training:", "finetune"),
    "models": ("Models", ":material/memory:", "models"),
}
DEFAULT = "analyze"


def _page_spec(stem: str) -> tuple[str, str, str]:
    if stem in KNOWN:
        return KNOWN[stem]
    return stem.replace("_", " ").capitalize(), ":material/article:", stem


def app_pages() -> list[st.Page]:
    files = {path.stem: path for path in PAGES_DIR.glob("*.py") if not path.name.startswith("_")}
    order = [stem for stem in KNOWN if stem in files] + sorted(stem for stem in files if stem not in KNOWN)
    pages = []
    for stem in order:
        title, icon, url_path = _page_spec(stem)
        pages.append(st.Page(files[stem], title=title, icon=icon, url_path=url_path, default=stem == DEFAULT))
    return pages
