"""generateContent with a video: free text or a schema-checked object, never an empty success."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from core.media.storage import atomic_write_bytes
from core.models.base import GeminiUsage, GenerationSettings, ServiceCall
from core.models.gemini.client import GeminiClient, GeminiError

SchemaT = TypeVar("SchemaT", bound=BaseModel)
MEDIA_RESOLUTIONS = {
    "low": "MEDIA_RESOLUTION_LOW",
    "medium": "MEDIA_RESOLUTION_MEDIUM",
    "high": "MEDIA_RESOLUTION_HIGH",
}
BLOCKING_FINISH = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}


@dataclass
class Generated:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    output_tokens: int
    total_tokens: int


def _config(client: GeminiClient, generation: GenerationSettings | None, schema: type[BaseModel] | None) -> Any:
    from google.genai import types

    kwargs: dict[str, Any] = {}
    if generation is not None:
        kwargs["temperature"] = generation.temperature
        if not generation.greedy:
            kwargs["top_p"] = generation.top_p
    resolution = MEDIA_RESOLUTIONS.get(client.settings.gemini_media_resolution)
    if resolution:
        kwargs["media_resolution"] = resolution
    if schema is not None:
        kwargs.update(response_mime_type="application/json", response_schema=schema)
    return types.GenerateContentConfig(**kwargs) if kwargs else None


def _blocked_reason(response: Any) -> str | None:
    feedback = getattr(response, "prompt_feedback", None)
    reason = getattr(feedback, "block_reason", None) if feedback else None
    if reason:
        return f"the request was blocked ({getattr(reason, 'value', reason)})"
    candidates = getattr(response, "candidates", None) or []
    if not candidates:
        return "Gemini returned no answer"
    finish = getattr(candidates[0], "finish_reason", None)
    finish_name = str(getattr(finish, "value", finish) or "")
    if finish_name in BLOCKING_FINISH:
        return f"the answer was stopped ({finish_name})"
    return None


def generate(
    client: GeminiClient,
    contents: list[Any],
    what: str,
    usage: GeminiUsage,
    generation: GenerationSettings | None = None,
    schema: type[BaseModel] | None = None,
) -> Generated:
    """One generateContent call, retried as `GeminiClient.call` allows; blocked or empty answers raise."""
    record = ServiceCall(what=what)
    usage.calls.append(record)
    config = _config(client, generation, schema)
    response = client.call(
        what, lambda: client.sdk.models.generate_content(model=client.model, contents=contents, config=config), record
    )
    meta = getattr(response, "usage_metadata", None)
    prompt_tokens = int(getattr(meta, "prompt_token_count", 0) or 0)
    output_tokens = int(getattr(meta, "candidates_token_count", 0) or 0)
    total_tokens = int(getattr(meta, "total_token_count", 0) or 0)
    usage.prompt_tokens += prompt_tokens
    usage.output_tokens += output_tokens
    usage.total_tokens += total_tokens
    text = response.text if getattr(response, "candidates", None) else None
    blocked = _blocked_reason(response)
    if blocked and (not text or "stopped" in blocked):  # a safety stop mid-answer is a block too
        raise GeminiError(
            f"Gemini gave no answer {what}: {blocked}.",
            "Nothing was stored. Rephrase the question, or try the local model.",
        )
    if not text or not text.strip():
        raise GeminiError(f"Gemini gave an empty answer {what}.", "Try again; nothing was stored.")
    finish = getattr(response.candidates[0], "finish_reason", None)
    finish_name = str(getattr(finish, "value", finish) or "") or None
    return Generated(text, finish_name, prompt_tokens, output_tokens, total_tokens)


def keep_raw_text(client: GeminiClient, what: str, text: str) -> str:
    """Write an unusable answer to data/gemini_raw/ so it is not lost; returns the path."""
    folder = client.settings.data_dir / "gemini_raw"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    path = folder / f"{stamp}-{'-'.join(what.split())[:40]}.txt"
    atomic_write_bytes(path, client.scrub(text).encode("utf-8"))
    return str(path)


def parse_structured(client: GeminiClient, generated: Generated, schema: type[SchemaT], what: str) -> SchemaT:
    """The answer as `schema`; malformed JSON is a clear error with the raw text kept on disk."""
    try:
        return schema.model_validate(json.loads(generated.text))
    except (ValueError, ValidationError) as exc:
        kind = "not valid JSON" if isinstance(exc, json.JSONDecodeError) else "not in the expected shape"
        if generated.finish_reason == "MAX_TOKENS":
            kind += " (it was cut off at the output token limit)"
        raw_path = keep_raw_text(client, what, generated.text)
        raise GeminiError(
            f"Gemini's answer {what} was {kind}.",
            f"Its raw text is kept in {raw_path}. Try again.",
            raw_text=generated.text,
        ) from None
