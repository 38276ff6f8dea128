"""The local engine: VideoChat-R1.5 (any Qwen2.5-VL checkpoint) with transformers, on the one model
the process hosts (`core.models.local.host`), LoRA adapters switched per request."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

from core.config import Settings
from core.errors import VChatError
from core.media.frames import FrameIndex, FrameSample, smart_resize
from core.models.base import AnalysisRequest, GenerationSettings, ModelInfo
from core.models.engine import Capabilities, Generation, PartialFn, Readiness
from core.models.local.adapters import AdapterInfo, adapter_scope, get_adapter, sampling_mismatch
from core.models.local.host import HOST, ModelHost
from core.models.local.loading import LoadedModel, ModelMissing, ModelSource, resolve_source

TOKEN_PATCH = 28  # one visual token per 28x28 pixels after the 2x2 merge
TEMPORAL_PATCH = 2  # frames per temporal token


def visual_tokens(index: FrameIndex, frames: int, max_pixels: int) -> int:
    height, width = smart_resize(index.height, index.width, max_pixels=max_pixels)
    return math.ceil(frames / TEMPORAL_PATCH) * (height // TOKEN_PATCH) * (width // TOKEN_PATCH)


def clip_to_budget(request: AnalysisRequest, index: FrameIndex, budget: int) -> tuple[AnalysisRequest, list[str]]:
    """Lower the pixels per frame (then the frame count) until a round fits `budget` tokens."""
    wanted = visual_tokens(index, request.frames, request.max_pixels)
    if wanted <= budget:
        return request, []
    frames, max_pixels = request.frames, request.max_pixels
    min_pixels = 4 * TOKEN_PATCH * TOKEN_PATCH
    while visual_tokens(index, frames, max_pixels) > budget and max_pixels > min_pixels:
        max_pixels = max(min_pixels, int(max_pixels * 0.8))
    while visual_tokens(index, frames, max_pixels) > budget and frames > 2:
        frames -= 2
    clipped = request.model_copy(update={"frames": frames, "max_pixels": max_pixels})
    note = (
        f"The request needed {wanted} visual tokens a round, above the budget of {budget} "
        f"(VCHAT_MAX_VISUAL_TOKENS): clipped to {frames} frames of at most {max_pixels} pixels."
    )
    return clipped, [note]


def _generate_kwargs(settings: GenerationSettings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "max_new_tokens": settings.max_new_tokens,
        "repetition_penalty": settings.repetition_penalty,
        "do_sample": not settings.greedy,
    }
    if not settings.greedy:
        kwargs.update(temperature=settings.temperature, top_p=settings.top_p)
    return kwargs


def video_inputs(processor: Any, text: str, sample: FrameSample) -> Any:
    """The processor's tensors for one chat text and its video: the only place frames meet the
    processor, so fine-tuning (finetune/collator.py) feeds the model exactly as inference does."""
    return processor(
        text=[text],
        videos=[sample.frames],
        video_metadata=[sample.video_metadata()],
        do_sample_frames=False,  # the frames are already sampled, with their true times
        do_resize=False,  # and already resized to the pixel budget in multiples of 28
        cap_pixels_per_frame=False,
        return_tensors="pt",
    )


def generate_text(
    loaded: LoadedModel,
    sample: FrameSample,
    prompt: str,
    settings: GenerationSettings,
    on_partial: PartialFn | None = None,
    adapter: AdapterInfo | None = None,
) -> Generation:
    """One generate call on `sample`'s frames, with their true sampling rate, by the base model
    (`adapter` None) or with a LoRA adapter active; switching and generating share one lock hold."""
    import torch

    processor = loaded.processor
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": prompt}]}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = video_inputs(processor, text, sample)
    second_per_grid_t = float(inputs["second_per_grid_ts"][0]) if "second_per_grid_ts" in inputs else None
    inputs = inputs.to(loaded.model.device)
    prompt_tokens = int(inputs["input_ids"].shape[1])
    kwargs = _generate_kwargs(settings)
    with loaded.lock, adapter_scope(loaded, adapter), torch.inference_mode():
        if on_partial is None:
            output = loaded.model.generate(**inputs, **kwargs)
        else:
            output = _generate_streaming(loaded, inputs, kwargs, on_partial)
    new_tokens = output[0, prompt_tokens:]
    answer = processor.tokenizer.decode(new_tokens, skip_special_tokens=True)
    return Generation(answer, prompt_tokens, int(new_tokens.shape[0]), second_per_grid_t)


def _generate_streaming(loaded: LoadedModel, inputs: Any, kwargs: dict[str, Any], on_partial: PartialFn) -> Any:
    """generate() in a worker thread, feeding partial text to `on_partial` as it comes.

    If `on_partial` raises (a Streamlit script stopped by a rerun or a closed tab), the worker
    is told to stop and joined before this returns: the caller holds the model lock, and no
    generation may outlive it."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

    stop = threading.Event()

    prompt_tokens = int(inputs["input_ids"].shape[1])
    generated = {"tokens": 0}

    class StopWhenAsked(StoppingCriteria):  # called once per generated token: it counts them too
        def __call__(self, input_ids: Any, scores: Any, **_: Any) -> Any:
            generated["tokens"] = int(input_ids.shape[1]) - prompt_tokens
            return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool, device=input_ids.device)

    streamer = TextIteratorStreamer(loaded.processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
    criteria = StoppingCriteriaList([*kwargs.pop("stopping_criteria", []), StopWhenAsked()])
    holder: dict[str, Any] = {}

    def work() -> None:
        try:
            with torch.inference_mode():
                holder["output"] = loaded.model.generate(
                    **inputs, **kwargs, streamer=streamer, stopping_criteria=criteria
                )
        except BaseException as exc:  # surfaced in the caller's thread below
            holder["error"] = exc
            streamer.end()

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    partial = ""
    try:
        for chunk in streamer:
            partial += chunk
            on_partial(partial, generated["tokens"])
    finally:
        stop.set()  # a no-op when generation already ended
        worker.join()
    if "error" in holder:
        raise holder["error"]
    return holder["output"]


def model_info(loaded: LoadedModel, adapter: AdapterInfo | None) -> ModelInfo:
    """The loaded model's identity, with the adapter that answered (name and config hash)."""
    if adapter is None:
        return loaded.info
    return loaded.info.model_copy(update={"adapter": adapter.name, "adapter_config_hash": adapter.config_hash})


WHERE = {
    "path": "VCHAT_MODEL_PATH",
    "preseeded": "the preseeded folder",
    "hub-cache": "the Hugging Face cache",
    "hub-download": "downloaded into the Hugging Face cache",
}


class LocalEngine:
    """Frames in, text out, on the process's one loaded model; the caller holds its host turn."""

    name = "local"
    label = "VideoChat-R1.5 (local)"
    capabilities = Capabilities(takes_frames=True, uses_local_host=True, adapters=True)

    def __init__(self, settings: Settings, model_path: Path | None = None, host: ModelHost = HOST) -> None:
        self.settings = settings
        self.model_path = model_path
        self.host = host

    def source(self) -> ModelSource:
        return resolve_source(self.settings, self.model_path)

    def check(self, request: AnalysisRequest) -> None:
        """Refuse a missing or wrong checkpoint, or an unknown adapter, before any media or GPU work."""
        self.source()
        if request.adapter:
            get_adapter(self.settings, request.adapter)

    def readiness(self, request: AnalysisRequest) -> list[Readiness]:
        try:
            source = resolve_source(self.settings, self.model_path, download=False)
        except ModelMissing as exc:
            if not self.settings.model_download:
                return [Readiness("blocked", exc.message, exc.hint or "")]
            lines = [Readiness("note", "Weights: not here yet; the first analysis downloads them (about 16.6 GB).")]
        except VChatError as exc:
            return [Readiness("blocked", exc.message, exc.hint or "")]
        else:
            lines = [Readiness("ready", f"Weights: {source.path} ({WHERE[source.origin]})")]
            if self.host.is_loaded(self.settings, source):
                lines.append(Readiness("ready", "Loaded in memory"))
            else:
                lines.append(Readiness("ready", "Not loaded yet: the first analysis loads it (once per server)"))
        if request.adapter:
            try:
                adapter = get_adapter(self.settings, request.adapter)
            except VChatError as exc:
                return [*lines, Readiness("blocked", exc.message, exc.hint or "")]
            mismatch = sampling_mismatch(adapter, request.frames, request.fps, request.max_pixels)
            fits = Readiness("ready", f"Adapter {adapter.name}: samples videos as in its training")
            lines.append(Readiness("note", mismatch) if mismatch else fits)
        return lines

    def identity(self, request: AnalysisRequest) -> dict[str, Any]:
        identity: dict[str, Any] = {
            "engine": self.name,
            "model_path": str(self.source().path),
            "quantization": self.settings.quantization,
            "max_visual_tokens": self.settings.max_visual_tokens,
        }
        if request.adapter:
            identity.update(
                adapter=request.adapter, adapter_config_hash=get_adapter(self.settings, request.adapter).config_hash
            )
        return identity

    def is_ready(self) -> bool:
        return self.host.is_loaded(self.settings, self.source())

    def ready(self) -> ModelInfo:
        """Load the model if another (or none) is held; call inside the host's turn."""
        return self.host.model(self.settings, self.source()).info

    def fit(self, request: AnalysisRequest, index: FrameIndex) -> tuple[AnalysisRequest, list[str]]:
        fitted, notes = clip_to_budget(request, index, self.settings.max_visual_tokens)
        if request.adapter:
            adapter = get_adapter(self.settings, request.adapter)
            mismatch = sampling_mismatch(adapter, fitted.frames, fitted.fps, fitted.max_pixels)
            notes = [*notes, mismatch] if mismatch else notes
        return fitted, notes

    def generate(
        self, sample: FrameSample, prompt: str, request: AnalysisRequest, on_partial: PartialFn | None = None
    ) -> Generation:
        loaded = self.host.model(self.settings, self.source())
        adapter = get_adapter(self.settings, request.adapter) if request.adapter else None
        return generate_text(loaded, sample, prompt, request.generation, on_partial, adapter)

    def model_info(self, request: AnalysisRequest) -> ModelInfo:
        adapter = get_adapter(self.settings, request.adapter) if request.adapter else None
        return model_info(self.host.model(self.settings, self.source()), adapter)
