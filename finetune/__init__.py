"""LoRA fine-tuning of the local model (VideoChat-R1.5 / Qwen2.5-VL) on a user's videos.

`python -m finetune --data FILE.jsonl` validates the dataset, trains a LoRA adapter on the
language model only, and writes a run folder under the adapters dir that the app serves
without a restart. `finetune.runs` starts, watches and cancels such runs from the app,
always as a subprocess (the app holds CUDA; a fork of it must never train).

Modules that the app imports (`options`, `dataset`, `datasets`, `run_files`, `runs`) import no
torch, and `datasets`, `run_files` and `runs` not even the media pipeline (PyAV) until a dataset is
checked: `datasets` lists and stores the dataset files the page offers, `runs` reads a run's state,
progress, summary and console.
"""
