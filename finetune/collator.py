"""One training example as model inputs: frames as at inference, labels on the answers only.

Frames come from the inference sampler itself (`round_sample` of the perception loop on the
shared `FrameSource` of the pipeline's sanitized mp4) with the run's frames / fps / pixels,
and meet the processor through the backend's own `video_inputs`. The conversation is
rendered by the model's chat template; every label is -100 except the tokens of each
assistant answer and the `<|im_end|>` that closes it, so the loss teaches the answers and
never the prompt, the system text or the visual tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.analysis.perception import round_sample
from core.config import Settings
from core.media.frames import FrameSample, frame_source
from core.models.base import AnalysisRequest
from core.models.local.engine import video_inputs
from finetune.dataset import Example, Turn
from finetune.options import TrainOptions

IGNORE = -100
ASSISTANT_HEADER = "<|im_start|>assistant\n"
END_TOKEN = "<|im_end|>"


def sampling_request(options: TrainOptions) -> AnalysisRequest:
    """The request whose first-round sampling is the training sampling (frames, fps, pixels)."""
    return AnalysisRequest(
        question="(training)", rounds=1, frames=options.frames, fps=options.fps, max_pixels=options.max_pixels
    )


def sample_frames(sanitized: Path, options: TrainOptions, settings: Settings) -> FrameSample:
    """The frames the app would give the model for this video with these settings (round 1)."""
    source = frame_source(sanitized, settings.frame_cache_mb * 1024 * 1024)
    return round_sample(source, sampling_request(options), None)


def conversation(turns: list[Turn]) -> list[dict[str, Any]]:
    """Chat-template messages; the video goes first in the first user turn, as the app sends it."""
    messages: list[dict[str, Any]] = []
    video_placed = False
    for turn in turns:
        content: list[dict[str, Any]] = [{"type": "text", "text": turn.text}]
        if turn.role == "user" and not video_placed:
            content.insert(0, {"type": "video"})
            video_placed = True
        messages.append({"role": turn.role, "content": content})
    return messages


def assistant_labels(input_ids: Any, tokenizer: Any) -> Any:
    """Labels for a (1, L) id tensor: the ids of every assistant answer and its end token, else -100."""
    header = tokenizer.encode(ASSISTANT_HEADER, add_special_tokens=False)
    end = tokenizer.convert_tokens_to_ids(END_TOKEN)
    ids = input_ids[0].tolist()
    labels = [IGNORE] * len(ids)
    i = 0
    while i <= len(ids) - len(header):
        if ids[i : i + len(header)] != header:
            i += 1
            continue
        j = i + len(header)
        while j < len(ids) and ids[j] != end:
            labels[j] = ids[j]
            j += 1
        if j < len(ids):
            labels[j] = end  # the model must learn to stop
        i = j + 1
    return input_ids.new_tensor([labels])


def encode_example(processor: Any, example: Example, sample: FrameSample) -> dict[str, Any]:
    """Model inputs (batch of one) with `labels` for `example` shown `sample`'s frames."""
    text = processor.apply_chat_template(conversation(example.turns), tokenize=False)
    inputs = dict(video_inputs(processor, text, sample))
    labels = assistant_labels(inputs["input_ids"], processor.tokenizer)
    answers = sum(turn.role == "assistant" for turn in example.turns)
    ends = int((labels == processor.tokenizer.convert_tokens_to_ids(END_TOKEN)).sum())
    if ends != answers:  # a template whose assistant header tokenizes otherwise: never train on nothing
        raise ValueError(f"line {example.line}: found {ends} of {answers} assistant answers in the chat template")
    inputs["labels"] = labels
    return inputs


class Collator:
    """Example -> inputs, sampling frames through the shared (memory-cached) frame sources."""

    def __init__(self, processor: Any, options: TrainOptions, settings: Settings) -> None:
        self.processor = processor
        self.options = options
        self.settings = settings

    def __call__(self, example: Example) -> dict[str, Any]:
        sample = sample_frames(example.sanitized_path, self.options, self.settings)
        return encode_example(self.processor, example, sample)
