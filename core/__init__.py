"""vChat core: everything that works, usable without Streamlit (CLI, jobs, tests)."""

__version__ = "0.1.0"
