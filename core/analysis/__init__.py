"""Flows built on engines: the perception loop, the digest, linked mode, the runner and the result
store (and the fact-check and batch flows)."""
