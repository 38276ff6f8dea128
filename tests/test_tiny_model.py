"""The tiny random Qwen2.5-VL checkpoint loads with the Auto classes and generates from a video, offline, on CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.models.local.tiny import SPECIAL_TOKENS, TAG_TOKENS, write_tiny_model

FRAMES = 8
SIDE = 112  # a multiple of 28: frames the app already resized
# 8 frames sampled uniformly from a 10 s clip of 250 frames at 25 fps: 0.8 sampled frames per second.
METADATA = {"fps": 25.0, "total_num_frames": 250, "frames_indices": list(range(0, 250, 32))[:FRAMES]}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny-qwen2_5_vl"))


@pytest.fixture(scope="module")
def loaded(tiny_dir: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_dir, local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(tiny_dir, local_files_only=True).eval()
    return processor, model


def _frames() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (FRAMES, SIDE, SIDE, 3), dtype=np.uint8)


def _prompt(processor: Any, question: str) -> str:
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]
    return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def test_files_and_readme(tiny_dir: Path) -> None:
    names = {p.name for p in tiny_dir.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json"} <= names
    assert {"processor_config.json", "chat_template.jinja", "README.md"} <= names
    assert "RANDOM" in (tiny_dir / "README.md").read_text()
    assert sum(p.stat().st_size for p in tiny_dir.iterdir()) < 5_000_000


def test_loads_as_qwen2_5_vl(loaded: tuple[Any, Any]) -> None:
    processor, model = loaded
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    assert type(processor.video_processor).__name__ == "Qwen2VLVideoProcessor"
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert model.config.model_type == "qwen2_5_vl"
    assert model.config.architectures == ["Qwen2_5_VLForConditionalGeneration"]


def test_token_ids_match_config(loaded: tuple[Any, Any]) -> None:
    processor, model = loaded
    tok, config = processor.tokenizer, model.config
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS + TAG_TOKENS}
    assert len(set(ids.values())) == len(ids)
    assert config.image_token_id == ids["<|image_pad|>"]
    assert config.video_token_id == ids["<|video_pad|>"]
    assert config.vision_start_token_id == ids["<|vision_start|>"]
    assert config.vision_end_token_id == ids["<|vision_end|>"]
    assert config.text_config.vocab_size >= len(tok)
    assert ids["<|im_end|>"] in model.generation_config.eos_token_id
    assert model.generation_config.pad_token_id == ids["<|endoftext|>"]
    # the answer tags are single, ordinary tokens: kept when decoding with skip_special_tokens
    text = "<think>a</think><answer>b</answer><glue>[(0.0, 1.0)]</glue>"
    encoded = tok.encode(text, add_special_tokens=False)
    assert all(ids[t] in encoded for t in TAG_TOKENS)
    assert tok.decode(encoded, skip_special_tokens=True) == text


def test_chat_template(loaded: tuple[Any, Any]) -> None:
    processor, _ = loaded
    assert _prompt(processor, "What happens?") == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>What happens?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_generates_from_video(loaded: tuple[Any, Any]) -> None:
    import torch

    processor, model = loaded
    inputs = processor(
        text=[_prompt(processor, "What happens in this video?")],
        videos=[_frames()],
        video_metadata=[METADATA],
        do_sample_frames=False,
        do_resize=False,
        return_tensors="pt",
    )
    # 8 frames of 112x112: 4 temporal x 8x8 patches, 2x2-merged into 64 video tokens
    assert inputs["video_grid_thw"].tolist() == [[4, 8, 8]]
    assert int((inputs["input_ids"] == model.config.video_token_id).sum()) == 64
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=16, do_sample=False)
    new_tokens = output[0, inputs["input_ids"].shape[1] :]
    assert 1 <= new_tokens.shape[0] <= 16
    assert isinstance(processor.tokenizer.decode(new_tokens, skip_special_tokens=True), str)


def test_video_metadata_sets_time_positions(loaded: tuple[Any, Any]) -> None:
    """second_per_grid_ts = temporal_patch_size / sampled fps, from the metadata (not the 24 fps default)."""
    processor, _ = loaded
    text = [_prompt(processor, "When?")]
    inputs = processor(
        text=text, videos=[_frames()], video_metadata=[METADATA], return_tensors="pt", do_sample_frames=False
    )
    sampled_fps = len(METADATA["frames_indices"]) / METADATA["total_num_frames"] * METADATA["fps"]
    expected = processor.video_processor.temporal_patch_size / sampled_fps
    assert expected == pytest.approx(2.5)
    assert inputs["second_per_grid_ts"].tolist() == pytest.approx([expected])
    # without metadata transformers assumes 24 fps: the check above would catch metadata being dropped
    default = processor(text=text, videos=[_frames()], return_tensors="pt", do_sample_frames=False)
    assert default["second_per_grid_ts"].tolist() == pytest.approx([2 / 24])


def test_weights_are_reproducible(tiny_dir: Path, tmp_path: Path) -> None:
    again = write_tiny_model(tmp_path / "again", seed=0)
    assert (again / "model.safetensors").read_bytes() == (tiny_dir / "model.safetensors").read_bytes()
    other = write_tiny_model(tmp_path / "other", seed=1)
    assert (other / "model.safetensors").read_bytes() != (tiny_dir / "model.safetensors").read_bytes()
