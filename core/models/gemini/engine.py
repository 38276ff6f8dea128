"""The Gemini engine: a whole video (inline, uploaded, or a public YouTube URL) and a prompt in, a
schema-checked answer out, through google-genai (see client.py, video.py, generate.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.config import Settings
from core.errors import VChatError
from core.models.base import AnalysisRequest, GeminiUsage, GenerationSettings, ModelInfo
from core.models.engine import Capabilities, Readiness
from core.models.gemini.client import GeminiClient
from core.models.gemini.generate import Generated, SchemaT, generate, parse_structured
from core.models.gemini.video import VideoInput, file_input, youtube_input


class GeminiEngine:
    """Google Gemini (gemini-flash-latest unless the request names another); the key travels here,
    beside the request, never inside it."""

    name = "gemini"
    label = "Google Gemini"
    capabilities = Capabilities(takes_video=True, reads_urls=True, hears_audio=True)

    def __init__(self, settings: Settings, api_key: str | None = None) -> None:
        self.settings = settings
        self.api_key = api_key

    def client(self, request: AnalysisRequest | None = None, model: str | None = None) -> GeminiClient:
        """A client for the request's model (or `model`, or the default one)."""
        return GeminiClient(self.settings, self.api_key, model or (request.gemini_model if request else None))

    def check(self, request: AnalysisRequest) -> None:
        """A key and a well-formed model name must be there (no network call: see GeminiClient.ping)."""
        self.client(request)

    def readiness(self, request: AnalysisRequest) -> list[Readiness]:
        try:
            model = self.client(request).model
        except VChatError as exc:
            return [Readiness("blocked", exc.message, exc.hint or "")]
        whose = "this session's key" if self.api_key else "the server's GEMINI_API_KEY"
        return [Readiness("ready", f"Gemini {model} with {whose} (checked when it is called)")]

    def identity(self, request: AnalysisRequest) -> dict[str, Any]:
        return {"engine": self.name, "gemini_model": request.gemini_model or self.settings.gemini_model}

    def model_info(self, request: AnalysisRequest) -> ModelInfo:
        return ModelInfo(backend=self.name, name=self.client(request).model, source="Google Gemini API")

    @contextlib.contextmanager
    def video(
        self, client: GeminiClient, path: Path, sha256: str, usage: GeminiUsage, fps: float | None = None
    ) -> Iterator[VideoInput]:
        """The video file as a part of the request (inline or uploaded, cleaned up after)."""
        with file_input(client, path, sha256, usage.calls, fps=fps) as video:
            usage.path_taken, usage.file_name = video.path_taken, video.file_name
            usage.reused_upload = video.reused_upload
            yield video

    def from_url(self, url: str, usage: GeminiUsage, fps: float | None = None) -> VideoInput:
        """A public YouTube video as a part: Gemini fetches it, nothing is downloaded here."""
        video = youtube_input(url, fps)
        usage.path_taken = video.path_taken
        return video

    def ask(
        self,
        client: GeminiClient,
        contents: list[Any],
        what: str,
        usage: GeminiUsage,
        schema: type[SchemaT],
        generation: GenerationSettings | None = None,
    ) -> tuple[SchemaT, Generated]:
        """One generateContent call answered as `schema` (blocked, empty or malformed answers raise)."""
        generated = generate(client, contents, what, usage, generation, schema)
        return parse_structured(client, generated, schema, what), generated

