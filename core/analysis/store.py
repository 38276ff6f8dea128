"""The result store: every answer kept where the same question finds it again.

Layout under `<data dir>/results`:
    <media sha256>/<key>.json     a result about those bytes (key: see `media_key`)
    by-url/<key>.json             a result about a URL a remote engine read itself (nothing downloaded)
The key hashes everything the answer depends on: the media bytes and the sanitize settings, the
model's identity as the flow states it (engines, checkpoint, adapter and its hash, Gemini model,
loop version) and the whole request. No API key is ever part of a key or a stored file. Records
that belong beside a result (a fact-checker's override, later) go in files of their own, so the
machine's record is never rewritten.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.config import Settings
from core.media.pipeline import MediaAsset
from core.media.storage import atomic_write_json, read_json
from core.models.base import AnalysisRequest, AnalysisResult

BY_URL = "by-url"


@dataclass(frozen=True)
class ResultRef:
    """Where one result is (or would be) stored."""

    folder: str  # the media's sha256, or "by-url"
    key: str


@dataclass
class StoredResult:
    result: AnalysisResult
    data: dict[str, Any]  # the result as stored: every field, those of a flow's own result type too
    ref: ResultRef
    path: Path
    stored_at: str
    url: str | None = None


def stable_hash(blob: dict[str, Any]) -> str:
    """sha256 of a JSON-able blob, independent of key order: the keys of stored records."""
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()


class ResultStore:
    def __init__(self, settings: Settings) -> None:
        self.root = settings.data_dir / "results"

    # -- keys -------------------------------------------------------------------------------------
    @staticmethod
    def media_ref(asset: MediaAsset, identity: dict[str, Any], request: AnalysisRequest) -> ResultRef:
        key = stable_hash(
            {
                "media": asset.sha256,
                "sanitized": asset.sanitized.settings_key,
                "model": identity,
                "request": request.model_dump(mode="json"),
            }
        )
        return ResultRef(asset.sha256, key)

    @staticmethod
    def url_ref(url: str, identity: dict[str, Any], request: AnalysisRequest) -> ResultRef:
        blob = {"url": url, "model": identity, "request": request.model_dump(mode="json")}
        return ResultRef(BY_URL, stable_hash(blob))

    def path(self, ref: ResultRef) -> Path:
        return self.root / ref.folder / f"{ref.key}.json"

    # -- reading and writing -----------------------------------------------------------------------
    def get(self, ref: ResultRef) -> StoredResult | None:
        return self._read(self.path(ref), ref)

    def put(
        self, ref: ResultRef, identity: dict[str, Any], result: AnalysisResult, url: str | None = None
    ) -> StoredResult:
        """Write the result where the next identical request finds it (atomically)."""
        stored_at = datetime.now(UTC).isoformat(timespec="seconds")
        data = result.model_dump(mode="json")
        record: dict[str, Any] = {"key": ref.key, "stored_at": stored_at, "model_identity": identity, "result": data}
        if url is not None:
            record["url"] = url
        path = self.path(ref)
        atomic_write_json(path, record)
        return StoredResult(result, data, ref, path, stored_at, url)

    def list_media(self, sha256: str) -> list[StoredResult]:
        """Every readable result about the bytes with this sha256, newest first."""
        return self._list(self.root / sha256)

    def list_urls(self) -> list[StoredResult]:
        return self._list(self.root / BY_URL)

    def _list(self, folder: Path) -> list[StoredResult]:
        if not folder.is_dir():
            return []
        found = [self._read(path, ResultRef(folder.name, path.stem)) for path in folder.glob("*.json")]
        return sorted((r for r in found if r is not None), key=lambda r: r.stored_at, reverse=True)

    @staticmethod
    def _read(path: Path, ref: ResultRef) -> StoredResult | None:
        stored = read_json(path)
        if not isinstance(stored, dict) or not isinstance(stored.get("result"), dict):
            return None
        try:
            result = AnalysisResult.model_validate(stored["result"])
        except ValueError:  # written by an older version with another shape: analyse again
            return None
        return StoredResult(result, stored["result"], ref, path, str(stored.get("stored_at", "")), stored.get("url"))
