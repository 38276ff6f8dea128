"""LoRA on the language model's attention and MLP projections, nothing else.

Qwen2.5-VL's vision blocks also have `gate_proj/up_proj/down_proj`, so a list of names (or
`all-linear`) would put LoRA on the vision tower too and the adapter would change how the
video is seen. peft matches a string `target_modules` with `re.fullmatch` against module
names, which in transformers 5.x are `model.language_model.layers.N.self_attn.q_proj` and
`model.language_model.layers.N.mlp.gate_proj` (the vision tower is `model.visual.blocks...`).
Embeddings and lm_head are not targeted, and peft freezes every non-LoRA weight.
"""

from __future__ import annotations

import re
from typing import Any

LORA_TARGET = r".*language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def lora_config(rank: int, alpha: float, dropout: float) -> Any:
    from peft import LoraConfig

    # task_type stays None: a plain PeftModel forwards every keyword (pixel_values_videos,
    # video_grid_thw, second_per_grid_ts...) to the model untouched.
    return LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=LORA_TARGET, bias="none")


def lora_module_names(model: Any) -> list[str]:
    """Names of the modules that carry a LoRA adapter (those holding `lora_A`)."""
    return sorted(
        name
        for name, module in model.named_modules()
        if hasattr(module, "lora_A") and len(getattr(module, "lora_A", {})) > 0
    )


def targets_language_model_only(names: list[str]) -> bool:
    """True when every name is a language-model projection (and none is in the vision tower)."""
    return (
        bool(names)
        and all(re.fullmatch(LORA_TARGET, _strip_peft_prefix(n)) for n in names)
        and not any("visual" in n for n in names)
    )


def _strip_peft_prefix(name: str) -> str:
    return name.removeprefix("base_model.model.")
