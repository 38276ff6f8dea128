"""The vLLM servers behind `--model vllm`: one `openai` client per base URL, requests spread over the
servers by least outstanding requests, our own retries within a budget, and one clear error for each
way a request cannot be served.

What vLLM says, read from its source (vllm-project/vllm, `vllm/entrypoints/openai/serving_engine.py`
`_check_model`, the chat request models, `vllm/entrypoints/openai/api_server.py`):
- a model name it does not serve: `404 NotFoundError`, "The model `NAME` does not exist.";
- a prompt over the context: a 400 whose message names the "maximum context length" (or "maximum model
  length" / `max_model_len`);
- LoRA adapters are served models: `--enable-lora --lora-modules NAME=PATH`, listed by `GET /v1/models`
  with `parent` = the base model, asked for by `"model": NAME`. With `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`
  the server also takes `POST /v1/load_lora_adapter {"lora_name", "lora_path"}` (without it, that route is
  a 404), and answers 400 "... has already been loaded" for a name it has.

The `openai` client is told to try once (`max_retries=0`); `ServerPool.call` retries 408/429/5xx,
connection errors and timeouts with backoff, on another server when there is one. Thread-safe: the
pool's counters sit behind one lock and the clients' connection pools are thread-safe, so batch jobs
may run analyses concurrently and each server batches them (continuous batching).
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from core.errors import InputError, VChatError

T = TypeVar("T")
RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}
LISTING_TTL_S = 10.0  # how long a server's /v1/models answer is trusted
MAX_RETRY_AFTER_S = 30.0
START_HINT = "Start it (docker compose --profile vllm up -d), or set VCHAT_VLLM_URL to where vLLM runs."
_CONTEXT = re.compile(r"maximum context length|maximum model length|max_model_len", re.IGNORECASE)


class VllmUnavailable(InputError):
    """No server answers (down, wrong URL, every attempt timed out): the operator can fix it (exit 2)."""


class VllmError(VChatError):
    """The servers kept failing (429, 5xx) through every retry: exit code 1."""

    exit_code = 1


class NoRetry(Exception):
    """Raised by a call whose request may not be sent again (streamed text already shown)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def base_url(url: str) -> str:
    """`http://host:8000`, `http://host:8000/` and `http://host:8000/v1` all mean `http://host:8000/v1`."""
    url = url.strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+", url):
        raise InputError(
            f"'{url}' in VCHAT_VLLM_URL is not an http(s) URL.", "Write each as http://HOST:PORT/v1, comma-separated."
        )
    return url if url.endswith("/v1") else f"{url}/v1"


def _status_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        text = body.get("message") or body.get("detail") or json.dumps(body)
    else:
        text = getattr(exc, "message", None) or str(exc)
    return " ".join(str(text).split())[:300]


def _reason(exc: BaseException, timeout_s: float) -> str:
    """Why a request got no answer, in a few words."""
    from openai import APIStatusError, APITimeoutError

    if isinstance(exc, APITimeoutError):
        return f"no answer within {timeout_s:g} s"
    if isinstance(exc, APIStatusError):
        return f"HTTP {exc.status_code}: {_status_message(exc)}"
    cause = exc.__cause__ or exc.__context__ or exc
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(cause).strip()) or type(cause).__name__
    return " ".join(text.split())[:200]


@dataclass
class Server:
    url: str  # the base URL, ending in /v1
    client: Any  # an openai.OpenAI bound to it
    outstanding: int = 0  # requests in flight from this process
    sent: int = 0
    down_until: float = 0.0  # a connection error benches it until then
    models: dict[str, dict[str, Any]] | None = None  # served name -> its /v1/models card
    listed_at: float = float("-inf")
    error: str | None = None  # why the last listing failed


def _names(models: dict[str, dict[str, Any]]) -> str:
    return ", ".join(sorted(models)) or "nothing"


