"""VideoChat-R1.5 served by vLLM (OpenAI-compatible servers): the `vllm` frame engine (engine.py) and the
servers it spreads its requests over (client.py)."""
