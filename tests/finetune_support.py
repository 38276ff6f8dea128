"""What the fine-tune tests share (not a test module): generated red/blue clips and datasets, the
tiny checkpoint with a head that can learn, the colour world and its training run. The session
fixtures built on these (`learnable_tiny_model`, `colour_world`, `colour_run`) are in conftest.py.

The tiny checkpoint's random output head (std 0.02 over a hidden size of 64) can only express
near-uniform next-token distributions, whatever the layers below do; the training runs use a copy
whose head is scaled up to a real model's logit range, so that a frozen head and a LoRA on the
layers can learn something at all. Everything else is the real code path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.config import Settings
from core.models.local.tiny import write_tiny_model
from finetune.options import TrainOptions
from tests.media_factory import encode_frames

QUESTION = "What colour is the video?"
RED, BLUE = (220, 20, 20), (20, 20, 220)
HEAD_SCALE = 25.0
# The training run the colour tests share: 60 steps of one example each on 4 frames of 28x56. Checked
# over seeds 0-6: at lr 5e-3 for 60 steps each seed learns both colours; 30 steps at 1e-2 (the earlier
# setting) learned them for seed 0 only, and which frames were sampled decided the coin toss.
STEPS = 60
RUN_ARGS = {"max_steps": STEPS, "frames": 4, "max_pixels": 56 * 56, "grad_accum": 1, "lr": 5e-3, "eval_split": 0.25}


def make_colour_clip(path: Path, rgb: tuple[int, int, int], seed: int, frames: int = 8, fps: int = 4) -> Path:
    """A 96x64 h264 clip of one colour with a grey square at a seeded random place in each frame."""
    rng = np.random.default_rng(seed)
    width, height = 96, 64

    def images() -> Iterator[np.ndarray]:
        for _ in range(frames):
            image = np.empty((height, width, 3), np.uint8)
            image[:] = rgb
            x, y = rng.integers(0, width - 16), rng.integers(0, height - 16)
            image[y : y + 16, x : x + 16] = 128
            yield image

    return encode_frames(path, images(), fps=fps, options={"preset": "ultrafast", "crf": "18"})


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def text_line(video: str, answer: str) -> dict[str, str]:
    return {"video_path": video, "text": f"USER: {QUESTION}\nASSISTANT: {answer}"}


def chat_line(video: str, answer: str) -> dict[str, object]:
    return {
        "video_path": video,
        "messages": [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": answer}],
    }


def scaled_head_model(directory: Path) -> Path:
    """The tiny checkpoint with its output head scaled to a real model's logit range (see above)."""
    return write_tiny_model(directory, head_scale=HEAD_SCALE)


@dataclass
class ColourWorld:
    """Settings in a session folder, a tiny model, and a red/blue dataset in both formats."""

    root: Path
    settings: Settings
    model: Path
    data: Path
    bad_line: int
    fresh: dict[str, Path]  # clips no training line uses, in the media dir

    def options(self, name: str, **extra: object) -> TrainOptions:
        return TrainOptions(
            data=self.data,
            output=self.settings.adapters_dir / name,
            model_path=self.model,
            **{**RUN_ARGS, "skip_bad_lines": True, "save_every": 10, **extra},
        )


def make_colour_world(root: Path, model: Path) -> ColourWorld:
    """Eight red and blue clips beside a dataset in both line formats, one line without an answer
    (line 9, skipped), one clip found in the media dir, and two fresh clips no line uses."""
    settings = Settings(
        data_dir=root / "data", media_dir=root / "videos", adapters_dir=root / "lora_adapters", frame_cache_mb=64
    )
    settings.media_dir.mkdir()
    folder = root / "dataset"
    rows: list[object] = []
    for i in range(8):
        colour = "red" if i % 2 == 0 else "blue"
        make_colour_clip(folder / "clips" / f"{colour}{i}.mp4", RED if colour == "red" else BLUE, seed=i)
        line = chat_line if i % 3 == 0 else text_line
        rows.append(line(f"clips/{colour}{i}.mp4", f"It is {colour}."))
    rows.append({"video_path": "clips/red0.mp4", "text": f"USER: {QUESTION}"})  # no answer: skipped
    make_colour_clip(settings.media_dir / "media_blue.mp4", BLUE, seed=50)  # found in the media dir
    rows.append(text_line("media_blue.mp4", "It is blue."))
    fresh = {
        "red": make_colour_clip(settings.media_dir / "fresh_red.mp4", RED, seed=101),
        "blue": make_colour_clip(settings.media_dir / "fresh_blue.mp4", BLUE, seed=102),
    }
    return ColourWorld(root, settings, model, write_jsonl(folder / "data.jsonl", rows), 9, fresh)
