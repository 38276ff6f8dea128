"""What the Models page reports: the loaded local model, where weights would come from, and
whether Gemini answers with a given key. Nothing here loads a model.
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel

from core.config import Settings
from core.errors import VChatError
from core.models.base import ModelInfo
from core.models.gemini.client import GeminiClient
from core.models.local import loading
from core.models.local.host import HOST


class LoadedModelStatus(BaseModel):
    info: ModelInfo
    parameters: int
    weights_bytes: int
    cuda_allocated_bytes: int | None = None
    cuda_reserved_bytes: int | None = None
    cuda_device: str | None = None


class WeightsStatus(BaseModel):
    """Where the local weights would be loaded from, or why there are none."""

    found: bool
    origin: str | None = None
    path: str | None = None
    name: str | None = None
    problem: str | None = None


class Reachability(BaseModel):
    ok: bool
    message: str
    seconds: float


def loaded_model_status() -> LoadedModelStatus | None:
    """The local model this process holds, or None (loads nothing)."""
    loaded = HOST.loaded
    if loaded is None:
        return None
    parameters = weights = 0
    for tensor in loaded.model.parameters():
        parameters += tensor.numel()
        weights += tensor.numel() * tensor.element_size()
    status = LoadedModelStatus(info=loaded.info, parameters=parameters, weights_bytes=weights)
    if loaded.device.startswith("cuda"):
        import torch

        device = loaded.model.device
        status.cuda_device = torch.cuda.get_device_name(device)
        status.cuda_allocated_bytes = torch.cuda.memory_allocated(device)
        status.cuda_reserved_bytes = torch.cuda.memory_reserved(device)
    return status


def weights_status(settings: Settings, model_path: Path | None = None) -> WeightsStatus:
    """Where the weights are, found without downloading (even with VCHAT_MODEL_DOWNLOAD=1)."""
    try:
        source = loading.resolve_source(settings, model_path, download=False)
    except VChatError as exc:
        return WeightsStatus(found=False, problem=exc.message)
    return WeightsStatus(found=True, origin=source.origin, path=str(source.path), name=source.name)


def gemini_key(settings: Settings, given: str | None) -> str | None:
    """The key a Gemini call would use: the one typed in the app, else GEMINI_API_KEY."""
    if given and given.strip():
        return given.strip()
    return settings.gemini_api_key.get_secret_value() if settings.gemini_api_key else None


def gemini_reachability(settings: Settings, api_key: str | None, model: str | None = None) -> Reachability:
    """One cheap call with the key (the model's description: no video, no tokens spent), through the
    client analyses use, so errors read as they do in an analysis and the key is scrubbed."""
    started = time.perf_counter()
    quick = settings.model_copy(
        update={
            "gemini_timeout_s": min(settings.gemini_timeout_s, 15),
            "gemini_max_wait_s": min(settings.gemini_max_wait_s, 20),
        }
    )
    try:
        client = GeminiClient(quick, api_key, model or None)
        name = client.ping()
    except VChatError as exc:
        return Reachability(ok=False, message=exc.one_line(), seconds=_since(started))
    return Reachability(
        ok=True, message=f"Gemini answers with this key: {name} ({client.model}).", seconds=_since(started)
    )


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)
