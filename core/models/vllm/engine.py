"""The vLLM engine: VideoChat-R1.5 on vLLM servers (OpenAI-compatible API, through the `openai` client),
fed what the local engine is fed.

vChat samples the frames (the same sampler, rounds, glue parsing and result record as the local engine:
the perception flow runs on any frame engine) and sends them pre-sampled. How a client does that, as read:
- Qwen's documented client-side path for vLLM (the Qwen2.5-VL README, "Start an OpenAI API service",
  `prepare_message_for_vllm`; read in QwenLM/Qwen3-VL at commit a5d84ec, the last README with the
  Qwen2.5-VL text): sample the frames yourself and send them as ONE `video_url` whose URL is
  `data:video/jpeg;base64,` + the base64 JPEG frames joined by commas, passing the sampled fps in the
  request's `mm_processor_kwargs` (`extra_body={"mm_processor_kwargs": {"fps": ...}}`); vLLM's own frame
  extraction differs from qwen-vl-utils, and a `video/jpeg` URL makes it take the frames as they are.
- vLLM's `VideoMediaIO.load_base64` (vllm-project/vllm, `vllm/multimodal/media/video.py`; in current trees
  `vllm/frontend/processing/multimodal/media/video.py`): for `video/jpeg` it splits the data at the commas
  and opens each part as an image; current versions build the video's metadata from the request's
  `media_io_kwargs["video"]` (`fps`, `frames_indices`, `total_num_frames`, `duration`, `do_sample_frames`,
  defaulting to fps 1 and indices 0..n-1) and keep at most `num_frames` frames (32 unless the request names
  a count; an `fps` alone drops the server's default count).
- transformers' Qwen2.5-VL processor (`processing_qwen2_5_vl.py`): 5.x sets `second_per_grid_ts` to
  temporal_patch_size / the metadata's sampled fps (len(frames_indices) / total_num_frames * fps); 4.x took
  the `fps` keyword.

So each request carries both: `mm_processor_kwargs` {"fps": the official n / T * video fps,
"do_sample_frames": false, "do_resize": false} for servers on older stacks, and `media_io_kwargs`
{"video": the FrameSample's `video_metadata()` (the metadata the local engine gives its processor),
"num_frames": the count sent, "do_sample_frames": false} for current ones. Either way the model's time
axis is the one the local engine gives it. `second_per_grid_t` in the round record is the value those
settings imply (2 / sampled fps); vLLM does not echo it.

Frames: the shared sampler's `FrameSample` (already resized to the pixel budget in multiples of 28),
encoded as JPEG at VCHAT_VLLM_JPEG_QUALITY (95) with 4:4:4 chroma (no subsampling); their order, indices
and times are exact, their pixels within JPEG's error (tests/test_vllm.py measures it). The message is the
local engine's: one user turn, the video then the text; the server's chat template (the checkpoint's) adds
the same default system prompt. Generation settings map one to one (max_tokens = max_new_tokens,
temperature 0 = greedy, top_p, repetition_penalty); what neither side sends (top_k...) comes from the
checkpoint's generation_config on both.

LoRA adapters are served models by name: an analysis with `adapter="claims-v1"` asks for the served model
`claims-v1` (see client.py for loading one at runtime). Safe to call from several threads at once.
"""

from __future__ import annotations

import base64
import io
from typing import Any

from core.config import Settings
from core.errors import InputError, VChatError
from core.media.frames import FrameIndex, FrameSample
from core.models.base import AnalysisRequest, GenerationSettings, ModelInfo
from core.models.engine import Capabilities, Generation, PartialFn, Readiness
from core.models.local.adapters import ADAPTER_NAME, adapter_info, sampling_mismatch
from core.models.local.engine import TEMPORAL_PATCH, clip_to_budget
from core.models.vllm.client import NoRetry, Server, ServerPool, VllmError, base_url, pool_for

NO_URL_HINT = "Set VCHAT_VLLM_URL=http://HOST:8000/v1 (comma-separated for several servers), or choose another model."


def encode_frames(sample: FrameSample, quality: int = 95) -> list[str]:
    """Each frame as base64 JPEG (4:4:4 chroma)."""
    from PIL import Image

    encoded = []
    for frame in sample.frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=quality, subsampling=0)
        encoded.append(base64.b64encode(buffer.getvalue()).decode("ascii"))
    return encoded


