"""Engines: what turns a prompt (with frames, or a whole video) into text; the registry of them; the
local model host. Never imports core.analysis (the flows built on engines)."""
