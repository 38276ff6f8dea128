"""A tiny random-weight Qwen2.5-VL checkpoint, written on the fly, for tests and CI.

`write_tiny_model(directory)` saves a real `Qwen2_5_VLForConditionalGeneration` (hidden size 64,
2 text layers, 2 vision blocks) with its processor (byte-level BPE tokenizer with the Qwen special
tokens, image and video processors, Qwen2-VL chat template), so the usual

    AutoProcessor.from_pretrained(d); AutoModelForImageTextToText.from_pretrained(d)

loads it offline and `generate` runs in milliseconds on a CPU. The weights are random: the answers
are nonsense, only the plumbing (prompting, video processing, generation, decoding) is real.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

if TYPE_CHECKING:
    from transformers import Qwen2_5_VLConfig, Qwen2Tokenizer

HIDDEN_SIZE = 64
TEXT_LAYERS = 2
TEXT_HEADS = 4  # head_dim 16, so the mrope sections sum to 8
MROPE_SECTION = [2, 3, 3]
VISION_HIDDEN_SIZE = 32
VISION_DEPTH = 2
BPE_VOCAB_SIZE = 512
# Pixel bounds of Qwen2.5-VL-7B-Instruct's preprocessor_config.json (the processors' class defaults differ).
MIN_PIXELS = 56 * 56
MAX_PIXELS = 28 * 28 * 16384

# Qwen2.5-VL's special tokens, in the real tokenizer's order (ids follow the byte-level vocab).
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
# Tags VideoChat-R1.5 writes in its answers: ordinary (non-special) added tokens, kept when decoding.
TAG_TOKENS = ["<think>", "</think>", "<answer>", "</answer>", "<glue>", "</glue>"]

# Qwen2-VL's chat template (as shipped with Qwen2.5-VL-Instruct).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen2's pre-tokenizer split, so the tiny tokenizer cuts text like the real one.
_PRETOKENIZE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

_CORPUS = [
    "You are a helpful assistant. Watch the video and answer the question.",
    "What happens in this video? Describe the people, the objects and the actions.",
    "Is the claim in this video true or false? Check it against what is shown.",
    "Think first: the person walks to the table, picks up a red cup and leaves the room.",
    "Answer: a person picks up a cup. Glue: [(0.0, 2.5), (4.0, 8.0)]",
    "When does the car stop? At 12.5 seconds the car stops at the light, then it turns left.",
    "The quick brown fox jumps over the lazy dog. 0123456789 + - * / = ( ) [ ] { } , . ; : ! ?",
]

README = """# Tiny random Qwen2.5-VL checkpoint

Written by `core.models.local.tiny.write_tiny_model` for tests. It has the real Qwen2.5-VL
architecture and processor (tokenizer, image and video processors, chat template) but tiny,
RANDOM weights: it loads and generates in milliseconds, and its answers are nonsense.
Do not use it for anything but testing the plumbing.
"""


def build_tokenizer() -> Qwen2Tokenizer:
    """A byte-level BPE `Qwen2Tokenizer` trained on a small in-code corpus, plus the Qwen special tokens."""
    from transformers import AddedToken, Qwen2Tokenizer

    trainer_tok = Tokenizer(models.BPE())
    trainer_tok.normalizer = normalizers.NFC()
    trainer_tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(_PRETOKENIZE_REGEX, behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB_SIZE, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    trainer_tok.train_from_iterator(_CORPUS, trainer=trainer)
    model_state = json.loads(trainer_tok.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model_state["merges"]]
    vocab = dict(model_state["vocab"])
    for token in SPECIAL_TOKENS:  # ids right after the BPE vocab, in Qwen's order
        vocab[token] = len(vocab)

    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=32768,
    )
    tokenizer.add_special_tokens(
        {"additional_special_tokens": [AddedToken(t, special=True) for t in SPECIAL_TOKENS]},
        replace_extra_special_tokens=False,
    )
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in TAG_TOKENS])
    return tokenizer


def tiny_config(tokenizer: Qwen2Tokenizer) -> Qwen2_5_VLConfig:
    """A `Qwen2_5_VLConfig` sized for tests whose token ids match `tokenizer`."""
    from transformers import Qwen2_5_VLConfig

    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    vocab_size = -(-len(tokenizer) // 64) * 64  # padded like the real embedding matrix
    return Qwen2_5_VLConfig(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": HIDDEN_SIZE,
            "intermediate_size": 2 * HIDDEN_SIZE,
            "num_hidden_layers": TEXT_LAYERS,
            "num_attention_heads": TEXT_HEADS,
            "num_key_value_heads": 2,
            "max_position_embeddings": 32768,
            "max_window_layers": TEXT_LAYERS,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": MROPE_SECTION},
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": VISION_DEPTH,
            "hidden_size": VISION_HIDDEN_SIZE,
            "intermediate_size": 2 * VISION_HIDDEN_SIZE,
            "num_heads": 2,
            "patch_size": 14,
            "temporal_patch_size": 2,
            "spatial_merge_size": 2,
            "tokens_per_second": 2,
            "window_size": 112,
            "out_hidden_size": HIDDEN_SIZE,
            "fullatt_block_indexes": [VISION_DEPTH - 1],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )


def write_tiny_model(directory: Path, seed: int = 0, head_scale: float = 1.0, one_token: bool = False) -> Path:
    """Write the tiny random checkpoint (weights, config, processor, README) into `directory`; return it.

    `head_scale` multiplies the output head: random init gives near-uniform next-token
    probabilities that a few training steps cannot sharpen; fine-tuning tests use ~25 to get
    a real model's logit range. `one_token` makes every token an end token in its generation
    config, so each answer is one token long: a random model otherwise runs to the token budget
    (2048 a round), which is slow on a CPU even for a model this small."""
    from transformers import (
        GenerationConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS),
        chat_template=CHAT_TEMPLATE,
    )
    config = tiny_config(tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config).to(torch.float32).eval()
        if head_scale != 1.0:
            with torch.no_grad():
                model.lm_head.weight.mul_(head_scale)
    im_end, endoftext = config.text_config.eos_token_id, config.text_config.pad_token_id
    stops = list(range(config.text_config.vocab_size)) if one_token else [im_end, endoftext]
    model.generation_config = GenerationConfig(
        bos_token_id=endoftext, eos_token_id=stops, pad_token_id=endoftext, do_sample=False
    )
    model.save_pretrained(directory, safe_serialization=True)
    processor.save_pretrained(directory)
    (directory / "README.md").write_text(README, encoding="utf-8")
    return directory