class ServerPool:
    """The servers of VCHAT_VLLM_URL, shared by every engine of the process (see `pool_for`)."""

    def __init__(
        self,
        urls: list[str],
        api_key: str | None,
        timeout_s: float,
        connect_timeout_s: float,
        retries: int,
        backoff_s: float,
    ) -> None:
        try:
            from openai import OpenAI, Timeout
        except ImportError:
            raise InputError(
                "The vLLM engine needs the openai package, which is not installed.",
                "pip install -r requirements.txt",
            ) from None

        self.timeout_s, self.connect_timeout_s = timeout_s, connect_timeout_s
        self.retries, self.backoff_s = retries, backoff_s
        self.api_key = api_key
        self._lock = threading.Lock()
        self.servers = [
            Server(
                url,
                OpenAI(
                    base_url=url,
                    api_key=api_key or "EMPTY",
                    timeout=Timeout(timeout_s, connect=connect_timeout_s),
                    max_retries=0,
                ),
            )
            for url in dict.fromkeys(base_url(u) for u in urls)
        ]
        self._list_timeout = Timeout(max(2 * connect_timeout_s, 5.0), connect=connect_timeout_s)

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    # -- what each server serves ----------------------------------------------------------------
    def _list(self, server: Server) -> dict[str, dict[str, Any]] | None:
        from openai import APIConnectionError, APIStatusError

        try:
            page = server.client.with_options(timeout=self._list_timeout).models.list()
            models = {model.id: model.model_dump() for model in page.data}
            error = None
        except (APIConnectionError, APIStatusError) as exc:
            models, error = None, _reason(exc, self._list_timeout.read or self.connect_timeout_s)
        with self._lock:
            server.models, server.error, server.listed_at = models, error, time.monotonic()
            if models is None:
                server.down_until = time.monotonic() + self.backoff_s
        return models

    def listings(self, refresh: bool = False) -> list[tuple[Server, dict[str, dict[str, Any]] | None]]:
        """Each server with what it serves (None: it did not answer), asked again when older than the TTL."""
        now = time.monotonic()
        stale = [s for s in self.servers if refresh or now - s.listed_at > LISTING_TTL_S]
        if len(stale) == 1:
            self._list(stale[0])
        elif stale:
            with ThreadPoolExecutor(max_workers=len(stale)) as workers:
                list(workers.map(self._list, stale))
        return [(s, s.models) for s in self.servers]

    def serving(self, name: str, base: str, adapters_root: str | None = None) -> list[Server]:
        """The servers that serve `name` (the base model, or a LoRA adapter on it), or one clear error.

        An adapter no server serves is loaded at runtime into the servers that serve the base model
        when `adapters_root` (the adapters folder as the servers see it) is known."""
        asked = time.monotonic()
        for refresh in (False, True):
            rows = self.listings(refresh=refresh)
            up = [(s, m) for s, m in rows if m is not None]
            have = [s for s, m in up if name in m]
            if have:
                self._check_parent(name, base, have)
                return have
            if all(s.listed_at >= asked for s in self.servers):
                break  # just asked every server: asking again would say the same
        if not up:
            raise self.unreachable()
        if name == base:
            raise self.not_served(base, up)
        bases = [s for s, m in up if base in m]
        if not bases:
            raise self.not_served(base, up)
        if adapters_root is None:
            raise self.adapter_not_loaded(name, up)
        for server in bases:
            self.load_adapter(server, name, f"{adapters_root.rstrip('/')}/{name}/final_checkpoint")
        self.listings(refresh=True)
        have = [s for s in bases if s.models and name in s.models]
        if not have:
            raise self.adapter_not_loaded(name, up)
        return have

    def _check_parent(self, name: str, base: str, servers: list[Server]) -> None:
        for server in servers:
            parent = (server.models or {}).get(name, {}).get("parent")
            if name != base and parent and parent != base:
                raise InputError(
                    f"The vLLM server at {server.url} serves the adapter '{name}' on the model '{parent}', "
                    f"not '{base}'.",
                    "Set VCHAT_VLLM_MODEL to the model the server runs, or serve the adapter on it.",
                )

    # -- errors ---------------------------------------------------------------------------------
    def unreachable(self) -> VllmUnavailable:
        if len(self.servers) == 1:
            server = self.servers[0]
            return VllmUnavailable(f"The vLLM server at {server.url} cannot be reached ({server.error}).", START_HINT)
        where = "; ".join(f"{s.url}: {s.error}" for s in self.servers)
        return VllmUnavailable(
            f"None of the {len(self.servers)} vLLM servers can be reached ({where}).",
            "Start them (docker compose --profile vllm up -d), or set VCHAT_VLLM_URL to where vLLM runs.",
        )

    def not_served(self, base: str, up: list[tuple[Server, dict[str, dict[str, Any]] | None]]) -> InputError:
        server, models = up[0]
        where = f"The vLLM server at {server.url}" if len(up) == 1 else f"No vLLM server (e.g. {server.url})"
        return InputError(
            f"{where} does not serve the model '{base}' (it serves: {_names(models or {})}).",
            "Set VCHAT_VLLM_MODEL to the name the server serves (its --served-model-name), "
            f"or start it with `vllm serve {base}`.",
        )

    def adapter_not_loaded(self, name: str, up: list[tuple[Server, dict[str, dict[str, Any]] | None]]) -> InputError:
        server, models = up[0]
        where = f"The vLLM server at {server.url}" if len(up) == 1 else f"No vLLM server (e.g. {server.url})"
        return InputError(
            f"{where} has no LoRA adapter '{name}' loaded (it serves: {_names(models or {})}).",
            f"Start vLLM with --enable-lora --lora-modules {name}=/lora_adapters/{name}/final_checkpoint, or set "
            "VCHAT_VLLM_ADAPTERS_DIR so vChat loads it (the server needs VLLM_ALLOW_RUNTIME_LORA_UPDATING=True).",
        )

    def status_error(self, exc: Any, server: Server, name: str, base: str) -> VChatError:
        """One error for an HTTP error answer that is not retried (or that outlasted the retries)."""
        status = int(getattr(exc, "status_code", 0) or 0)
        message = _status_message(exc)
        if status == 404:
            models = self._list(server) or {}
            up = [(server, models)]
            return self.not_served(base, up) if name == base else self.adapter_not_loaded(name, up)
        if status in (401, 403):
            return InputError(
                f"The vLLM server at {server.url} refused the API key ({status}).",
                "Set VCHAT_VLLM_API_KEY to the key it was started with (--api-key).",
            )
        if status in (400, 413, 422) and _CONTEXT.search(message):
            return InputError(
                f"The request is longer than the vLLM server's context ({message}).",
                "Ask with fewer frames or fewer pixels per frame (or lower VCHAT_MAX_VISUAL_TOKENS), "
                "or start vLLM with a larger --max-model-len.",
            )
        if status in (400, 413, 422):
            return InputError(f"The vLLM server at {server.url} refused the request ({status}: {message}).")
        if status == 429:
            return VllmError(
                f"The vLLM server at {server.url} kept answering 429 (too many requests) through "
                f"{self.retries} retries.",
                "Try again in a minute, add servers to VCHAT_VLLM_URL, or raise VCHAT_VLLM_RETRIES.",
            )
        return VllmError(f"The vLLM server at {server.url} failed ({status}: {message}).", "Its log says why.")

    # -- sending --------------------------------------------------------------------------------
    def _pick(self, candidates: list[Server], avoid: Server | None) -> Server:
        """The candidate with the fewest requests in flight (then the fewest sent); benched ones last."""
        with self._lock:
            now = time.monotonic()
            pool = [s for s in candidates if s is not avoid] or candidates
            server = min(pool, key=lambda s: (s.down_until > now, s.outstanding, s.sent))
            server.outstanding += 1
            server.sent += 1
            return server

    def _release(self, server: Server, failed: bool) -> None:
        with self._lock:
            server.outstanding -= 1
            if failed:
                server.down_until = time.monotonic() + self.backoff_s

    def call(self, candidates: list[Server], send: Callable[[Server], T], name: str, base: str) -> tuple[T, int]:
        """`send(server)` on the least busy candidate, retried (on another one when there is one) after
        429/5xx answers, connection errors and timeouts. Returns the answer and the attempts it took."""
        from openai import APIConnectionError, APIStatusError, APITimeoutError

        last: Server | None = None
        error: BaseException | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self._delay(attempt, error))
            server = self._pick(candidates, last)
            failed = False
            try:
                return send(server), attempt + 1
            except NoRetry as stop:
                failed = isinstance(stop.error, APIConnectionError)
                raise self._final(stop.error, server, name, base) from stop.error
            except APIConnectionError as exc:  # refused, reset, timed out (APITimeoutError is one)
                failed, error = True, exc
                server.error = _reason(exc, self.timeout_s)
            except APIStatusError as exc:
                if exc.status_code not in RETRYABLE_STATUS:
                    raise self.status_error(exc, server, name, base) from exc
                error = exc
            finally:
                self._release(server, failed)
            last = server
        assert error is not None and last is not None
        if isinstance(error, APITimeoutError):
            raise VllmUnavailable(
                f"The vLLM server at {last.url} gave no answer within {self.timeout_s:g} s "
                f"({self.retries + 1} attempts).",
                "It may be overloaded: raise VCHAT_VLLM_TIMEOUT_S, add servers to VCHAT_VLLM_URL, or ask with "
                "fewer frames.",
            ) from error
        raise self._final(error, last, name, base) from error

    def _final(self, error: BaseException, server: Server, name: str, base: str) -> VChatError:
        from openai import APIConnectionError, APIStatusError

        if isinstance(error, APIStatusError):
            return self.status_error(error, server, name, base)
        if isinstance(error, APIConnectionError):
            server.error = _reason(error, self.timeout_s)
            if len(self.servers) > 1:
                return self.unreachable()
            return VllmUnavailable(f"The vLLM server at {server.url} cannot be reached ({server.error}).", START_HINT)
        return VllmError(f"The vLLM request failed: {type(error).__name__}: {error}")

    def _delay(self, attempt: int, error: BaseException | None) -> float:
        delay = self.backoff_s * 2 ** (attempt - 1)
        response = getattr(error, "response", None)
        header = response.headers.get("retry-after") if response is not None else None
        try:
            return min(max(delay, float(header)), MAX_RETRY_AFTER_S) if header else delay
        except ValueError:
            return delay

    # -- LoRA adapters at runtime ---------------------------------------------------------------
    def load_adapter(self, server: Server, name: str, path: str) -> None:
        """Ask `server` to load the adapter `name` from `path` (as the server sees it)."""
        request = urllib.request.Request(
            f"{server.url}/load_lora_adapter",
            data=json.dumps({"lora_name": name, "lora_path": path}).encode(),
            headers={"Content-Type": "application/json", **self._auth()},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=max(self.timeout_s, 30.0)):
                return
        except urllib.error.HTTPError as exc:
            text = " ".join(exc.read().decode("utf-8", "replace").split())[:300]
            if exc.code == 400 and "already" in text.lower():
                return
            if exc.code == 404:
                raise InputError(
                    f"The vLLM server at {server.url} has no LoRA adapter '{name}' and cannot load adapters at "
                    "runtime (404 on /v1/load_lora_adapter).",
                    f"Start it with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, or with --lora-modules {name}={path}.",
                ) from None
            raise InputError(
                f"The vLLM server at {server.url} could not load the adapter '{name}' from {path} "
                f"({exc.code}: {text}).",
                "VCHAT_VLLM_ADAPTERS_DIR must be the adapters folder as the vLLM server sees it.",
            ) from None
        except OSError as exc:
            raise VllmUnavailable(
                f"The vLLM server at {server.url} cannot be reached to load the adapter '{name}' ({exc}).", START_HINT
            ) from None

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


_POOLS: dict[tuple[Any, ...], ServerPool] = {}
_POOLS_LOCK = threading.Lock()


def pool_for(
    urls: list[str], api_key: str | None, timeout_s: float, connect_timeout_s: float, retries: int, backoff_s: float
) -> ServerPool:
    """The process's pool for these servers and settings: every engine (every analysis, every batch
    thread) shares its counts of requests in flight, so the load is spread across all of them."""
    key = (tuple(base_url(u) for u in urls), api_key, timeout_s, connect_timeout_s, retries, backoff_s)
    with _POOLS_LOCK:
        if key not in _POOLS:
            _POOLS[key] = ServerPool(urls, api_key, timeout_s, connect_timeout_s, retries, backoff_s)
        return _POOLS[key]
