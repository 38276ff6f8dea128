"""One Gemini client per call site: key, API version, timeout, our own retries, clear errors.

The SDK can retry by itself (`HttpRetryOptions`), but it cannot tell a per-minute 429 from
a daily-quota 429, cannot stop within a total wait, and does not say how many attempts
it took. So the SDK is told to try once and `GeminiClient.call` does the retrying.
The API key goes to the SDK and nowhere else: every message we raise passes `scrub`.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

from core.config import Settings
from core.errors import InputError, VChatError
from core.models.base import ServiceCall as CallRecord

log = logging.getLogger(__name__)
T = TypeVar("T")

API_VERSION = "v1beta"  # gemini-flash-latest is served on v1beta only
RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}
KEY_HINT = "Set GEMINI_API_KEY on the server, or type a key in the sidebar (https://aistudio.google.com/apikey)."


class GeminiError(VChatError):
    """Gemini could not give an answer (quota, outage, timeout, safety block): exit code 1."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None, raw_text: str | None = None) -> None:
        super().__init__(message, hint)
        self.raw_text = raw_text  # what Gemini did say, when it said something unusable


class GeminiInputError(InputError):
    """The user can fix it: no key, a refused key, an unknown model, a file too large."""


def scrub(text: str, secret: str | None) -> str:
    """`text` without the secret (and without anything that looks like a Google API key)."""
    if secret:
        text = text.replace(secret, "[key]")
    return re.sub(r"AIza[0-9A-Za-z_\-]{30,}", "[key]", text)


def _quota_ids(details: Any) -> list[str]:
    """The quotaId values of a 429's QuotaFailure details (e.g. ...PerDayPerProject...)."""
    error = details.get("error", details) if isinstance(details, dict) else {}
    ids = []
    for item in error.get("details", []) if isinstance(error, dict) else []:
        for violation in item.get("violations", []) if isinstance(item, dict) else []:
            if isinstance(violation, dict) and violation.get("quotaId"):
                ids.append(str(violation["quotaId"]))
    return ids


def _retry_delay(details: Any) -> float | None:
    """The server's RetryInfo.retryDelay ("36s") in seconds, when it sent one."""
    error = details.get("error", details) if isinstance(details, dict) else {}
    for item in error.get("details", []) if isinstance(error, dict) else []:
        delay = item.get("retryDelay") if isinstance(item, dict) else None
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return float(delay[:-1])
            except ValueError:
                return None
    return None


def is_daily_quota(details: Any) -> bool:
    return any("perday" in quota_id.lower() for quota_id in _quota_ids(details))


def map_api_error(exc: Any, model: str, secret: str | None) -> VChatError:
    """One clear error for an `errors.APIError` that will not be retried (or ran out of retries)."""
    code = int(getattr(exc, "code", 0) or 0)
    message = scrub(str(getattr(exc, "message", None) or exc), secret)[:300]
    lowered = message.lower()
    if code == 400 and ("api key" in lowered or "api_key" in lowered):
        return GeminiInputError("Gemini refused the API key.", KEY_HINT)
    if code in (401, 403):
        return GeminiInputError(f"Gemini refused the API key ({code}: {message}).", KEY_HINT)
    if code == 404:
        return GeminiInputError(
            f"Gemini has no model '{model}' on API {API_VERSION} ({message}).",
            "Use gemini-flash-latest, or a model name from https://ai.google.dev/gemini-api/docs/models.",
        )
    if code == 413 or (code == 400 and ("too large" in lowered or "exceeds" in lowered)):
        return GeminiInputError(
            f"Gemini refused the video as too large ({message}).",
            "Use a shorter clip, or lower VCHAT_GEMINI_INLINE_MAX_MB so it goes through the Files API.",
        )
    if code == 429 and is_daily_quota(getattr(exc, "details", None)):
        return GeminiError(
            "Gemini's daily quota for this key is used up.",
            "Try again tomorrow, use another key, or enable billing on the key's project.",
        )
    if code == 429:
        return GeminiError(
            "Gemini kept refusing requests for too many calls (429) within the retry budget.",
            "Wait a minute and try again, or raise VCHAT_GEMINI_MAX_WAIT_S.",
        )
    if code >= 500 or code == 408:
        return GeminiError(f"Gemini is unavailable ({code}: {message}).", "Try again in a few minutes.")
    return GeminiInputError(f"Gemini rejected the request ({code}: {message}).")


