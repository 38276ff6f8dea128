"""vChat: the app shell. Pages come from app_pages/; the sidebar holds the settings they share.

Run with `make run` (http://localhost:8005). A Gemini key may be bookmarked as
`/?gemini_api_key=...&gemini_model_name=...`: both move into this session's state and
the key leaves the address bar at once. A server-side GEMINI_API_KEY needs none of that.
"""

from ui.shell import run_app

run_app()
