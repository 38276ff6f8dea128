"""One Settings object: the only place the environment is read.

Every variable is prefixed `VCHAT_` (e.g. `VCHAT_DATA_DIR`, `VCHAT_MAX_DOWNLOAD_MB`).
Functions take a `Settings` argument; `get_settings()` gives the process default.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VCHAT_", extra="ignore")

    # Where runtime state lives (media cache, run folders, jobs.sqlite).
    data_dir: Path = Path("data")
    # The only folder local paths may point into.
    media_dir: Path = Path("videos")

    # Download limits.
    max_download_mb: float = Field(500, gt=0)
    max_duration_s: float = Field(1800, gt=0)
    socket_timeout_s: float = Field(20, gt=0)
    download_timeout_s: float = Field(900, gt=0)

    # URL policy (server-side request forgery guard).
    allow_private_urls: bool = False
    url_allowlist: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Media checks and sanitizing.
    ffmpeg_path: str | None = None
    probe_timeout_s: float = Field(60, gt=0)
    sanitize_timeout_s: float = Field(900, gt=0)
    sanitize_max_side: int = Field(1920, ge=64)
    sanitize_max_duration_s: float | None = Field(None, gt=0)
    sanitize_crf: int = Field(23, ge=0, le=51)
    sanitize_preset: str = "veryfast"
    min_video_side: int = Field(16, ge=1)
    max_video_side: int = Field(8192, ge=64)
    max_aspect_ratio: float = Field(12.0, ge=1)

    # The local model (VideoChat-R1.5): an explicit path, else ./VideoChat-R1, else the hub
    # id through the Hugging Face cache (downloaded only when model_download is set).
    model_path: Path | None = None
    preseed_dir: Path = Path("VideoChat-R1")
    model_id: str = "OpenGVLab/VideoChat-R1_5-7B"
    model_download: bool = False
    quantization: str = Field("none", pattern="^(none|8bit|4bit)$")
    max_visual_tokens: int = Field(16384, ge=64)
    # How the glue's numbers are read: seconds of the video, as the authors' loop does ("video"), or
    # times on the model's uniform time axis, mapped to the video ("model-axis").
    glue_time: Literal["video", "model-axis"] = "video"

    # LoRA adapters trained with `python -m finetune`, one folder each.
    adapters_dir: Path = Path("lora_adapters")

    # Google Gemini through google-genai. The key is read from GEMINI_API_KEY (no prefix);
    # the SDK itself honours GOOGLE_GEMINI_BASE_URL. A key given in the UI overrides it.
    gemini_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("GEMINI_API_KEY", "VCHAT_GEMINI_API_KEY")
    )
    gemini_model: str = "gemini-flash-latest"
    gemini_inline_max_mb: float = Field(20, gt=0)  # bigger videos go through the Files API
    gemini_timeout_s: float = Field(120, gt=0)  # one HTTP request
    gemini_max_wait_s: float = Field(300, gt=0)  # all retries and upload polling together
    gemini_retries: int = Field(4, ge=0, le=10)
    gemini_backoff_s: float = Field(1.0, gt=0)  # first retry delay; doubles each retry
    gemini_poll_s: float = Field(2.0, gt=0)  # Files API: how often to ask whether an upload is ACTIVE
    gemini_keep_uploads: bool = False  # keep uploaded videos (48 h at Google) and reuse them by sha256
    gemini_media_resolution: str = Field("default", pattern="^(default|low|medium|high)$")
    gemini_allow_youtube_urls: bool = True  # public YouTube URLs may go to Gemini without a download
    digest_context_tokens: int = Field(2000, ge=100)  # linked mode: digest text given to the local model

    # VideoChat-R1.5 on vLLM servers (`--model vllm`): their OpenAI-compatible base URLs, comma-separated
    # (each `http://host:8000/v1`; several share the load), the served base model's name, and LoRA adapters
    # by their served names. `vllm_adapters_dir`: the adapters folder as the servers see it; when set, an
    # adapter a server does not serve yet is loaded into it at runtime (VLLM_ALLOW_RUNTIME_LORA_UPDATING).
    vllm_url: Annotated[list[str], NoDecode] = Field(default_factory=list)
    vllm_model: str = "OpenGVLab/VideoChat-R1_5-7B"
    vllm_api_key: SecretStr | None = None  # the servers' --api-key, if they were started with one
    vllm_timeout_s: float = Field(600, gt=0)  # one request (a round of up to 2048 tokens on a busy server)
    vllm_connect_timeout_s: float = Field(5, gt=0)
    vllm_retries: int = Field(3, ge=0, le=10)  # after the first attempt: 429, 5xx, connection errors
    vllm_backoff_s: float = Field(1.0, gt=0)  # first retry delay; doubles each retry
    vllm_jpeg_quality: int = Field(95, ge=50, le=100)  # frames travel as JPEG
    vllm_adapters_dir: str | None = None

    # Frames held in memory per video (decoded once, served to later rounds).
    frame_cache_mb: int = Field(1024, ge=16)

    # CSV batches (core/jobs): the job store is <data dir>/jobs.sqlite; one worker per data dir holds its lease.
    batch_max_rows: int = Field(1000, ge=1)  # data rows a CSV may have
    batch_concurrency: int = Field(4, ge=1, le=64)  # remote engines (Gemini, vLLM): items in flight at once
    batch_per_minute: float = Field(0, ge=0)  # remote engines: items started per minute (0: no limit)
    batch_prefetch: int = Field(2, ge=0, le=8)  # items whose media is readied while the model works
    batch_retries: int = Field(2, ge=0, le=10)  # an item's transient failures retried (network, 429, 5xx)
    batch_backoff_s: float = Field(5, gt=0)  # first retry delay; doubles each retry
    batch_lease_s: float = Field(30, ge=1)  # a worker that stops beating this long is taken over

    @field_validator("url_allowlist", "vllm_url", mode="before")
    @classmethod
    def _split_allowlist(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.replace(";", ",").split(",") if part.strip()]
        return value

    @field_validator("data_dir", "media_dir", "adapters_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # Stored results name files by absolute path, so they stay valid from any cwd.
        return value.expanduser().absolute()

    @property
    def max_download_bytes(self) -> int:
        return int(self.max_download_mb * 1024 * 1024)

    @property
    def media_cache_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def tmp_dir(self) -> Path:
        return self.data_dir / "tmp"

    @property
    def effective_sanitize_max_duration_s(self) -> float:
        return self.sanitize_max_duration_s or self.max_duration_s


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()
