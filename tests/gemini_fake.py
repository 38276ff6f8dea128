"""A local HTTP server that speaks the Gemini REST protocol (v1beta), for the real google-genai SDK.

It answers what the SDK sends, and is strict about the shapes (camelCase top-level keys,
snake_case nested ones, as google-genai 3.x sends them), so a change in the SDK's requests
fails tests instead of passing silently:
- POST /v1beta/models/{model}:generateContent
- POST /upload/v1beta/files (resumable start) -> X-Goog-Upload-URL; chunk POSTs with
  X-Goog-Upload-Command "upload" / "upload, finalize" -> X-Goog-Upload-Status and {"file": ...}
- GET and DELETE /v1beta/files/{id}
Faults are injected per test: HTTP errors, delays, PROCESSING/FAILED states, blocked answers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VALID_KEY = "fake-gemini-key-0123456789"
MODELS = {"gemini-flash-latest", "gemini-2.5-flash", "gemini-2.5-pro"}
PART_KINDS = {"text", "inlineData", "fileData"}


@dataclass
class Reply:
    """One scripted answer to generateContent: a JSON body with a status, after a delay."""

    body: Any
    status: int = 200
    delay_s: float = 0.0


@dataclass
class FakeFile:
    name: str
    mime_type: str
    size: int
    data: bytearray = field(default_factory=bytearray)
    polls_left: int = 0  # GETs answered PROCESSING before the final state
    final_state: str = "ACTIVE"
    deleted: bool = False

    @property
    def state(self) -> str:
        return "PROCESSING" if self.polls_left > 0 or len(self.data) < self.size else self.final_state

    def resource(self, base: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "mimeType": self.mime_type,
            "sizeBytes": str(self.size),
            "state": self.state,
            "uri": f"{base}/v1beta/{self.name}",
            "sha256Hash": base64.b64encode(hashlib.sha256(self.data).digest()).decode(),
        }
        if self.state == "FAILED":
            out["error"] = {"code": 400, "message": "Video could not be processed."}
        return out


def decode_b64(text: str) -> bytes:
    """Base64 as the API accepts it: standard or URL-safe alphabet (the SDK sends URL-safe)."""
    return base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)


def error_body(code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status, "details": details or []}}


def text_reply(text: str, finish: str = "STOP", prompt_tokens: int = 1200, output_tokens: int = 40) -> Reply:
    return Reply(
        {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": finish, "index": 0}
            ],
            "usageMetadata": {
                "promptTokenCount": prompt_tokens,
                "candidatesTokenCount": output_tokens,
                "totalTokenCount": prompt_tokens + output_tokens,
            },
            "modelVersion": "gemini-fake",
        }
    )


def json_reply(obj: Any, **kwargs: Any) -> Reply:
    return text_reply(json.dumps(obj), **kwargs)


def rate_limited(daily: bool = False) -> Reply:
    quota = "GenerateRequestsPerDayPerProjectPerModel-FreeTier" if daily else "GenerateRequestsPerMinutePerProject"
    details = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaId": quota}]},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0s"},
    ]
    return Reply(error_body(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota.", details), status=429)


def blocked_reply() -> Reply:
    return Reply({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 900}})


class FakeGemini:
    """The server and its state; tests script it and read what it received."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []
        self.files: dict[str, FakeFile] = {}
        self.processing_polls = 0
        self.final_state = "ACTIVE"
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FakeGemini:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def generate_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].endswith(":generateContent")]

    def everything_received(self) -> str:
        """Every header and body the server saw, as text (to look for secrets in)."""
        return json.dumps(self.requests, default=str)

    # -- answers ---------------------------------------------------------------------------
    def default_reply(self, body: dict[str, Any]) -> Reply:
        """A plausible answer in the shape the request's responseSchema asks for."""
        schema = body.get("generationConfig", {}).get("responseSchema", {})
        props = set(schema.get("properties", {}))
        if "summary" in props:
            return json_reply(
                {
                    "summary": "A person waves at the camera, then a title card appears.",
                    "language": "en",
                    "scenes": [
                        {"start_s": 0.0, "end_s": 1.5, "description": "a person waves"},
                        {"start_s": 1.5, "end_s": 3.0, "description": "title card"},
                    ],
                    "transcript": [{"start_s": 0.2, "end_s": 1.2, "speaker": "speaker 1", "text": "Hello there."}],
                    "on_screen_text": [{"start_s": 1.5, "end_s": 3.0, "text": "THE END"}],
                    "claims": [{"start_s": 0.5, "speaker": "speaker 1", "claim": "This was filmed today."}],
                    "audio_notes": [{"start_s": 0.0, "end_s": 3.0, "kind": "music", "note": "soft piano"}],
                }
            )
        if "verdict" in props:
            return json_reply({"verdict": "disagree", "explanation": "A names a colour, B says there is none."})
        if "answer" in props:
            return json_reply(
                {
                    "reasoning": "The clip shows a moving test pattern.",
                    "answer": "A test pattern",
                    "evidence": [{"start_s": 0.5, "end_s": 1.5, "what": "the pattern moves"}],
                }
            )
        return text_reply("A test pattern.")

    def _check_generate(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """None when the request has the shape the real API accepts, else a 400 body."""
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            return error_body(400, "INVALID_ARGUMENT", "contents is not specified")
        for content in contents:
            for part in content.get("parts", []):
                kinds = PART_KINDS & set(part)
                if len(kinds) != 1:
                    return error_body(400, "INVALID_ARGUMENT", f"a part needs exactly one of {PART_KINDS}: {part}")
                if "inlineData" in part:
                    blob = part["inlineData"]
                    if "mime_type" not in blob or "data" not in blob:
                        return error_body(400, "INVALID_ARGUMENT", "inlineData needs mime_type and data")
                    try:
                        decode_b64(blob["data"])
                    except ValueError:
                        return error_body(400, "INVALID_ARGUMENT", "inlineData.data is not base64")
                if "fileData" in part:
                    uri = part["fileData"].get("file_uri", "")
                    if uri.startswith(self.base_url):
                        file = self.files.get(uri.split("/v1beta/", 1)[1])
                        if file is None or file.deleted or file.state != "ACTIVE":
                            return error_body(400, "FAILED_PRECONDITION", f"File {uri} is not in an ACTIVE state")
                    elif "youtube.com/" not in uri and "youtu.be/" not in uri:
                        return error_body(400, "INVALID_ARGUMENT", f"Unsupported file uri: {uri}")
                if "videoMetadata" in part and not set(part["videoMetadata"]) <= {"fps", "start_offset", "end_offset"}:
                    return error_body(400, "INVALID_ARGUMENT", "unknown videoMetadata field")
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _record(self, body: bytes) -> dict[str, Any]:
                entry: dict[str, Any] = {"method": self.command, "path": self.path, "headers": dict(self.headers)}
                is_chunk = self.path.startswith("/upload/v1beta/files?")
                try:
                    entry["json"] = json.loads(body) if body and not is_chunk else None
                except ValueError:
                    entry["json"] = None
                entry["bytes"] = len(body)
                with fake._lock:
                    fake.requests.append(entry)
                return entry

            def _key_ok(self) -> bool:
                if self.headers.get("x-goog-api-key") == VALID_KEY:
                    return True
                details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]
                message = "API key not valid. Please pass a valid API key."
                self._send(400, error_body(400, "INVALID_ARGUMENT", message, details))
                return False

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                entry = self._record(body)
                if self.path.startswith("/upload/v1beta/files?upload_id="):
                    return self._upload_chunk(body)
                if not self._key_ok():
                    return None
                if self.path == "/upload/v1beta/files":
                    return self._upload_start(entry)
                if self.path.startswith("/v1beta/models/") and self.path.endswith(":generateContent"):
                    return self._generate(entry)
                return self._send(404, error_body(404, "NOT_FOUND", f"no route {self.path}"))

            def _generate(self, entry: dict[str, Any]) -> None:
                model = self.path.removeprefix("/v1beta/models/").removesuffix(":generateContent")
                if model not in MODELS:
                    message = f"models/{model} is not found for API version v1beta, or is not supported."
                    return self._send(404, error_body(404, "NOT_FOUND", message))
                problem = fake._check_generate(entry["json"] or {})
                if problem:
                    return self._send(400, problem)
                reply = fake.replies.popleft() if fake.replies else fake.default_reply(entry["json"])
                time.sleep(reply.delay_s)
                return self._send(reply.status, reply.body)

            def _upload_start(self, entry: dict[str, Any]) -> None:
                if self.headers.get("X-Goog-Upload-Command") != "start":
                    return self._send(400, error_body(400, "INVALID_ARGUMENT", "expected a resumable start"))
                meta = (entry["json"] or {}).get("file", {})
                size = int(self.headers.get("X-Goog-Upload-Header-Content-Length") or meta.get("size_bytes") or -1)
                with fake._lock:
                    name = f"files/fake{len(fake.files) + 1:04d}"
                    fake.files[name] = FakeFile(
                        name=name,
                        mime_type=meta.get("mime_type") or "application/octet-stream",
                        size=size,
                        polls_left=fake.processing_polls,
                        final_state=fake.final_state,
                    )
                url = f"{fake.base_url}/upload/v1beta/files?upload_id={name.split('/')[1]}"
                self.send_response(200)
                self.send_header("X-Goog-Upload-URL", url)
                self.send_header("X-Goog-Upload-Status", "active")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None

            def _upload_chunk(self, body: bytes) -> None:
                file = fake.files.get("files/" + self.path.rsplit("=", 1)[1])
                command = self.headers.get("X-Goog-Upload-Command", "")
                if file is None or int(self.headers.get("X-Goog-Upload-Offset", "-1")) != len(file.data):
                    return self._send(400, error_body(400, "INVALID_ARGUMENT", "bad upload offset or session"))
                file.data.extend(body)
                if "finalize" not in command:
                    return self._send(200, {}, {"X-Goog-Upload-Status": "active"})
                if len(file.data) != file.size:
                    return self._send(400, error_body(400, "INVALID_ARGUMENT", "size mismatch"))
                return self._send(200, {"file": file.resource(fake.base_url)}, {"X-Goog-Upload-Status": "final"})

            def _file(self) -> FakeFile | None:
                file = fake.files.get(self.path.removeprefix("/v1beta/"))
                if file is None or file.deleted:
                    self._send(404, error_body(404, "NOT_FOUND", f"{self.path} not found"))
                    return None
                return file

            def do_GET(self) -> None:
                self._record(b"")
                if self.path.startswith("/v1beta/models/") and self._key_ok():
                    model = self.path.removeprefix("/v1beta/models/")
                    if model not in MODELS:
                        return self._send(404, error_body(404, "NOT_FOUND", f"models/{model} is not found"))
                    return self._send(200, {"name": f"models/{model}", "displayName": f"Fake {model}"})
                if self.path.startswith("/v1beta/models/") or not self._key_ok() or (file := self._file()) is None:
                    return None
                if file.polls_left > 0:
                    file.polls_left -= 1
                    body = file.resource(fake.base_url)
                    body["state"] = "PROCESSING"
                    return self._send(200, body)
                return self._send(200, file.resource(fake.base_url))

            def do_DELETE(self) -> None:
                self._record(b"")
                if not self._key_ok() or (file := self._file()) is None:
                    return None
                file.deleted = True
                return self._send(200, {})

        return Handler


if __name__ == "__main__":  # a stand-in for manual runs: GOOGLE_GEMINI_BASE_URL=<printed url>
    fake = FakeGemini().start()
    print(f"GOOGLE_GEMINI_BASE_URL={fake.base_url} GEMINI_API_KEY={VALID_KEY}", flush=True)
    threading.Event().wait()


class SlowGemini(FakeGemini):
    """The Gemini stand-in, answering every request after `delay_s` (a model that takes its time)."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s

    def default_reply(self, body: dict) -> Reply:  # type: ignore[type-arg]
        reply = super().default_reply(body)
        reply.delay_s = self.delay_s
        return reply
