"""Loading the local VideoChat-R1.5 model (the host, `core.models.local.host`, keeps one per process).

Where the weights come from, in this order: an explicit path (`--model-path` or
`VCHAT_MODEL_PATH`); a pre-seeded `./VideoChat-R1` folder; the hub id `VCHAT_MODEL_ID`
from the Hugging Face cache (`HF_HOME`), downloaded only when `VCHAT_MODEL_DOWNLOAD=1`.
A checkpoint whose config is not Qwen2.5-VL is refused before any weight is read: loading
it with another class would leave most weights random and the answers garbage.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import Settings
from core.errors import InputError, VChatError
from core.models.base import ModelInfo

EXPECTED_MODEL_TYPE = "qwen2_5_vl"


class ModelMissing(VChatError):
    """No weights where we looked, and no permission or way to download them."""


@dataclass
class ModelSource:
    path: Path
    origin: str  # "path", "preseeded", "hub-cache", "hub-download"
    name: str


@dataclass
class LoadedModel:
    model: Any
    processor: Any
    info: ModelInfo
    lock: threading.Lock = field(default_factory=threading.Lock)
    # LoRA adapters put on `model` by peft (core.models.local.adapters.adapter_scope), never merged:
    # `peft` wraps `model` once the first adapter is asked for; `adapters` maps each loaded
    # adapter's version (name, config hash, weights stamp) to its peft name, least recently used first.
    peft: Any = None
    adapters: OrderedDict[str, str] = field(default_factory=OrderedDict)

    @property
    def device(self) -> str:
        return str(self.model.device)


def preseed_help(settings: Settings) -> str:
    from core.commands import preseed

    return (
        f"Put the weights in {settings.preseed_dir.absolute()} (for example `{preseed(settings).command}` on a "
        "machine with internet), or point VCHAT_MODEL_PATH at a folder holding them, or set VCHAT_MODEL_DOWNLOAD=1 "
        "to let vChat download them (about 16.6 GB) into the Hugging Face cache."
    )


def check_checkpoint(path: Path) -> str:
    """Refuse a folder that is not a Qwen2.5-VL checkpoint; return its model type."""
    config_file = path / "config.json"
    if not path.is_dir():
        raise InputError(f"The model path {path} is not a folder.")
    if not config_file.is_file():
        raise InputError(f"{path} is not a model folder: it has no config.json.")
    try:
        config = json.loads(config_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{config_file} is not readable JSON: {exc}.") from exc
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type != EXPECTED_MODEL_TYPE:
        raise InputError(
            f"{path} holds a '{model_type}' checkpoint; the local backend runs Qwen2.5-VL checkpoints "
            "(VideoChat-R1.5 is one).",
            "Loading another architecture would leave most weights random; point to a VideoChat-R1.5 folder.",
        )
    return model_type


def resolve_source(settings: Settings, model_path: Path | None = None, download: bool | None = None) -> ModelSource:
    """Where the weights are: VCHAT_MODEL_PATH, the preseeded folder, the Hugging Face cache, or (when
    `download`, default VCHAT_MODEL_DOWNLOAD) a download into that cache."""
    explicit = model_path or settings.model_path
    if explicit is not None:
        path = Path(explicit).expanduser().absolute()
        check_checkpoint(path)
        return ModelSource(path, "path", path.name)
    preseeded = settings.preseed_dir.absolute()
    if (preseeded / "config.json").is_file():
        check_checkpoint(preseeded)
        return ModelSource(preseeded, "preseeded", settings.model_id)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        cached = Path(snapshot_download(settings.model_id, local_files_only=True))
        check_checkpoint(cached)
        return ModelSource(cached, "hub-cache", settings.model_id)
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        pass
    if not (settings.model_download if download is None else download):
        raise ModelMissing(f"The model {settings.model_id} is not on this machine.", preseed_help(settings))
    try:
        downloaded = Path(snapshot_download(settings.model_id))
    except Exception as exc:  # network errors of every kind: one message
        raise ModelMissing(
            f"The model {settings.model_id} could not be downloaded ({type(exc).__name__}).", preseed_help(settings)
        ) from exc
    check_checkpoint(downloaded)
    return ModelSource(downloaded, "hub-download", settings.model_id)


def _device_and_dtype(settings: Settings) -> tuple[str, Any, str, dict[str, Any]]:
    import torch

    extra: dict[str, Any] = {}
    if torch.cuda.is_available():
        try:
            import flash_attn  # noqa: F401

            attention = "flash_attention_2"
        except ImportError:
            attention = "sdpa"
        if settings.quantization != "none":
            try:
                import bitsandbytes  # noqa: F401
                from transformers import BitsAndBytesConfig
            except ImportError as exc:
                raise InputError(
                    f"VCHAT_QUANTIZATION={settings.quantization} needs the bitsandbytes package.",
                    "pip install bitsandbytes, or set VCHAT_QUANTIZATION=none.",
                ) from exc
            if settings.quantization == "8bit":
                extra["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
            else:
                extra["quantization_config"] = BitsAndBytesConfig(
                    load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_quant_type="nf4"
                )
        return "cuda", torch.bfloat16, attention, extra
    return "cpu", torch.float32, "sdpa", extra


def load_model(settings: Settings, source: ModelSource) -> LoadedModel:
    """Load the processor and model (the process's one copy is `core.models.local.host.HOST`'s)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no tqdm bars in logs and CLI output

    device, dtype, attention, extra = _device_and_dtype(settings)
    started = time.perf_counter()
    processor = AutoProcessor.from_pretrained(source.path)
    model = AutoModelForImageTextToText.from_pretrained(
        source.path, dtype=dtype, attn_implementation=attention, **extra
    )
    if model.config.model_type != EXPECTED_MODEL_TYPE:  # a config that lied about itself
        raise InputError(f"{source.path} loaded as {model.config.model_type}, not {EXPECTED_MODEL_TYPE}.")
    if "quantization_config" not in extra:
        model = model.to(device)
    model.eval()
    info = ModelInfo(
        backend="local",
        name=source.name,
        source=f"{source.origin}: {source.path}",
        device=device,
        dtype=str(dtype).replace("torch.", ""),
        load_seconds=round(time.perf_counter() - started, 3),
    )
    return LoadedModel(model, processor, info)