def video_url(sample: FrameSample, quality: int = 95) -> str:
    """The frames as one `video/jpeg` data URL: base64 JPEG frames joined by commas (Qwen's client path)."""
    return "data:video/jpeg;base64," + ",".join(encode_frames(sample, quality))


def chat_messages(sample: FrameSample, prompt: str, quality: int = 95) -> list[dict[str, Any]]:
    """The local engine's message: one user turn, the video then the text."""
    return [
        {
            "role": "user",
            "content": [
                {"type": "video_url", "video_url": {"url": video_url(sample, quality)}},
                {"type": "text", "text": prompt},
            ],
        }
    ]


def video_kwargs(sample: FrameSample) -> dict[str, Any]:
    """The sampling rate and metadata of the frames sent, in both forms vLLM reads (see the docstring)."""
    metadata = {**sample.video_metadata(), "num_frames": len(sample.indices), "do_sample_frames": False}
    return {
        "mm_processor_kwargs": {"fps": sample.sampled_fps, "do_sample_frames": False, "do_resize": False},
        "media_io_kwargs": {"video": metadata},
    }


def sampling_params(settings: GenerationSettings) -> dict[str, Any]:
    """The local engine's generation settings as OpenAI / vLLM request fields."""
    return {
        "max_tokens": settings.max_new_tokens,
        "temperature": 0.0 if settings.greedy else settings.temperature,
        "top_p": 1.0 if settings.greedy else settings.top_p,
    }


