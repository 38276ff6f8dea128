"""The local Qwen2.5-VL (VideoChat-R1.5) backend, its loading and a tiny random checkpoint for tests."""
