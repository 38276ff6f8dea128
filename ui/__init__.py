"""Streamlit helpers shared by the pages (sidebar, session state, progress, result views).

Nothing here does media or model work: that is `core`, which never imports streamlit.
"""
