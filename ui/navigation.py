"""The app's pages: the ones in pages/ that exist, in a fixed order (later issues add files)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES_DIR = Path(__file__).resolve().parents[1] / "pages"

# file stem -> (title, icon, URL path); known pages in this order, any other page file after them.
# A URL path never equals its file's stem: Streamlit hashes both the same way, and on a run that
# still takes the legacy pages/-folder route (a process's first run, every AppTest run) a page
# whose hash matched would run without Home.py around it (no sidebar, no query-param handling).
KNOWN = {
    "analyze": ("Analyze", ":material/movie:", "analysis"),
    "factcheck": ("Fact-check", ":material/fact_check:", "fact-check"),
    "batch": ("Batch", ":material/table_view:", "batch-jobs"),
    "finetune": ("Fine-tune", ":material/model_training:", "fine-tune"),
    "models": ("Models", ":material/memory:", "model-info"),
}
DEFAULT = "analyze"


def _page_spec(stem: str) -> tuple[str, str, str]:
    if stem in KNOWN:
        return KNOWN[stem]
    return stem.replace("_", " ").capitalize(), ":material/article:", f"{stem.replace('_', '-')}-page"


def app_pages() -> list[st.Page]:
    files = {path.stem: path for path in PAGES_DIR.glob("*.py") if not path.name.startswith("_")}
    order = [stem for stem in KNOWN if stem in files] + sorted(stem for stem in files if stem not in KNOWN)
    pages = []
    for stem in order:
        title, icon, url_path = _page_spec(stem)
        pages.append(st.Page(files[stem], title=title, icon=icon, url_path=url_path, default=stem == DEFAULT))
    return pages