class GeminiClient:
    """The SDK client with our timeout, retry budget and error mapping."""

    def __init__(self, settings: Settings, api_key: str | None = None, model: str | None = None) -> None:
        secret = api_key or (settings.gemini_api_key.get_secret_value() if settings.gemini_api_key else None)
        if not secret or not secret.strip():
            raise GeminiInputError("No Gemini API key.", KEY_HINT)
        self._secret = secret.strip()
        self.settings = settings
        self.model = (model or settings.gemini_model).strip()
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._\-/]{0,99}", self.model):
            raise GeminiInputError(f"'{model}' is not a Gemini model name.", "For example: gemini-flash-latest.")
        self._sdk: Any = None

    @property
    def sdk(self) -> Any:
        """The google-genai client (built on first use; honours GOOGLE_GEMINI_BASE_URL)."""
        if self._sdk is None:
            from google import genai
            from google.genai import types

            options = types.HttpOptions(
                api_version=API_VERSION,
                timeout=int(self.settings.gemini_timeout_s * 1000),
                retry_options=types.HttpRetryOptions(attempts=1),  # we retry, see `call`
            )
            self._sdk = genai.Client(api_key=self._secret, http_options=options)
        return self._sdk

    def scrub(self, text: str) -> str:
        return scrub(text, self._secret)

    def call(self, what: str, request: Callable[[], T], record: CallRecord | None = None) -> T:
        """Run `request` with retries on 408/429/5xx and connection errors, within the total wait."""
        import httpx2
        from google.genai import errors

        record = record or CallRecord(what=what)
        started = time.monotonic()
        deadline = started + self.settings.gemini_max_wait_s
        delay = self.settings.gemini_backoff_s
        while True:
            record.attempts += 1
            try:
                result = request()
                record.seconds = round(time.monotonic() - started, 3)
                return result
            except errors.APIError as exc:
                retryable = exc.code in RETRYABLE_STATUS and not (exc.code == 429 and is_daily_quota(exc.details))
                failure: VChatError = map_api_error(exc, self.model, self._secret)
                wait = _retry_delay(exc.details) or delay
            except httpx2.TimeoutException:
                # Not retried: a generation that timed out may well time out again, at full cost.
                raise GeminiError(
                    f"Gemini did not answer {what} within {self.settings.gemini_timeout_s:g} s.",
                    "Try again, use a shorter clip, or raise VCHAT_GEMINI_TIMEOUT_S.",
                ) from None
            except httpx2.TransportError as exc:
                retryable = True
                failure = GeminiError(
                    f"Could not reach Gemini ({type(exc).__name__}: {self.scrub(str(exc))[:200]}).",
                    "Check the network (or GOOGLE_GEMINI_BASE_URL) and try again.",
                )
                wait = delay
            record.seconds = round(time.monotonic() - started, 3)
            attempts_left = record.attempts <= self.settings.gemini_retries
            wait = wait * (1 + 0.25 * random.random())
            if not retryable or not attempts_left or time.monotonic() + wait > deadline:
                log.info("gemini %s failed after %d attempt(s): %s", what, record.attempts, failure.one_line())
                raise failure from None
            log.info("gemini %s: attempt %d failed (%s); retrying in %.1f s", what, record.attempts, failure, wait)
            time.sleep(wait)
            record.waited_s = round(record.waited_s + wait, 3)
            delay *= 2

    def ping(self) -> str:
        """A cheap reachability and key check (models.get, no tokens spent): the model's display name."""
        record = CallRecord(what="checking the key and the model")
        model = self.call(record.what, lambda: self.sdk.models.get(model=self.model), record)
        return str(getattr(model, "display_name", None) or getattr(model, "name", None) or self.model)
