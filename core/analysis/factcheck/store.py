"""Where fact-check reports are kept, and a person's rating beside each.

Layout under `<data dir>/factchecks/<media sha256>/<key>/`:
    report.json     the machine's report, written once (a re-run replaces it whole)
    frames/         the JPEG frames its cited moments point to
    rating.json     a person's rating (`HumanRating`), never inside report.json
The key hashes everything the report depends on (see `run_factcheck`): the bytes, the engines'
identities, the request, the prompt, evidence and report versions. No API key is part of any of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.analysis.factcheck.report import FactCheckReport, HumanRating
from core.analysis.store import stable_hash
from core.config import Settings
from core.media.storage import atomic_write_json, read_json

REPORT_FILE = "report.json"
RATING_FILE = "rating.json"


@dataclass(frozen=True)
class StoredReport:
    report: FactCheckReport
    folder: Path
    rating: HumanRating | None

    @property
    def frames_dir(self) -> Path:
        return self.folder / "frames"


class FactCheckStore:
    def __init__(self, settings: Settings) -> None:
        self.root = settings.data_dir / "factchecks"

    @staticmethod
    def key(identity: dict[str, Any]) -> str:
        return stable_hash(identity)

    def folder(self, sha256: str, key: str) -> Path:
        return self.root / sha256 / key

    def get(self, sha256: str, key: str) -> StoredReport | None:
        folder = self.folder(sha256, key)
        stored = read_json(folder / REPORT_FILE)
        if not isinstance(stored, dict):
            return None
        try:
            report = FactCheckReport.model_validate(stored)
        except ValueError:  # an older report's shape: make it again
            return None
        return StoredReport(report, folder, self.rating(folder))

    def put(self, report: FactCheckReport) -> StoredReport:
        folder = self.folder(report.media.sha256, report.key)
        atomic_write_json(folder / REPORT_FILE, report.model_dump(mode="json"))
        return StoredReport(report, folder, self.rating(folder))

    @staticmethod
    def rating(folder: Path) -> HumanRating | None:
        stored = read_json(folder / RATING_FILE)
        try:
            return HumanRating.model_validate(stored) if isinstance(stored, dict) else None
        except ValueError:
            return None

    def rate(self, stored: StoredReport, rating: str, name: str, note: str = "", claim: str = "") -> StoredReport:
        """Keep a person's rating beside the report (the report's own file is not touched)."""
        given = HumanRating(
            rating=rating,  # type: ignore[arg-type]
            name=name.strip(),
            note=note.strip(),
            claim=claim.strip(),
            at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        atomic_write_json(stored.folder / RATING_FILE, given.model_dump(mode="json"))
        return StoredReport(stored.report, stored.folder, given)

    def list_media(self, sha256: str) -> list[StoredReport]:
        folder = self.root / sha256
        found = [self.get(sha256, path.name) for path in folder.iterdir()] if folder.is_dir() else []
        return sorted((s for s in found if s is not None), key=lambda s: s.report.created_at, reverse=True)
