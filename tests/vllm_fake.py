"""A local stand-in for vLLM's OpenAI-compatible server (`vllm serve`), strict where vLLM is, for tests
that drive the real `openai` client (a real vLLM server needs a GPU and a torch build this machine
cannot install).

What it checks, and answers as vLLM does (vllm/entrypoints/openai/serving_engine.py `_check_model`,
`vllm/multimodal/media/video.py` `VideoMediaIO.load_base64`, the chat request models):
- `GET /v1/models` lists the served names: the base model, and each LoRA adapter with `parent` = base;
- `POST /v1/chat/completions` for a name it does not serve: 404 `NotFoundError`, "The model `NAME` does
  not exist.";
- content parts: `text` and `video_url` only (`image_url` too); a video must be a
  `data:video/jpeg;base64,` URL of comma-separated base64 frames, each a JPEG or PNG that decodes, all the
  same size, at most one video a prompt, and the prompt must hold text: anything else is a 400;
- prompt tokens counted as Qwen2.5-VL counts them (one token per 28x28 pixels per 2 frames, plus the text);
  over `max_model_len` with max_tokens: a 400 with vLLM's "maximum context length" wording;
- `POST /v1/load_lora_adapter` only when runtime LoRA updating is on (else the 404 FastAPI gives);
- an API key, when set, as `Authorization: Bearer KEY` (else 401).
It answers scripted text (a function of the request; one token a word), plain or streamed as server-sent
events (one chunk a token, the usage at the end, and in every chunk with `continuous_usage_stats`), and can
fail the next requests with given statuses or answer slowly.

`python -m tests.vllm_fake` serves it until Ctrl-C and prints the VCHAT_VLLM_URL to set.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import http.server
import io
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BASE_MODEL = "OpenGVLab/VideoChat-R1_5-7B"
JPEG_URL = "data:video/jpeg;base64,"
TEXT_OVERHEAD_TOKENS = 24  # the chat template's system prompt and role markers


@dataclass
class Received:
    """One chat request as the server understood it."""

    model: str
    body: dict[str, Any]
    prompt: str  # the text parts, joined
    frames: list[np.ndarray]  # decoded RGB frames of the video, in order
    frame_formats: list[str]  # "jpeg" / "png"
    mm_processor_kwargs: dict[str, Any] | None
    media_io_kwargs: dict[str, Any] | None
    stream: bool
    prompt_tokens: int
    server: str = ""


def default_reply(request: Received) -> str:
    """An R1.5-shaped answer: glue when the prompt asks for it."""
    glue = "<glue>[(1.0, 2.0)]</glue>" if "<glue>" in request.prompt else ""
    return f"<think>I look at the frames.</think><answer>The number grows.</answer>{glue}"


class VllmError(Exception):
    def __init__(self, status: int, message: str, kind: str = "BadRequestError") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


@dataclass
class FakeVllm:
    base_model: str = BASE_MODEL
    adapters: dict[str, str] = field(default_factory=dict)  # served adapter name -> its path
    max_model_len: int = 32768
    runtime_lora: bool = False  # VLLM_ALLOW_RUNTIME_LORA_UPDATING=True
    api_key: str | None = None
    reply: Callable[[Received], str] = default_reply
    delay_s: float = 0.0  # before answering a chat request
    fail_next: list[int] = field(default_factory=list)  # statuses to answer the next chat requests with

    def __post_init__(self) -> None:
        self.received: list[Received] = []
        self.rejected: list[tuple[int, str]] = []
        self.loads: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self.httpd: http.server.ThreadingHTTPServer | None = None

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> FakeVllm:
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                with contextlib.suppress(OSError):
                    fake._get(self)

            def do_POST(self) -> None:
                with contextlib.suppress(OSError):
                    fake._post(self)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()

    @property
    def port(self) -> int:
        assert self.httpd is not None
        return self.httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def served(self) -> list[str]:
        return [self.base_model, *self.adapters]

    # -- HTTP -------------------------------------------------------------------------------------
    def _send(self, handler: Any, status: int, payload: Any, content_type: str = "application/json") -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _error(self, handler: Any, error: VllmError) -> None:
        with self._lock:
            self.rejected.append((error.status, error.message))
        body = {"error": {"message": error.message, "type": error.kind, "param": None, "code": error.status}}
        self._send(handler, error.status, body)

    def _authorized(self, handler: Any) -> bool:
        if self.api_key and handler.headers.get("Authorization") != f"Bearer {self.api_key}":
            self._send(handler, 401, {"error": "Unauthorized"})
            return False
        return True

    def _get(self, handler: Any) -> None:
        path = handler.path.split("?")[0]
        if path == "/health":
            self._send(handler, 200, b"", "text/plain")
            return
        if not self._authorized(handler):
            return
        if path == "/v1/models":
            cards = [self._card(self.base_model, None)] + [self._card(n, self.base_model) for n in self.adapters]
            self._send(handler, 200, {"object": "list", "data": cards})
            return
        self._send(handler, 404, {"detail": "Not Found"})

    def _card(self, name: str, parent: str | None) -> dict[str, Any]:
        return {
            "id": name,
            "object": "model",
            "created": 1700000000,
            "owned_by": "vllm",
            "root": self.adapters.get(name, name),
            "parent": parent,
            "max_model_len": self.max_model_len,
        }

    def _body(self, handler: Any) -> Any:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"null")
        except ValueError:
            raise VllmError(400, "Invalid JSON in the request body.") from None

    def _post(self, handler: Any) -> None:
        path = handler.path.split("?")[0]
        if not self._authorized(handler):
            return
        if path == "/v1/load_lora_adapter" and self.runtime_lora:
            try:
                body = self._body(handler)
            except VllmError as error:
                self._error(handler, error)
                return
            self.loads.append(body)
            name, lora_path = body.get("lora_name"), body.get("lora_path")
            if name in self.adapters:
                self._error(handler, VllmError(400, f"The lora adapter '{name}' has already been loaded."))
                return
            self.adapters[name] = lora_path
            self._send(handler, 200, f"Success: LoRA adapter '{name}' added successfully.".encode(), "text/plain")
            return
        if path != "/v1/chat/completions":
            self._send(handler, 404, {"detail": "Not Found"})
            return
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            failure = self.fail_next.pop(0) if self.fail_next else None
        try:
            if self.delay_s:
                time.sleep(self.delay_s)
            if failure is not None:
                self._error(handler, VllmError(failure, f"Scripted failure {failure}.", "ServiceUnavailableError"))
                return
            try:
                request = self._understand(self._body(handler))
            except VllmError as error:
                self._error(handler, error)
                return
            request.server = self.base_url
            with self._lock:
                self.received.append(request)
            self._answer(handler, request)
        finally:
            with self._lock:
                self.in_flight -= 1

    # -- the chat request, as vLLM reads it ----------------------------------------------------------
    def _understand(self, body: Any) -> Received:
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or "model" not in body:
            raise VllmError(400, "The request needs 'model' and a list of 'messages'.")
        model = body["model"]
        if model not in self.served:
            raise VllmError(404, f"The model `{model}` does not exist.", "NotFoundError")
        texts: list[str] = []
        videos: list[tuple[list[np.ndarray], list[str]]] = []
        for message in body["messages"]:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                texts.append(content)
                continue
            if not isinstance(content, list):
                raise VllmError(400, "Each message needs a string or a list of content parts.")
            for part in content:
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "text" and isinstance(part.get("text"), str):
                    texts.append(part["text"])
                elif kind == "video_url":
                    videos.append(self._video(part.get("video_url")))
                elif kind == "image_url":
                    raise VllmError(400, "This stand-in takes videos only; the app never sends images.")
                else:
                    raise VllmError(400, f"Unknown part type: {kind}")
        if len(videos) > 1:
            raise VllmError(400, "At most 1 video(s) may be provided in one prompt.")
        prompt = "\n".join(texts)
        if not prompt.strip():
            raise VllmError(400, "The prompt has no text.")
        frames, formats = videos[0] if videos else ([], [])
        prompt_tokens = TEXT_OVERHEAD_TOKENS + len(prompt.split()) + self._visual_tokens(frames)
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or 16
        if prompt_tokens + max_tokens > self.max_model_len:
            raise VllmError(
                400,
                f"This model's maximum context length is {self.max_model_len} tokens. However, you requested "
                f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, {max_tokens} in the "
                "completion). Please reduce the length of the messages or completion.",
            )
        return Received(
            model=model,
            body=body,
            prompt=prompt,
            frames=frames,
            frame_formats=formats,
            mm_processor_kwargs=body.get("mm_processor_kwargs"),
            media_io_kwargs=body.get("media_io_kwargs"),
            stream=bool(body.get("stream")),
            prompt_tokens=prompt_tokens,
        )

    def _video(self, video: Any) -> tuple[list[np.ndarray], list[str]]:
        from PIL import Image

        url = video.get("url") if isinstance(video, dict) else None
        if not isinstance(url, str) or not url.startswith(JPEG_URL):
            shown = url[:40] if isinstance(url, str) else repr(url)[:40]
            raise VllmError(400, f"Expected a 'data:video/jpeg;base64,' URL of frames; got '{shown}...'.")
        frames, formats = [], []
        for number, part in enumerate(url[len(JPEG_URL) :].split(",")):
            try:
                data = base64.b64decode(part, validate=True)
            except (binascii.Error, ValueError):
                raise VllmError(400, f"Frame {number} is not valid base64.") from None
            kind = "jpeg" if data.startswith(b"\xff\xd8\xff") else "png" if data.startswith(b"\x89PNG") else None
            if kind is None:
                raise VllmError(400, f"Frame {number} is neither a JPEG nor a PNG image.")
            try:
                with Image.open(io.BytesIO(data)) as image:
                    frames.append(np.asarray(image.convert("RGB")))
            except OSError:
                raise VllmError(400, f"Frame {number} does not decode as an image.") from None
            formats.append(kind)
        if len({frame.shape for frame in frames}) > 1:
            raise VllmError(400, "The frames of a video must all have the same size.")
        return frames, formats

    @staticmethod
    def _visual_tokens(frames: list[np.ndarray]) -> int:
        if not frames:
            return 0
        height, width = frames[0].shape[:2]
        return math.ceil(len(frames) / 2) * math.ceil(height / 28) * math.ceil(width / 28)

    # -- the answer -----------------------------------------------------------------------------------
    def _answer(self, handler: Any, request: Received) -> None:
        max_tokens = request.body.get("max_completion_tokens") or request.body.get("max_tokens") or 16
        words = self.reply(request).split(" ")
        finish = "length" if len(words) > max_tokens else "stop"
        words = words[:max_tokens]
        text = " ".join(words)
        usage = {
            "prompt_tokens": request.prompt_tokens,
            "completion_tokens": len(words),
            "total_tokens": request.prompt_tokens + len(words),
        }
        common = {"id": f"chatcmpl-{len(self.received)}", "created": int(time.time()), "model": request.model}
        if not request.stream:
            message = {"role": "assistant", "content": text}
            choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
            self._send(handler, 200, {**common, "object": "chat.completion", "choices": [choice], "usage": usage})
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.end_headers()
        chunk = {**common, "object": "chat.completion.chunk"}
        options = request.body.get("stream_options") or {}
        events = [{**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
        for number, word in enumerate(words):  # one chunk a token, as vLLM streams
            event = {**chunk, "choices": [{"index": 0, "delta": {"content": word if not number else f" {word}"}}]}
            if options.get("include_usage") and options.get("continuous_usage_stats"):
                done = number + 1
                event["usage"] = {**usage, "completion_tokens": done, "total_tokens": request.prompt_tokens + done}
            events.append(event)
        events.append({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if options.get("include_usage"):
            events.append({**chunk, "choices": [], "usage": usage})
        for event in events:
            handler.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            handler.wfile.flush()
        handler.wfile.write(b"data: [DONE]\n\n")


def main() -> None:
    fake = FakeVllm(adapters={"claims-v1": "/lora_adapters/claims-v1/final_checkpoint"}).start()
    print(f"export VCHAT_VLLM_URL={fake.base_url}", flush=True)
    print(f"# serving {', '.join(fake.served)}; Ctrl-C stops it", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)
    fake.stop()


if __name__ == "__main__":
    main()