class VllmEngine:
    """Frames in, text out, on vLLM servers. It declares no use of the local model host (no turn needed)."""

    name = "vllm"
    label = "VideoChat-R1.5 (vLLM)"
    capabilities = Capabilities(takes_frames=True, adapters=True)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pool: ServerPool | None = None

    @property
    def pool(self) -> ServerPool:
        if not self.settings.vllm_url:
            raise InputError("No vLLM server is set (VCHAT_VLLM_URL is empty).", NO_URL_HINT)
        if self._pool is None:
            s = self.settings
            key = s.vllm_api_key.get_secret_value() if s.vllm_api_key else None
            self._pool = pool_for(
                s.vllm_url, key, s.vllm_timeout_s, s.vllm_connect_timeout_s, s.vllm_retries, s.vllm_backoff_s
            )
        return self._pool

    def served_name(self, request: AnalysisRequest) -> str:
        """The model name the servers are asked for: the adapter's (a folder name, as the adapters folder
        names them: it may become a path on the server), or the base model's."""
        if request.adapter and not ADAPTER_NAME.match(request.adapter):
            raise InputError(f"'{request.adapter}' is not an adapter name.", "Use the adapter's folder name.")
        return request.adapter or self.settings.vllm_model

    def servers(self, request: AnalysisRequest) -> list[Server]:
        return self.pool.serving(self.served_name(request), self.settings.vllm_model, self.settings.vllm_adapters_dir)

    def check(self, request: AnalysisRequest) -> None:
        """A server must answer and serve the model (and the adapter), before any download."""
        self.servers(request)

    def readiness(self, request: AnalysisRequest) -> list[Readiness]:
        """What to know before Analyze, without calling the servers (check() asks them, at Analyze)."""
        if not self.settings.vllm_url:
            return [Readiness("blocked", "No vLLM server is set (VCHAT_VLLM_URL is empty).", NO_URL_HINT)]
        try:
            urls = [base_url(url) for url in self.settings.vllm_url]
            name = self.served_name(request)
        except VChatError as exc:
            return [Readiness("blocked", exc.message, exc.hint or "")]
        where = urls[0] if len(urls) == 1 else f"{len(urls)} servers ({', '.join(urls)})"
        lines = [Readiness("ready", f"{self.settings.vllm_model} on vLLM at {where} (asked when you press Analyze)")]
        if request.adapter:
            info = adapter_info(self.settings.adapters_dir / name)
            mismatch = sampling_mismatch(info, request.frames, request.fps, request.max_pixels) if info else None
            if mismatch:
                lines.append(Readiness("note", mismatch))
            elif info:
                lines.append(Readiness("ready", f"Adapter {name}: asked of the server by name; samples as in training"))
            else:
                lines.append(Readiness("note", f"Adapter {name}: asked of the server by name (no folder of it here)"))
        return lines

    def identity(self, request: AnalysisRequest) -> dict[str, Any]:
        identity: dict[str, Any] = {
            "engine": self.name,
            "model": self.settings.vllm_model,
            "frames_as": f"jpeg-q{self.settings.vllm_jpeg_quality}-444",
            "max_visual_tokens": self.settings.max_visual_tokens,
        }
        if request.adapter:
            identity.update(adapter=request.adapter, adapter_config_hash=self._adapter_hash(request.adapter))
        return identity

    def _adapter_hash(self, name: str) -> str | None:
        """The config hash of the adapter folder of that name here, when there is one (the servers may read
        the same folder, mounted): an adapter trained again under the same name gets new result keys."""
        info = adapter_info(self.settings.adapters_dir / name)
        return info.config_hash if info else None

    def ready(self) -> ModelInfo:
        return self._info(None)

    def fit(self, request: AnalysisRequest, index: FrameIndex) -> tuple[AnalysisRequest, list[str]]:
        return clip_to_budget(request, index, self.settings.max_visual_tokens)

    def model_info(self, request: AnalysisRequest) -> ModelInfo:
        return self._info(request.adapter)

    def _info(self, adapter: str | None) -> ModelInfo:
        urls = self.pool.urls
        where = urls[0] if len(urls) == 1 else f"{len(urls)} servers"
        return ModelInfo(
            backend=self.name,
            name=self.settings.vllm_model,
            source=f"vLLM at {', '.join(urls)}",
            adapter=adapter,
            adapter_config_hash=self._adapter_hash(adapter) if adapter else None,
            device=f"vLLM at {where}",
            dtype="dtype as served",
        )

    def generate(
        self, sample: FrameSample, prompt: str, request: AnalysisRequest, on_partial: PartialFn | None = None
    ) -> Generation:
        name = self.served_name(request)
        servers = self.servers(request)
        body: dict[str, Any] = {
            "model": name,
            "messages": chat_messages(sample, prompt, self.settings.vllm_jpeg_quality),
            **sampling_params(request.generation),
            "extra_body": {"repetition_penalty": request.generation.repetition_penalty, **video_kwargs(sample)},
        }

        def send(server: Server) -> tuple[str, int, int]:
            return _complete(server, body) if on_partial is None else _stream(server, body, on_partial)

        (text, tokens_in, tokens_out), _attempts = self.pool.call(servers, send, name, self.settings.vllm_model)
        second_per_grid_t = TEMPORAL_PATCH / sample.sampled_fps if sample.sampled_fps > 0 else None
        return Generation(text, tokens_in, tokens_out, second_per_grid_t)


def _complete(server: Server, body: dict[str, Any]) -> tuple[str, int, int]:
    response = server.client.chat.completions.create(**body)
    if not response.choices or response.choices[0].message.content is None:
        raise VllmError(f"The vLLM server at {server.url} sent an answer with no text.")
    usage = response.usage
    text = response.choices[0].message.content
    return text, usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else 0


def _stream(server: Server, body: dict[str, Any], on_partial: PartialFn) -> tuple[str, int, int]:
    """The answer as it is generated, fed to `on_partial`. Once text has been shown, a broken connection
    is not retried (the user would see the answer start again). If `on_partial` raises (a Streamlit rerun,
    a closed tab), the stream is closed, which makes vLLM abort the request."""
    from openai import APIConnectionError, APIStatusError

    text, usage, pieces = "", None, 0
    # continuous_usage_stats (a vLLM extension) puts the running token count in every chunk; without it,
    # the count of text chunks stands in (vLLM sends about one a token).
    options = {"include_usage": True, "continuous_usage_stats": True}
    try:
        with server.client.chat.completions.create(**body, stream=True, stream_options=options) as chunks:
            for chunk in chunks:
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices:
                    piece = choice.delta.content if choice.delta else None
                    if piece:
                        text += piece
                        pieces += 1
                        on_partial(text, usage.completion_tokens if usage else pieces)
    except (APIConnectionError, APIStatusError) as exc:
        if text:
            raise NoRetry(exc) from exc
        raise
    return text, usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else 0
