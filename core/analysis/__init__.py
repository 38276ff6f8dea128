"""Analysis: the perception loop, and (later) factuality checks and reports."""
